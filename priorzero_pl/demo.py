"""``priorzero demo --config configs/debug.yaml``: train on the embedded default, then compare the
trained agent with a random agent on the same game, and say where the TensorBoard logs are."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from priorzero_pl.episodes import EpisodeResult, play_episodes, play_random_episodes

RANDOM_EPISODES = 20
"""Random play is noisy; more episodes than the (deterministic, greedy) agent needs."""


def run_demo(args: Sequence[str]) -> dict[str, float]:
    """Fit with the given config arguments, then evaluate. Returns the headline figures."""
    from priorzero_pl.cli import build_cli

    cli = build_cli(["fit", *args])
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    agent_results = play_episodes(
        module.acting_agent("evaluate"),
        datamodule.game_path,
        episodes=datamodule.eval_episodes,
        seed=module.eval_seed,
        **datamodule.game_kwargs(),
    )
    random_results = play_random_episodes(
        datamodule.game_path, episodes=RANDOM_EPISODES, seed=module.eval_seed, **datamodule.game_kwargs()
    )
    figures = {
        "agent_score": _mean(agent_results, "score"),
        "agent_normalized_score": _mean(agent_results, "normalized_score"),
        "random_score": _mean(random_results, "score"),
        "random_normalized_score": _mean(random_results, "normalized_score"),
        "max_score": agent_results[0].max_score,
        "env_steps": float(datamodule.env_steps),
        "train_steps": float(trainer.global_step),
    }
    table = Table(title=f"priorzero demo: {datamodule.game_path}")
    for column in ("agent", "episodes", "score", "normalized score"):
        table.add_column(column)
    table.add_row("trained (world model + prior, greedy)", str(len(agent_results)), f"{figures['agent_score']:.2f} / {figures['max_score']:.0f}", f"{figures['agent_normalized_score']:.3f}")
    table.add_row("random", str(len(random_results)), f"{figures['random_score']:.2f} / {figures['max_score']:.0f}", f"{figures['random_normalized_score']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"after {trainer.global_step} training steps and {datamodule.env_steps} env steps")
    if trainer.logger is not None and trainer.logger.log_dir:
        console.print(f"TensorBoard logs: {trainer.logger.log_dir}  (tensorboard --logdir {trainer.logger.log_dir})")
    return figures


def _mean(results: Sequence[EpisodeResult], attribute: str) -> float:
    return float(np.mean([getattr(r, attribute) for r in results]))
