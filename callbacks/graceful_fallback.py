"""Make degraded operation visible, and leave nothing behind when a run dies."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks.access import collection
from callbacks.checkpointing import Checkpointing, atomic_save_checkpoint
from priorzero_pl.errors import PriorZeroInputError

log = logging.getLogger(__name__)

# Prior figures whose name says something went wrong (``failures/<backend>``, ``fallbacks``); the
# rest (entropy, latency, cache hits) the module already logs under ``prior/``.
_FAILURE_WORDS = ("fail", "fallback", "error", "timeout")


class GracefulFallback(Callback):
    """Health of the optional parts, and cleanup when the fit raises.

    Every training batch it logs, under ``fallback/``, the prior's failure counters
    (``failures/<backend>`` and ``fallbacks`` of ``pl_module.prior.metrics()``), the collection rounds that
    failed (``collector_failures``), the env worker restarts (``env_restarts``) and the steps
    skipped for a NaN or inf loss (``nonfinite_loss``; ``max_nonfinite_losses`` of them in a row
    stop the fit with a ``RuntimeError`` that says so: the weights are those of the last good
    step). The first time a failure counter becomes non-zero it warns once (rank zero), naming
    it, so a run that quietly dropped from vLLM to HF scoring, or keeps restarting games, says so
    in the console.

    When the fit raises, Lightning calls ``on_exception`` but none of the ``teardown`` hooks, so
    worker processes and inference engines would outlive the run. Then it saves
    ``<default_root_dir>/emergency-step<global_step, 5 digits>.ckpt`` (atomically; single process,
    or on SIGTERM which every rank receives: a collective save after a one-rank failure would
    hang). The step in the name means a later failure never replaces an emergency checkpoint
    that holds more training. None is written when there is nothing new to keep: a fit that
    never took a step (it failed while starting, or before a checkpoint was restored), or one
    whose :class:`~callbacks.Checkpointing` ``last.ckpt`` holds (or is about to hold) the
    current step, as on every SIGTERM. Then it runs the
    datamodule's and the module's ``teardown("fit")`` (which close the env pool and the prior).
    Each step runs even when an earlier one raised; failures are logged, not raised, so the
    original exception stays the one the user sees.

    Args:
        max_nonfinite_losses: steps in a row whose loss may be NaN or inf (each skipped) before
            the fit stops.
    """

    def __init__(self, max_nonfinite_losses: int = 3) -> None:
        if isinstance(max_nonfinite_losses, bool) or not isinstance(max_nonfinite_losses, int) or max_nonfinite_losses < 1:
            raise PriorZeroInputError(
                f"GracefulFallback.max_nonfinite_losses must be an int >= 1, got {max_nonfinite_losses!r}"
            )
        self.max_nonfinite_losses = max_nonfinite_losses
        self._warned: set[str] = set()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        counts = self.health(trainer, pl_module)
        for key, value in counts.items():
            if value > 0 and key not in self._warned:
                self._warned.add(key)
                rank_zero_warn(f"degraded: {key} = {value:g} (logged as fallback/{key} from now on)")
        if counts:
            pl_module.log_dict({f"fallback/{k}": v for k, v in counts.items()}, batch_size=1)
        in_a_row = getattr(pl_module, "consecutive_nonfinite_losses", 0)
        if in_a_row >= self.max_nonfinite_losses:
            raise RuntimeError(
                f"the loss was NaN or inf for {in_a_row} steps in a row (GracefulFallback.max_nonfinite_losses="
                f"{self.max_nonfinite_losses}); they were skipped, the weights are those of step "
                f"{trainer.global_step - in_a_row}: lower model.optim.world_model_lr / llm_lr or keep "
                "trainer.gradient_clip_val, then resume from the last checkpoint"
            )

    @staticmethod
    def health(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Current failure and fallback counters of the prior, the collector and the env pool."""
        counts: dict[str, float] = {}
        if hasattr(pl_module, "nonfinite_losses"):
            counts["nonfinite_loss"] = float(pl_module.nonfinite_losses)
        prior = getattr(pl_module, "prior", None)
        if prior is not None:
            counts.update({k: float(v) for k, v in prior.metrics().items() if any(word in k for word in _FAILURE_WORDS)})
        datamodule = collection(trainer, "GracefulFallback (collector failures, env restarts)", optional=True)
        if datamodule is not None:
            counts["collector_failures"] = float(datamodule.collector_failures)
            pool = datamodule.env_pool
            if pool is not None:
                counts["env_restarts"] = float(pool.restarts)
        return counts

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        steps: list[tuple[str, Callable[[], None]]] = []
        if (trainer.world_size == 1 or isinstance(exception, SIGTERMException)) and self._has_new_training(trainer, exception):
            path = emergency_path(trainer.default_root_dir, trainer.global_step)
            steps.append((f"save emergency checkpoint {path}", lambda: atomic_save_checkpoint(trainer, path)))
        if trainer.datamodule is not None:
            steps.append(("datamodule teardown (env pool)", lambda: trainer.datamodule.teardown("fit")))
        steps.append(("module teardown (prior)", lambda: pl_module.teardown("fit")))
        for name, step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - cleanup must go on; the error is logged with its traceback
                log.exception("cleanup step failed: %s", name)

    @staticmethod
    def _has_new_training(trainer: L.Trainer, exception: BaseException) -> bool:
        """Whether the current step is kept nowhere else (see the class docstring)."""
        if trainer.global_step == 0:
            return False
        return not any(
            isinstance(callback, Checkpointing) and callback.will_hold_step(trainer, exception)
            for callback in trainer.checkpoint_callbacks
        )


def emergency_path(root: str | Path, step: int) -> Path:
    """``<root>/emergency-step00028.ckpt``: one file per step, so none replaces another."""
    return Path(root) / f"emergency-step{step:05d}.ckpt"
