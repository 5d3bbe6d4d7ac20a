"""Batched MuZero search over the world model, with the LLM prior injected at the root."""

from priorzero_pl.mcts.config import MCTSConfig
from priorzero_pl.mcts.schedule import PriorWeightSchedule
from priorzero_pl.mcts.search import run_search
from priorzero_pl.mcts.types import ModelOutput, SearchModel, SearchOutput

__all__ = ["MCTSConfig", "ModelOutput", "PriorWeightSchedule", "SearchModel", "SearchOutput", "run_search"]
