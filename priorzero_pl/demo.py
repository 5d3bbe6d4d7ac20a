"""``priorzero demo --config configs/debug.yaml``: the thesis on one game, side by side.

Four agents on the config's game, at the same env-step budget where they learn: the trained
agent (world model + LLM prior), the same agent trained with a uniform prior (no LLM), the LLM
alone (no search: its greedy choice, and samples from its distribution), and random play. Then it
says where the TensorBoard logs are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger
from rich.console import Console
from rich.table import Table

from priorzero_pl.episodes import EpisodeResult, play_episodes, play_random_episodes
from priorzero_pl.pretraining.prior_play import play_prior_only

RANDOM_EPISODES = 20
"""Random play is noisy; more episodes than the (deterministic, greedy) agent needs."""
SAMPLED_PRIOR_EPISODES = 5
"""Episodes that sample from the LLM alone (each step scores every candidate, so fewer than random)."""
UNIFORM_PRIOR_ARGS = ("--model.prior.backends=[uniform]", "--model.llm.train=false")
"""The uniform-prior agent: the same search and world model, no LLM to score or train."""


def run_demo(args: Sequence[str]) -> dict[str, float]:
    """Fit the agent and its uniform-prior twin with the given config arguments, then evaluate all
    four agents. Returns the headline figures."""
    from priorzero_pl.cli import build_cli

    cli = build_cli(["fit", *args])
    module, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
    game_kwargs = datamodule.game_kwargs()
    agent = play_episodes(module.acting_agent("evaluate"), datamodule.game_path, episodes=datamodule.eval_episodes, seed=module.eval_seed, **game_kwargs)
    prior_kwargs = {"length_normalise": module.prior_config.length_normalise, "max_steps": datamodule.max_episode_steps}
    prior_greedy = play_prior_only(module.llm, module.tokenizer, datamodule.game_path, module.prompt_builder, **prior_kwargs)
    prior_sampled = play_prior_only(
        module.llm, module.tokenizer, datamodule.game_path, module.prompt_builder, **prior_kwargs,
        rng=np.random.default_rng(module.eval_seed), episodes=SAMPLED_PRIOR_EPISODES,
    )
    random = play_random_episodes(datamodule.game_path, episodes=RANDOM_EPISODES, seed=module.eval_seed, **game_kwargs)
    uniform, uniform_env_steps = _fit_uniform_prior(build_cli, args, trainer)
    max_score = agent[0].max_score
    figures = {
        "agent_normalized_score": _mean(agent),
        "uniform_prior_normalized_score": _mean(uniform),
        "prior_only_normalized_score": prior_greedy,
        "prior_sampled_normalized_score": prior_sampled,
        "random_normalized_score": _mean(random),
        "max_score": max_score,
        "env_steps": float(datamodule.env_steps),
        "uniform_prior_env_steps": float(uniform_env_steps),
        "train_steps": float(trainer.global_step),
    }
    table = Table(title=f"priorzero demo: {datamodule.game_path}")
    for column in ("agent", "episodes", "env steps trained", "normalized score", "score"):
        table.add_column(column)
    rows = [
        ("trained (world model + LLM prior, greedy)", len(agent), figures["env_steps"], figures["agent_normalized_score"]),
        ("same, uniform prior (no LLM)", len(uniform), figures["uniform_prior_env_steps"], figures["uniform_prior_normalized_score"]),
        ("LLM prior alone, greedy (no search)", 1, figures["env_steps"], prior_greedy),
        ("LLM prior alone, sampled (no search)", SAMPLED_PRIOR_EPISODES, figures["env_steps"], prior_sampled),
        ("random", RANDOM_EPISODES, 0, figures["random_normalized_score"]),
    ]
    for name, episodes, env_steps, normalized in rows:
        table.add_row(name, str(episodes), f"{env_steps:.0f}", f"{normalized:.3f}", f"{normalized * max_score:.2f} / {max_score:.0f}")
    console = Console()
    console.print(table)
    console.print(f"after {trainer.global_step} training steps and {datamodule.env_steps} env steps per trained agent")
    if trainer.logger is not None and trainer.logger.log_dir:
        console.print(f"TensorBoard logs: {trainer.logger.log_dir}  (tensorboard --logdir {trainer.logger.log_dir})")
    return figures


def _fit_uniform_prior(build_cli, args: Sequence[str], agent_trainer: L.Trainer) -> tuple[list[EpisodeResult], int]:  # noqa: ANN001
    """The uniform-prior twin: the same fit without the LLM (its training callbacks dropped, since
    they refuse a frozen LLM), in its own folder so that it neither resumes from nor overwrites the
    agent's checkpoints, and logged beside the agent's run as ``<name>-uniform-prior``."""
    from callbacks import PPO, RFT, VLLMWeightSync

    own_folder = [f"--trainer.default_root_dir={Path(agent_trainer.default_root_dir) / 'uniform-prior'}"]
    if isinstance(agent_trainer.logger, TensorBoardLogger):
        own_folder.append(f"--trainer.logger.init_args.name={agent_trainer.logger.name}-uniform-prior")
    cli = build_cli([*args, *UNIFORM_PRIOR_ARGS, *own_folder], run=False)
    trainer = cli.trainer
    trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, (RFT, PPO, VLLMWeightSync))]
    trainer.fit(cli.model, datamodule=cli.datamodule)
    datamodule, module = cli.datamodule, cli.model
    results = play_episodes(module.acting_agent("evaluate"), datamodule.game_path, episodes=datamodule.eval_episodes, seed=module.eval_seed, **datamodule.game_kwargs())
    return results, datamodule.env_steps


def _mean(results: Sequence[EpisodeResult]) -> float:
    return float(np.mean([r.normalized_score for r in results]))
