"""Greedy evaluation episodes in several acting modes: how much does each part contribute?"""

from __future__ import annotations

from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torchmetrics import MeanMetric

from callbacks.access import collection
from priorzero_pl import episodes
from priorzero_pl.agent import ACTING_MODES, ActingMode
from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.eval_mode import evaluating


class Evaluation(Callback):
    """Every ``every_n_steps`` optimizer steps, and once when training ends, play ``episodes``
    greedy episodes in each of ``modes`` and log, per mode,
    ``eval_<mode>/score``, ``eval_<mode>/normalized_score`` (score / max score) and
    ``eval_<mode>/episode_length``.

    The modes separate the parts: ``world_model`` searches without the LLM prior,
    ``prior`` follows the LLM prior without search, ``world_model+prior`` is the agent as it
    collects. Every mode acts through ``pl_module.acting_agent("evaluate", mode=...)``: greedy,
    noise-free, with the prior weight scheduled for this step. Means are torchmetrics ``MeanMetric`` reduced over ranks; each rank plays its own
    episodes (seeds ``seed + rank * episodes + i``), so more ranks give a tighter estimate.
    Metrics go to the trainer's loggers at ``global_step`` (``pl_module.log`` is not allowed in
    ``on_train_end``) and into ``trainer.callback_metrics``; the latest are kept in ``last_metrics``.

    Args:
        every_n_steps: evaluation period in optimizer steps.
        episodes: episodes per mode and rank.
        modes: acting modes to evaluate.
        seed: base seed of the evaluation games and the agent.
        max_steps: step limit per episode (``None``: the training episodes' limit).
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        episodes: int = 3,
        modes: Sequence[ActingMode] = ("world_model", "world_model+prior", "prior"),
        seed: int = 1234,
        max_steps: int | None = None,
    ) -> None:
        if every_n_steps < 1 or episodes < 1:
            raise PriorZeroInputError(f"Evaluation.every_n_steps and episodes must be >= 1, got {every_n_steps} and {episodes}")
        known = ACTING_MODES
        if not modes or len(set(modes)) != len(modes) or any(m not in known for m in modes):
            raise PriorZeroInputError(f"Evaluation.modes must be distinct values of {list(known)}, got {list(modes)}")
        if max_steps is not None and max_steps < 1:
            raise PriorZeroInputError(f"Evaluation.max_steps must be >= 1 or null, got {max_steps}")
        self.every_n_steps = every_n_steps
        self.episodes = episodes
        self.modes = list(modes)
        self.seed = seed
        self.max_steps = max_steps
        self.last_metrics: dict[str, float] = {}
        self._evaluated_at = -1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._evaluated_at:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._evaluated_at:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Play, reduce over ranks, log; returns the metrics."""
        self._evaluated_at = trainer.global_step
        seed = self.seed + trainer.global_rank * self.episodes
        datamodule = collection(trainer, "Evaluation (the game and its options)")
        metrics: dict[str, float] = {}
        for mode in self.modes:
            # Fresh metrics on the module's device: the cross-rank reduction runs on the
            # process group's device (NCCL cannot reduce CPU tensors).
            score, normalized, length = (MeanMetric().to(pl_module.device) for _ in range(3))
            with evaluating(pl_module):
                results = episodes.play_episodes(
                    pl_module.acting_agent("evaluate", mode=mode),
                    datamodule.game_path,
                    episodes=self.episodes,
                    seed=seed,
                    **datamodule.game_kwargs(self.max_steps),
                )
            for result in results:
                score.update(result.score)
                normalized.update(result.normalized_score)
                length.update(result.length)
            metrics[f"eval_{mode}/score"] = float(score.compute())
            metrics[f"eval_{mode}/normalized_score"] = float(normalized.compute())
            metrics[f"eval_{mode}/episode_length"] = float(length.compute())
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        self.last_metrics = metrics
        return metrics
