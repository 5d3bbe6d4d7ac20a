"""Checks of the DataModule's init arguments (the ``data:`` section), run before anything starts.

A bad value here used to surface only inside a collection worker, rounds into a run, as a long
traceback (``data.valid_actions_timeout: -1`` failed after four collection rounds). The CLI calls
:func:`check_data_args` on the parsed ``data:`` section before it builds anything, so a bad value
costs a second, not an LLM load; ``PriorZeroDataModule.__init__`` can call it on its own
arguments for runs built in Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from priorzero_pl.assets.embedded import EMBEDDED
from priorzero_pl.buffer import ReplayConfig
from priorzero_pl.config_checks import require_int, require_number
from priorzero_pl.envs.game_files import check_story, resolve_game
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.threads import plan_thread_budget


def check_data_args(
    *,
    game: str = EMBEDDED,
    games_dir: str | None = None,
    num_envs: int = 2,
    max_episode_steps: int = 50,
    batch_size: int = 32,
    collect_steps: int = 32,
    batches_per_collect: int = 4,
    warmup_steps: int = 64,
    replay: ReplayConfig | Mapping[str, Any] | None = None,
    temperature_start: float = 1.0,
    temperature_end: float = 0.25,
    temperature_decay_steps: int = 5000,
    max_consecutive_failures: int = 3,
    eval_episodes: int = 1,
    valid_actions_timeout: float = 5.0,
    seed: int = 0,
    allow_unverified_game: bool = False,
    learner_threads: int | None = None,
) -> None:
    """Raise :class:`PriorZeroInputError` naming ``data.<key>``, its value and the fix, for the
    first bad argument of ``PriorZeroDataModule`` (same names, same defaults).

    ``replay`` may be a :class:`ReplayConfig` or its fields as a mapping (the parsed config); the
    story file is resolved and checked with :func:`~priorzero_pl.envs.game_files.check_story`.
    """
    for name, value in [
        ("num_envs", num_envs),
        ("max_episode_steps", max_episode_steps),
        ("batch_size", batch_size),
        ("collect_steps", collect_steps),
        ("batches_per_collect", batches_per_collect),
        ("max_consecutive_failures", max_consecutive_failures),
        ("eval_episodes", eval_episodes),
    ]:
        require_int(f"data.{name}", value, minimum=1)
    require_int("data.warmup_steps", warmup_steps, minimum=0)
    require_int("data.temperature_decay_steps", temperature_decay_steps, minimum=0)
    require_number("data.temperature_start", temperature_start, at_least=0)
    require_number("data.temperature_end", temperature_end, at_least=0)
    require_number("data.valid_actions_timeout", valid_actions_timeout, above=0)
    # Env i of rank r plays seed + 1000 * r + i, and a game seed must be >= 0.
    require_int("data.seed", seed, minimum=0)
    plan_thread_budget(learner_threads, env_workers=num_envs)  # raises on a bad learner_threads
    if isinstance(replay, Mapping):
        ReplayConfig(**replay)  # its __post_init__ checks every field
    if games_dir is not None and not Path(games_dir).expanduser().is_dir():
        raise PriorZeroInputError(f"data.games_dir={games_dir!r} is not a folder: give the folder of the story files, or null")
    if not isinstance(game, str) or not game.strip():
        raise PriorZeroInputError(f"data.game={game!r}: give a story file path, a game name like 'zork1', or '{EMBEDDED}'")
    if game != EMBEDDED:
        check_story(resolve_game(game, games_dir), allow_unverified=allow_unverified_game)
