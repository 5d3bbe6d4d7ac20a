"""``callbacks.Checkpointing``: atomic saves, periodic and on SIGTERM/SIGINT, resumable, with every
rank's RNG states."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks import Checkpointing
from callbacks.checkpointing import atomic_save_checkpoint
from tests.callback_fakes import TinyModule, fake_trainer, tiny_trainer


def test_atomic_save_keeps_the_old_checkpoint_when_a_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old")

    def failing_save(path: Path, weights_only: bool | None = None) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    trainer = fake_trainer(3, save_checkpoint=failing_save)
    with pytest.raises(OSError):
        atomic_save_checkpoint(trainer, target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_periodic_checkpoints_keep_last_and_resume(tmp_path: Path) -> None:
    checkpointing = Checkpointing(every_n_steps=2, keep_last=2)
    tiny_trainer(tmp_path, [checkpointing], max_steps=7).fit(TinyModule())
    directory = tmp_path / "checkpoints"
    assert sorted(p.name for p in directory.iterdir()) == ["last.ckpt", "step=4.ckpt", "step=6.ckpt"]
    last = torch.load(directory / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6
    assert "rng" in last["callbacks"][checkpointing.state_key]

    resumed = TinyModule()
    tiny_trainer(tmp_path, [Checkpointing(every_n_steps=2, keep_last=2)], max_steps=9).fit(resumed, ckpt_path=directory / "last.ckpt")
    assert resumed.steps_run == 3


def test_sigterm_mid_fit_saves_a_loadable_checkpoint_and_stops(tmp_path: Path) -> None:
    def terminate_at_step_5(module: TinyModule) -> None:
        if module.global_step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SIGTERMException):
        tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=50).fit(TinyModule(terminate_at_step_5))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    resumed = TinyModule()
    tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=8).fit(resumed, ckpt_path=last)
    assert resumed.steps_run == 3


def test_sigint_mid_fit_saves_and_stops_cleanly(tmp_path: Path) -> None:
    def interrupt_at_step_3(module: TinyModule) -> None:
        if module.global_step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    handler_before = signal.getsignal(signal.SIGINT)
    module = TinyModule(interrupt_at_step_3)
    trainer = tiny_trainer(tmp_path, [Checkpointing(every_n_steps=100)], max_steps=50)
    trainer.fit(module)
    assert trainer.global_step == 3 and module.steps_run == 3
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_rng_state_round_trips() -> None:
    import random

    import numpy as np

    checkpointing = Checkpointing()
    state = checkpointing.state_dict()
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpointing.load_state_dict(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == drawn


def test_each_rank_restores_its_own_rng_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint holds every rank's python, numpy and torch RNG states; rank 1 takes back its
    own (the states rank 1 saved), not rank zero's."""
    import random

    import numpy as np

    checkpointing = Checkpointing()
    before = checkpointing.state_dict()

    def saved_and_drawn() -> tuple[dict, tuple]:
        (state,) = checkpointing.state_dict()["rng"]
        return state, (random.random(), np.random.rand(), torch.rand(1).item())

    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    rank0, _ = saved_and_drawn()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    rank1, drawn1 = saved_and_drawn()
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
    checkpointing.load_state_dict({"rng": [rank0, rank1]})
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == drawn1
    monkeypatch.undo()
    checkpointing.load_state_dict(before)
