"""``connect``: the module gets the replay buffer, the data module its collecting agent, and
neither looks the other up through the trainer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy

from datamodules.collection import PriorZeroDataModule
from priorzero_pl.buffer import ReplayBuffer
from priorzero_pl.episodes import RandomAgent
from priorzero_pl.stage_timer import StageTimer
from tests.test_buffer import make_segment
from tests.test_module import make_module


def test_the_module_updates_the_priorities_of_the_buffer_it_was_connected_to(
    tiny_lm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connected, other = ReplayBuffer(100, prioritized=True), ReplayBuffer(100, prioritized=True)
    for buffer in (connected, other):
        for i in range(3):
            buffer.add(make_segment(4, game=f"g{i}"))
    module = make_module(tiny_lm_path)
    module.connect(connected)
    module.trainer = SimpleNamespace(
        global_step=0,
        strategy=SingleDeviceStrategy(device=torch.device("cpu")),
        optimizers=[module.configure_optimizers()["optimizer"]],
    )
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(module, "log_dict", lambda *args, **kwargs: None)
    before = connected.state_dict()["priorities"]
    assert before == other.state_dict()["priorities"] == [1.0] * 12

    batch = connected.sample(6)
    assert module.training_step({"world_model": batch}, 0) is not None
    after = np.asarray(connected.state_dict()["priorities"])
    trained = sorted(set(batch.indices.tolist()))
    assert not np.allclose(after[trained], 1.0), "the trained steps get their value errors as priorities"
    untouched = [i for i in range(12) if i not in trained]
    assert np.allclose(after[untouched], 1.0)
    assert other.state_dict()["priorities"] == before, "a buffer the module was not connected to is left alone"


def test_the_data_module_collects_with_the_agent_factory_it_was_given(tw_game_path: Path) -> None:
    datamodule = PriorZeroDataModule(
        game=str(tw_game_path), num_envs=1, max_episode_steps=3, collect_steps=3, warmup_steps=3
    )
    with pytest.raises(RuntimeError, match="no agent to collect with: call priorzero_pl.cli.connect"):
        datamodule.collect_round()

    temperatures: list[float] = []

    def factory(*, temperature: float) -> RandomAgent:
        temperatures.append(temperature)
        return RandomAgent()

    datamodule.connect(factory)
    try:
        metrics = datamodule.collect_round()
    finally:
        datamodule.teardown("fit")
    assert temperatures == [1.0], "one agent per round, at the schedule's temperature (temperature_start at step 0)"
    assert metrics["env_steps"] >= 3 and datamodule.buffer.num_steps > 0
    segments = datamodule.buffer.recent_segments(datamodule.buffer.num_segments)
    assert all(prompt == "" for s in segments for prompt in s.prompts), "the random agent (no prompt) played every step"


def test_the_data_module_reports_its_stages_to_the_timer_it_was_given(tw_game_path: Path) -> None:
    datamodule = PriorZeroDataModule(
        game=str(tw_game_path), num_envs=1, max_episode_steps=3, collect_steps=3, warmup_steps=3, batch_size=2
    )
    timer = StageTimer()
    datamodule.connect(lambda *, temperature: RandomAgent(), timer)
    try:
        batch = datamodule.next_batch()
    finally:
        datamodule.teardown("fit")
    assert "world_model" in batch
    totals = timer.pop()
    assert totals.items["env_step"] >= 3, "every env step of the round was timed"
    assert totals.calls["replay_sample"] == 1 and totals.calls["collect_other"] == 1

    untimed = PriorZeroDataModule(game=str(tw_game_path), num_envs=1, max_episode_steps=3, collect_steps=3, warmup_steps=3)
    untimed.connect(lambda *, temperature: RandomAgent())
    try:
        untimed.collect_round()
    finally:
        untimed.teardown("fit")
    assert timer.pop().calls == {}, "a data module connected without a timer reports to none"
