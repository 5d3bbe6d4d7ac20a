"""``callbacks.GracefulFallback``: failure counters logged and warned once; cleanup and an emergency
checkpoint when the fit raises."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from callbacks import GracefulFallback
from tests.callback_fakes import RecordingModule, TinyModule, fake_trainer, tiny_trainer


class FakeHealthPrior:
    def __init__(self) -> None:
        self.figures = {"entropy": 1.2, "cache_hit_rate": 0.5, "fallbacks": 0.0, "failures/vllm": 0.0, "backend/hf": 9.0}

    def metrics(self) -> dict[str, float]:
        return dict(self.figures)


def test_graceful_fallback_logs_failure_counters_and_warns_once_per_kind() -> None:
    module = RecordingModule()
    module.prior = FakeHealthPrior()
    trainer = fake_trainer(1)
    trainer.datamodule.env_pool = SimpleNamespace(restarts=0)
    callback = GracefulFallback()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert module.logged == {
        "fallback/fallbacks": 0.0,
        "fallback/failures/vllm": 0.0,
        "fallback/collector_failures": 0.0,
        "fallback/env_restarts": 0.0,
    }
    module.prior.figures["failures/vllm"] = 1.0
    trainer.datamodule.env_pool.restarts = 2
    with pytest.warns(UserWarning) as record:
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert sorted(str(w.message).split(" ")[1] for w in record) == ["env_restarts", "failures/vllm"]
    module.prior.figures["failures/vllm"] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert module.logged["fallback/failures/vllm"] == 2.0


def test_graceful_fallback_runs_every_cleanup_step_when_others_fail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def save_checkpoint(path: Path, weights_only: bool | None = None) -> None:
        done.append("checkpoint")
        raise OSError("disk full")

    def datamodule_teardown(stage: str) -> None:
        done.append(f"datamodule {stage}")
        raise RuntimeError("env pool already dead")

    trainer = fake_trainer(1, save_checkpoint=save_checkpoint, default_root_dir=str(tmp_path), checkpoint_callbacks=[])
    trainer.datamodule = SimpleNamespace(teardown=datamodule_teardown)
    module = SimpleNamespace(teardown=lambda stage: done.append(f"module {stage}"))
    GracefulFallback().on_exception(trainer, module, RuntimeError("boom"))
    assert done == ["checkpoint", "datamodule fit", "module fit"]
    assert "disk full" in caplog.text and "env pool already dead" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_graceful_fallback_saves_an_emergency_checkpoint_in_a_real_fit(tmp_path: Path) -> None:
    def crash_at_step_2(module: TinyModule) -> None:
        if module.global_step == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tiny_trainer(tmp_path, [GracefulFallback()], max_steps=10).fit(TinyModule(crash_at_step_2))
    assert torch.load(tmp_path / "emergency-step00002.ckpt", weights_only=True)["global_step"] == 2
