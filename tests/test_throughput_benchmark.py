"""benchmarks/throughput.py: its figures from per-step stage totals, its configs, its arguments (no fit)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from priorzero_pl.stage_timer import STAGES, StageTotals

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import throughput  # noqa: E402


def test_summary_rates_and_shares_from_step_totals() -> None:
    steps = [
        StageTotals(seconds={"env_step": 1.0, "forward": 1.0}, items={"env_step": 16}, wall=2.0),
        StageTotals(seconds={"forward": 1.0, "logging_callbacks": 1.0}, wall=2.0),
    ]
    figures = throughput.summarise(steps)
    assert figures["train_steps_per_s"] == pytest.approx(0.5)
    assert figures["env_steps_per_s"] == pytest.approx(4.0)
    assert figures["fraction_forward"] == pytest.approx(0.5)
    assert sum(figures[f"fraction_{s}"] for s in STAGES) == pytest.approx(1.0)
    text = throughput.table("debug", {"budget": figures, "default": figures}, {"budget": 1, "default": 2})
    assert all(name in text for name in STAGES) and "2 learner threads" in text


def test_the_configs_exist_and_the_observing_callbacks_are_dropped(tmp_path: Path) -> None:
    for spec in throughput.CONFIGS.values():
        assert all((throughput.CONFIG_DIR / name).is_file() for name in spec["files"])
    overlay = yaml.safe_load(throughput.callbacks_overlay(["debug.yaml"], tmp_path).read_text())
    kept = {c["class_path"] for c in overlay["trainer"]["callbacks"]}
    assert kept and not kept & throughput.OBSERVERS


def test_too_few_steps_is_refused() -> None:
    with pytest.raises(SystemExit):
        throughput.parse_args(["--steps", "1", "--skip", "1"])
