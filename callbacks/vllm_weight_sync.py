"""Keep the vLLM prior engine scoring with the weights the LLM is being trained to."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DeepSpeedStrategy
from lightning.pytorch.utilities import rank_zero_info

from priorzero_pl.errors import PriorZeroInputError


@contextlib.contextmanager
def _full_parameters(trainer: L.Trainer, model: torch.nn.Module) -> Iterator[None]:
    """Make every parameter of ``model`` whole for the duration of the block.

    ZeRO-1/2 partition only gradients and optimizer states, so the parameters are already whole;
    ZeRO-3 shards the parameters too, and each rank must join the gather (a collective).
    """
    strategy = trainer.strategy
    if isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3:
        import deepspeed  # only reachable with the optional deepspeed extra installed

        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            yield
    else:
        yield


class VLLMWeightSync(Callback):
    """After every ``every_n_llm_updates`` LLM updates, push the trainable LLM's parameters into
    the vLLM backend (``load_weights``) and clear the prior cache, whose entries were scored by
    the old weights. Without this the search keeps using the initial LLM as its prior while the
    HF copy trains: RFT/PPO/distillation would never reach collection.

    At train start it syncs once if the LLM was already updated (a resumed run: the engine loaded
    the weights from the model path, not from the checkpoint). When the prior has no vLLM backend
    (HF scoring shares the trainable weights already) it is a no-op and says so once.
    Logs ``llm/weight_syncs``.

    Args:
        every_n_llm_updates: sync period, in steps where an LLM loss was applied.
    """

    def __init__(self, every_n_llm_updates: int = 1) -> None:
        if every_n_llm_updates < 1:
            raise PriorZeroInputError(f"VLLMWeightSync.every_n_llm_updates must be >= 1, got {every_n_llm_updates}")
        self.every_n_llm_updates = every_n_llm_updates
        self.syncs = 0
        self._synced_at = 0
        self._said_noop = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._synced_at = pl_module.llm_updates
        if pl_module.llm_updates > 0:
            self.sync(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.llm_updates - self._synced_at >= self.every_n_llm_updates and self.sync(trainer, pl_module):
            pl_module.log("llm/weight_syncs", float(self.syncs), batch_size=1)

    def sync(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        """Push the weights now; False (and nothing done) when there is no vLLM backend."""
        self._synced_at = pl_module.llm_updates
        prior = pl_module.prior
        backend = prior.backend("vllm") if prior is not None else None
        if backend is None:
            if not self._said_noop:
                rank_zero_info("VLLMWeightSync: the prior has no vllm backend; nothing to sync")
                self._said_noop = True
            return False
        with _full_parameters(trainer, pl_module.llm), torch.no_grad():
            backend.load_weights([(name, param.detach()) for name, param in pl_module.llm.named_parameters()])
        prior.clear_cache()
        self.syncs += 1
        return True
