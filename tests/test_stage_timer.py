"""The stage timer, its proxies (search model, games, valid-action clock), and the perf/ scalars of a tiny fit."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from priorzero_pl.envs.pool_worker import ValidActionClock
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.mcts.types import ModelOutput
from priorzero_pl.rollout import TimedGames
from priorzero_pl.stage_timer import STAGES, StageTimer, StageTotals, TimedSearchModel, perf_metrics, stage_fractions


def test_stages_accumulate_seconds_calls_and_items_until_popped() -> None:
    timer = StageTimer()
    with timer.stage("prior", items=5):
        time.sleep(0.01)
    with timer.stage("prior", items=3):
        pass
    timer.add("backward", 0.5)
    assert timer.seconds("prior") >= 0.01
    assert timer.total() == pytest.approx(timer.seconds("prior") + 0.5)
    totals = timer.pop()
    assert totals.calls == {"prior": 2, "backward": 1}
    assert totals.items == {"prior": 8}
    assert totals.rate("prior") == pytest.approx(8 / totals.seconds["prior"])
    assert timer.pop().seconds == {}  # popped: a new window


def test_a_stage_that_raises_is_still_counted() -> None:
    timer = StageTimer()
    with pytest.raises(ValueError), timer.stage("forward"):
        raise ValueError("boom")
    assert timer.pop().calls == {"forward": 1}


def test_the_remainder_makes_the_stages_add_up_to_the_wall_time() -> None:
    timer = StageTimer()
    timer.add("forward", 0.0)
    time.sleep(0.02)
    totals = timer.pop(remainder="logging_callbacks")
    assert totals.seconds["logging_callbacks"] == pytest.approx(totals.wall, abs=1e-3)
    assert sum(totals.seconds.values()) == pytest.approx(totals.wall, abs=1e-3)


def test_merge_rates_and_fractions() -> None:
    window = StageTotals()
    window.merge(StageTotals(seconds={"env_step": 1.0, "search_tree": 0.5}, items={"env_step": 4, "search_tree": 64}, wall=2.0))
    window.merge(StageTotals(seconds={"env_step": 1.0, "search_model": 1.5}, items={"env_step": 4}, wall=2.0))
    metrics = perf_metrics(window, steps=2)
    assert metrics["env_step_seconds_per_step"] == pytest.approx(1.0)
    assert metrics["env_steps_per_s"] == pytest.approx(8 / 4.0)
    assert metrics["train_steps_per_s"] == pytest.approx(0.5)
    assert metrics["search_simulations_per_s"] == pytest.approx(64 / 2.0)
    assert metrics["prior_candidates_per_s"] == 0.0  # no time spent: no rate, no division by zero
    assert set(metrics) >= {f"{s}_seconds_per_step" for s in STAGES}
    assert stage_fractions(window)["env_step"] == pytest.approx(0.5)


class SlowModel:
    def initial_inference(self, observations, candidates):  # noqa: ANN001, ANN201
        time.sleep(0.01)
        return ModelOutput(torch.zeros(1, 2), torch.zeros(1), torch.zeros(1), torch.zeros(1, 2)), "context"

    def recurrent_inference(self, latent, actions, context):  # noqa: ANN001, ANN201
        time.sleep(0.01)
        return ModelOutput(latent, torch.zeros(1), torch.zeros(1), torch.zeros(1, 2))


def test_timed_search_model_counts_the_models_calls_and_passes_them_through() -> None:
    model = TimedSearchModel(SlowModel())
    output, context = model.initial_inference(["obs"], [["a", "b"]])
    assert context == "context"
    model.recurrent_inference(output.latent, torch.zeros(1, dtype=torch.long), context)
    assert model.calls == 2 and model.seconds >= 0.02


class FakeGames:
    num_envs = 2

    def reset(self, indices=None):  # noqa: ANN001, ANN201
        return [StepRecord("o", ["a"], valid_actions_seconds=0.01) for _ in (indices or range(2))]

    def step(self, actions):  # noqa: ANN001, ANN201
        time.sleep(0.03)
        return [StepRecord("o", ["a"], valid_actions_seconds=s) for s in (0.01, 0.02)]


def test_timed_games_split_the_wait_into_env_step_and_the_slowest_valid_action_search() -> None:
    timer = StageTimer()
    games = TimedGames(FakeGames(), timer)
    assert games.num_envs == 2
    games.step(["a", None])
    totals = timer.pop()
    assert totals.seconds["valid_actions"] == pytest.approx(0.02)
    assert totals.seconds["env_step"] >= 0.03 - 0.02 - 1e-6
    assert totals.items == {"env_step": 1}  # one game moved


def test_the_valid_action_seconds_are_not_part_of_a_records_equality() -> None:
    assert StepRecord("o", ["a"], valid_actions_seconds=1.0) == StepRecord("o", ["a"])


def test_valid_action_clock_times_the_backends_calls() -> None:
    def search(timeout: float) -> str:
        time.sleep(0.01)
        return "found"

    backend = SimpleNamespace(valid_actions=search, check_actions=lambda actions: actions)
    clock = ValidActionClock(backend)
    assert backend.valid_actions(1.0) == "found" and backend.check_actions(["x"]) == ["x"]
    assert clock.take() >= 0.01
    assert clock.take() == 0.0


def test_a_tiny_fit_logs_the_perf_scalars_and_shows_rates_on_the_progress_bar(
    tmp_path: Path, tiny_lm_path: Path, tw_game_path: Path
) -> None:
    from priorzero_pl.cli import build_cli
    from tests.test_fit import tiny_args

    cli = build_cli(["fit", *tiny_args(tmp_path, tiny_lm_path, tw_game_path, max_steps=4), "--trainer.val_check_interval=2", "--trainer.log_every_n_steps=4"])
    logged = cli.trainer.logged_metrics
    for name in [*(f"{s}_seconds_per_step" for s in STAGES), "env_steps_per_s", "train_steps_per_s", "prior_candidates_per_s", "search_simulations_per_s"]:
        assert f"perf/{name}" in logged, f"perf/{name} not logged: {sorted(logged)}"
    for name in ("env_step", "prior", "search_model", "search_tree", "forward", "backward", "optimizer", "replay_sample"):
        assert float(logged[f"perf/{name}_seconds_per_step"]) > 0, name
    assert float(logged["perf/env_steps_per_s"]) > 0
    assert float(logged["perf/search_simulations_per_s"]) > 0
    assert float(logged["perf/prior_candidates_per_s"]) > 0
    # The stages are disjoint and their remainder is logging_callbacks: they add up to the step.
    step = cli.model.last_step_totals
    assert sum(step.seconds.values()) == pytest.approx(step.wall, rel=1e-6)
    bar = cli.trainer.progress_bar_metrics
    assert "perf/env_steps_per_s" in bar and "collect/normalized_score" in bar, sorted(bar)
