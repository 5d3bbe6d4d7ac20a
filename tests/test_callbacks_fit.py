"""Callbacks switched on and off through YAML in a real (tiny) fit, and failures survived mid-run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from priorzero_pl.cli import build_cli
from tests.test_fit import tiny_args

ALL_ON = {
    "trainer": {
        "callbacks": [
            {"class_path": "callbacks.Checkpointing", "init_args": {"every_n_steps": 3, "keep_last": 2}},
            {"class_path": "callbacks.GracefulFallback"},
            {"class_path": "callbacks.RFT", "init_args": {"every_n_steps": 3, "recent_episodes": 8, "top_fraction": 0.5, "minibatch_size": 64}},
            {"class_path": "callbacks.PPO", "init_args": {"every_n_steps": 2, "recent_episodes": 4, "epochs": 1, "minibatch_size": 64}},
            {"class_path": "callbacks.VLLMWeightSync"},
            {"class_path": "callbacks.Evaluation", "init_args": {"every_n_steps": 3, "episodes": 1, "max_steps": 4}},
            {"class_path": "callbacks.Transcripts", "init_args": {"every_n_steps": 3, "max_steps": 4}},
        ]
    }
}


def _fit(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, overlay: dict, extra: list[str] = (), callbacks=()):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    cli = build_cli([*tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=6), "--config", str(path), *extra], run=False)
    cli.trainer.callbacks.extend(callbacks)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def _scalar_and_text_tags(log_dir: str) -> tuple[set[str], set[str]]:
    events = EventAccumulator(log_dir, size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    return set(tags["scalars"]), set(tags["tensors"])


@pytest.mark.slow
def test_all_callbacks_on_through_yaml(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    cli = _fit(tmp_path, tiny_lm_path, tw_game_path, ALL_ON)
    trainer = cli.trainer
    scalars, texts = _scalar_and_text_tags(trainer.logger.log_dir)
    assert {"llm/rft_loss", "llm/ppo_loss", "llm/old_kl", "llm/clipfrac", "llm/ref_kl", "llm/importance_weight"} <= scalars
    assert any(t.startswith("fallback/") for t in scalars)
    for mode in ("world_model", "world_model+prior", "prior"):
        assert f"eval_{mode}/normalized_score" in scalars
    assert any(t.startswith("transcript") for t in texts)
    checkpoints = sorted(p.name for p in (Path(trainer.default_root_dir) / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and len(checkpoints) <= 3


def test_callbacks_off_through_yaml(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    cli = _fit(tmp_path, tiny_lm_path, tw_game_path, {"trainer": {"callbacks": []}})
    scalars, texts = _scalar_and_text_tags(cli.trainer.logger.log_dir)
    assert "world_model/total" in scalars and "llm/distill_loss" in scalars
    assert not {t for t in scalars if t.startswith(("llm/rft", "llm/ppo", "fallback/", "eval_"))}
    assert not texts
    assert not (Path(cli.trainer.default_root_dir) / "checkpoints").exists()


class BreakThingsMidRun(L.Callback):
    """After step 1: the HF prior starts raising (cache cleared so it is asked again), and one env
    worker is killed."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != 1:
            return
        hf = pl_module.prior.backend("hf")

        def broken(*args, **kwargs):
            raise RuntimeError("injected prior failure")

        hf.score = broken
        pl_module.prior.clear_cache()
        os.kill(trainer.datamodule.env_pool.worker_pids[0], signal.SIGKILL)


@pytest.mark.slow
def test_prior_failure_and_dead_worker_are_survived(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    overlay = {"trainer": {"callbacks": [{"class_path": "callbacks.GracefulFallback"}]}}
    cli = _fit(tmp_path, tiny_lm_path, tw_game_path, overlay, callbacks=[BreakThingsMidRun()])
    assert cli.trainer.global_step == 6
    metrics = cli.trainer.callback_metrics
    assert metrics["fallback/env_restarts"] >= 1
    assert metrics["fallback/failures/hf"] >= 1 and metrics["fallback/fallbacks"] >= 1
    assert torch.isfinite(metrics["world_model/total"])


@pytest.mark.parametrize("name", ["RFT", "PPO"])
def test_llm_callback_with_a_frozen_llm_fails_at_fit_start(
    name: str, tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from priorzero_pl.cli import main

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": [{"class_path": f"callbacks.{name}"}]}}))
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path) + ["--config", str(overlay), "--model.llm.train=false"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args])
    assert exit_info.value.code == 2
    assert f"callbacks.{name} trains the LLM but model.llm.train is false" in capsys.readouterr().err
