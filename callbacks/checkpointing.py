"""Atomic, resumable checkpoints every N steps and when the job is told to stop."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from priorzero_pl.errors import PriorZeroInputError
from priorzero_pl.rank_state import gather_rank_states, own_rank_state

_STEP_FILE = re.compile(r"^step=(\d+)\.ckpt$")


def _remove(path: Path) -> None:
    """Delete a checkpoint: a file, or a directory (DeepSpeed writes one per checkpoint)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(src: Path, dst: Path) -> None:
    """``os.replace`` that also handles directories: a non-empty directory cannot be renamed over,
    so the old one is moved aside first (the window without ``dst`` is one rename long)."""
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old")
        _remove(old)
        os.replace(dst, old)
        os.replace(src, dst)
        _remove(old)
    else:
        os.replace(src, dst)


def atomic_save_checkpoint(trainer: L.Trainer, path: str | os.PathLike) -> None:
    """``trainer.save_checkpoint(path)`` such that ``path`` is either the old or the complete new
    checkpoint, never a partial one: a job killed mid-write must still resume.

    All ranks call it (the strategy may gather or shard); rank zero renames. Writes go through the
    strategy's checkpoint IO into a temporary name in the same directory, then ``os.replace``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove(tmp)
        trainer.strategy.barrier("atomic_save_checkpoint.prepare")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            _replace(tmp, path)
    finally:
        if trainer.is_global_zero:
            _remove(tmp)
    trainer.strategy.barrier("atomic_save_checkpoint.done")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard links share the data, so ``last.ckpt`` costs no second write (copy where links fail)."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file)
    else:
        _link_file(src, dst)


def _link_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class Checkpointing(Checkpoint):
    """Saves ``step=<global_step>.ckpt`` every ``every_n_steps`` optimizer steps and keeps the last
    ``keep_last`` of them, plus ``last.ckpt`` (always the newest) so that
    ``priorzero fit --ckpt_path <dirpath>/last.ckpt`` resumes. Every write is atomic.

    With ``save_on_signal``, a SIGTERM (preemption, ``scancel``) or SIGINT (Ctrl+C) makes the next
    ``on_train_batch_end`` save and stop the fit. SIGTERM is Lightning's own: its handler sets
    ``trainer.received_sigterm`` and the loop raises ``SIGTERMException`` right after the batch,
    so the save happens here first (or in ``on_exception`` if the signal came after this hook,
    e.g. during the warm-up, before any batch). For SIGINT this callback installs a handler at
    fit start that sets ``trainer.should_stop``, so Ctrl+C ends in a checkpoint and a clean stop
    instead of a ``KeyboardInterrupt``; a second Ctrl+C falls through to the previous handler.
    The previous SIGINT handler comes back at the end. Both flags live on the trainer, where the
    data module's collection loop reads them between env steps.

    What is saved is ``trainer.save_checkpoint``'s content (module, optimizer, loop counters,
    ``datamodule.state_dict()`` with every rank's replay buffer and episodes in progress) plus, in
    this callback's state, every rank's python, numpy and torch RNG states, each restored on its
    rank on resume. Lightning runs ``Checkpoint`` callbacks after all others, so a save at step
    ``N`` holds what every other callback did at step ``N`` (an RFT or PPO round, say).

    Args:
        dirpath: where checkpoints go (default ``<trainer.default_root_dir>/checkpoints``: fixed
            across runs, unlike a logger's versioned folder, so the resume path is known).
        every_n_steps: save period in optimizer steps.
        keep_last: how many ``step=*.ckpt`` to keep (0: only ``last.ckpt``).
        save_on_signal: save and stop on SIGTERM / SIGINT.
    """

    def __init__(
        self, dirpath: str | None = None, every_n_steps: int = 100, keep_last: int = 3, save_on_signal: bool = True
    ) -> None:
        if every_n_steps < 1:
            raise PriorZeroInputError(f"Checkpointing.every_n_steps must be >= 1, got {every_n_steps}")
        if keep_last < 0:
            raise PriorZeroInputError(f"Checkpointing.keep_last must be >= 0, got {keep_last}")
        self.dirpath = dirpath
        self.every_n_steps = every_n_steps
        self.keep_last = keep_last
        self.save_on_signal = save_on_signal
        self._signalled = False
        self._trainer: L.Trainer | None = None
        self._previous_sigint: Any = None
        self._saved_step = -1

    @property
    def state_key(self) -> str:
        return self._generate_state_key(dirpath=self.dirpath, every_n_steps=self.every_n_steps)

    def directory(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath is not None else Path(trainer.default_root_dir) / "checkpoints"

    @property
    def saved_step(self) -> int:
        """The ``global_step`` that ``last.ckpt`` holds from this fit (-1 before the first save)."""
        return self._saved_step

    def will_hold_step(self, trainer: L.Trainer, exception: BaseException) -> bool:
        """True when ``last.ckpt`` holds ``trainer.global_step`` once this callback's
        ``on_exception`` ran: already saved, or about to be (a SIGTERM with ``save_on_signal``).
        Lightning runs the ``Checkpoint`` callbacks' hooks after the others', so another callback
        asks this before the save happens."""
        stopping = isinstance(exception, SIGTERMException) and self.save_on_signal
        return self._saved_step == trainer.global_step or stopping

    # ------------------------------------------------------------------ signals
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signalled = False
        self._trainer = trainer
        # signal.signal only works in the main thread; elsewhere Ctrl+C keeps its default.
        if self.save_on_signal and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._signalled:
            self._restore_handlers()
            signal.raise_signal(signum)
            return
        self._signalled = True
        if self._trainer is not None:
            self._trainer.should_stop = True

    def _restore_handlers(self) -> None:
        self._trainer = None
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_handlers()

    # ------------------------------------------------------------------ saving
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Reduced over ranks (every rank takes part, so no short-circuit): the save is collective.
        stop = self.save_on_signal and trainer.strategy.reduce_boolean_decision(
            self._signalled or trainer.received_sigterm, all=False
        )
        step = trainer.global_step
        periodic = step > 0 and step % self.every_n_steps == 0
        if (stop or periodic) and step != self._saved_step:
            self.save(trainer)
        if stop:
            rank_zero_info(f"Stop signal received: saved {self.directory(trainer) / 'last.ckpt'}, stopping the fit")
            trainer.should_stop = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # The exception path skips `teardown`, so the handler is restored here too.
        self._restore_handlers()
        if isinstance(exception, SIGTERMException) and self.save_on_signal and self._saved_step != trainer.global_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Write ``step=<global_step>.ckpt`` and ``last.ckpt`` and prune old step files."""
        directory = self.directory(trainer)
        step_path = directory / f"step={trainer.global_step}.ckpt"
        last = directory / "last.ckpt"
        if self.keep_last == 0:
            atomic_save_checkpoint(trainer, last)
        else:
            atomic_save_checkpoint(trainer, step_path)
            if trainer.is_global_zero:
                tmp = last.with_name(f".{last.name}.tmp")
                _remove(tmp)
                _link_or_copy(step_path, tmp)
                _replace(tmp, last)
                self._prune(directory)
            trainer.strategy.barrier("Checkpointing.save")
        self._saved_step = trainer.global_step

    def _prune(self, directory: Path) -> None:
        steps = sorted(
            (int(match.group(1)), path)
            for path in directory.iterdir()
            if (match := _STEP_FILE.match(path.name)) is not None
        )
        for _, path in steps[: max(0, len(steps) - self.keep_last)]:
            _remove(path)

    # ------------------------------------------------------------------ RNG state
    def state_dict(self) -> dict[str, Any]:
        # numpy's key goes in as a plain list: checkpoints must load with ``weights_only``.
        kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": (kind, key.tolist(), pos, has_gauss, cached_gaussian),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return {"rng": gather_rank_states(state)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("rng")
        if states is None:
            return
        rank = torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
        rng = own_rank_state(states, rank, "RNG states")
        if rng is None:
            return
        random.setstate(rng["python"])
        kind, key, pos, has_gauss, cached_gaussian = rng["numpy"]
        np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached_gaussian))
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
