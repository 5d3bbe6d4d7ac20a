"""Exact resume: a fit of 2N steps and a fit of N steps, stopped, resumed for N more, end with the
same weights and log the same metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.loggers import Logger

from priorzero_pl.cli import build_cli
from tests.test_fit import tiny_args

N = 3
"""Steps before the stop. The RFT round at step 3 runs just before the save (Lightning runs the
Checkpointing callback last) and its batch is applied after the resume; PPO rounds at 2 and 4
straddle the stop; validations run at 2, 4 and 6."""

CALLBACKS = {
    "trainer": {
        "callbacks": [
            {"class_path": "callbacks.Checkpointing", "init_args": {"every_n_steps": N, "keep_last": 1}},
            {"class_path": "callbacks.RFT", "init_args": {"every_n_steps": 3, "recent_episodes": 4, "top_fraction": 0.5, "minibatch_size": 16}},
            {"class_path": "callbacks.PPO", "init_args": {"every_n_steps": 2, "recent_episodes": 2, "epochs": 1, "minibatch_size": 16}},
        ]
    }
}

PROCESS_DIAGNOSTICS = ("prior/", "perf/")
"""The prior's serving figures (latency, cache hit rate, calls per backend, a windowed entropy)
and the stage timings (wall seconds) describe this process and start again with it; everything
else must match."""


class MemoryLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.by_step: dict[int, dict[str, float]] = {}

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        kept = {k: float(v) for k, v in metrics.items() if not k.startswith(PROCESS_DIAGNOSTICS)}
        self.by_step.setdefault(int(step), {}).update(kept)


def _fit(root: Path, tiny_lm_path: Path, tw_game_path: Path, max_steps: int, ckpt: Path | None = None):
    overlay = root / "callbacks.yaml"
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.write_text(yaml.safe_dump(CALLBACKS))
    args = tiny_args(root, tiny_lm_path, tw_game_path, max_steps=max_steps) + [
        "--config", str(overlay), "--trainer.val_check_interval=2", "--data.collect_steps=3",
    ]
    cli = build_cli(args, run=False)
    logger = MemoryLogger()
    cli.trainer.loggers = [*cli.trainer.loggers, logger]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=None if ckpt is None else str(ckpt))
    return cli, logger


@pytest.mark.slow
def test_stopped_and_resumed_fit_equals_an_uninterrupted_one(tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path) -> None:
    whole, whole_log = _fit(tmp_path / "whole", tiny_lm_path, tw_game_path, 2 * N)
    first, first_log = _fit(tmp_path / "first", tiny_lm_path, tw_game_path, N)
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == N
    assert first.model.llm_queue_size > 0, "queued LLM batches must cross the checkpoint for this test to mean anything"
    assert first.datamodule.state_dict()["ranks"][0]["rollout"]["segments"], "so must episodes in progress"
    resumed, resumed_log = _fit(tmp_path / "resumed", tiny_lm_path, tw_game_path, 2 * N, ckpt=last)

    assert resumed.trainer.global_step == whole.trainer.global_step == 2 * N
    for name in ("world_model", "llm"):
        expected = getattr(whole.model, name).state_dict()
        for key, value in getattr(resumed.model, name).state_dict().items():
            assert torch.equal(value, expected[key]), f"{name}.{key} differs after the resume"

    stitched = {s: m for s, m in first_log.by_step.items() if s < N}
    stitched.update({s: m for s, m in resumed_log.by_step.items() if s >= N})
    uninterrupted = whole_log.by_step
    assert sorted(stitched) == sorted(uninterrupted)
    for step, metrics in uninterrupted.items():
        for key, value in stitched[step].items():
            assert value == metrics[key], f"{key} logged at step {step}: {value} after the resume, {metrics[key]} without"
        # Lightning emits again, at every step of an epoch, the last value of a key logged at an
        # earlier step (a round's collect/* figures, say); those epoch results are not part of a
        # checkpoint, so the resumed run cannot repeat what the stopped run logged. Everything the
        # uninterrupted run logs beyond the stitched run's keys must be such a repeat.
        for key in set(metrics) - set(stitched[step]):
            assert step > 0 and uninterrupted[step - 1].get(key) == metrics[key], f"{key} at step {step} is missing"
    keys = set().union(*stitched.values())
    assert {"llm/ppo_loss", "llm/rft_loss", "eval/normalized_score", "collect/env_steps", "world_model/total"} <= keys
