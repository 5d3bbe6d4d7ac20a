"""A collection round that raises is counted and skipped; too many in a row stop the run clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

import datamodules.collection
from priorzero_pl.cli import build_cli
from tests.test_fit import tiny_args


def _flaky_collect(monkeypatch: pytest.MonkeyPatch, fail_calls: set[int]) -> None:
    original = datamodules.collection.collect
    calls = {"n": 0}

    def collect(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in fail_calls:
            raise RuntimeError(f"injected collection failure #{calls['n']}")
        return original(*args, **kwargs)

    monkeypatch.setattr(datamodules.collection, "collect", collect)


@pytest.mark.slow
def test_failed_round_is_counted_and_training_continues(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path
) -> None:
    _flaky_collect(monkeypatch, {2})
    cli = build_cli(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=4)])
    assert cli.trainer.global_step == 4
    assert cli.datamodule.collector_failures == 1
    assert cli.trainer.logged_metrics["collect/failures"] == 1


@pytest.mark.slow
def test_consecutive_failures_stop_the_run_with_the_cause(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path
) -> None:
    _flaky_collect(monkeypatch, set(range(1, 100)))
    args = tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=4) + ["--data.max_consecutive_failures=2"]
    with pytest.raises(RuntimeError, match=r"collection failed 3 times in a row .*injected collection failure #3"):
        build_cli(["fit", *args])
