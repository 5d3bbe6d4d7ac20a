"""Text games: one game (`TextGame`), many games in worker processes (`EnvPool`), game files."""

from priorzero_pl.envs.env_pool import EnvPool
from priorzero_pl.envs.game_files import resolve_game
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.envs.textworld_make import make_game

__all__ = ["EnvPool", "StepRecord", "TextGame", "make_game", "resolve_game"]
