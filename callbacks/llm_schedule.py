"""When and how much an LLM-objective callback (RFT, PPO) may queue, agreed across ranks.

The module applies one queued minibatch per training step. Two rules keep that sane:

- **Back-pressure**: a round is skipped while the queue already holds ``every_n_steps`` batches
  or more: those will not be consumed before the next round, so queuing more would only make
  all of them staler (and the queue would grow without bound).
- **Same count on every rank**: under DDP/DeepSpeed each rank has its own buffer, so rounds
  would differ in size; a rank whose queue ran dry would skip the LLM in its loss while the
  others did not, and the gradient all-reduce would disagree. Skips and batch counts are
  therefore reduced over ranks (any rank skipping skips all; the smallest count wins).
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from priorzero_pl.errors import PriorZeroInputError


def require_trainable_llm(pl_module: L.LightningModule, name: str) -> None:
    """Fail at fit start, not at the first round, when the config freezes the LLM this trains."""
    if not pl_module.llm_config.train:
        raise PriorZeroInputError(
            f"callbacks.{name} trains the LLM but model.llm.train is false: set it to true or remove callbacks.{name}"
        )


def round_due(trainer: L.Trainer, every_n_steps: int, last_round: int) -> bool:
    """True once per ``every_n_steps`` optimizer steps (not again for another batch of the same
    step under gradient accumulation, nor at step 0)."""
    step = trainer.global_step
    return step > 0 and step % every_n_steps == 0 and step != last_round


def queue_has_room(trainer: L.Trainer, pl_module: L.LightningModule, every_n_steps: int, name: str) -> bool:
    """The back-pressure rule above (warns on rank zero when it skips)."""
    full = pl_module.llm_queue_size >= every_n_steps
    if trainer.strategy.reduce_boolean_decision(full, all=False):
        rank_zero_warn(
            f"{name}: skipping a round at step {trainer.global_step}: {pl_module.llm_queue_size} LLM batches still "
            f"queued (one is applied per step); raise every_n_steps or lower the batches per round"
        )
        return False
    return True


def agreed_count(trainer: L.Trainer, count: int) -> int:
    """The smallest ``count`` over all ranks."""
    return int(trainer.strategy.reduce(torch.tensor(count, device=trainer.strategy.root_device), reduce_op="min").item())
