"""``callbacks.Evaluation``: greedy episodes per acting mode, reduced and logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from callbacks import Evaluation
from priorzero_pl import episodes
from priorzero_pl.episodes import EpisodeResult
from tests.callback_fakes import GameData, MemoryLogger, TinyModule, fake_episode, tiny_trainer


def test_evaluation_logs_every_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, str, int, int, dict]] = []

    def play(agent: Any, game: str, *, episodes: int, seed: int, **game_kwargs: Any) -> list[EpisodeResult]:
        assert not module.training and not torch.is_grad_enabled(), "episodes are played in eval mode, without autograd"
        calls.append((agent, game, episodes, seed, game_kwargs))
        return [fake_episode(2.0, 3), fake_episode(4.0, 5)]

    monkeypatch.setattr(episodes, "play_episodes", play)
    logger = MemoryLogger()
    callback = Evaluation(every_n_steps=2, episodes=2, seed=7, max_steps=9)
    module = TinyModule(on_step=lambda m: training_modes.append(m.training))
    training_modes: list[bool] = []
    trainer = tiny_trainer(tmp_path, [callback], max_steps=3, logger=logger)
    trainer.fit(module, datamodule=GameData())
    assert training_modes == [True, True, True], "training resumes in train mode after an evaluation"
    modes = ["world_model", "world_model+prior", "prior"]
    expected = [(("evaluate", m), "stories/game.z5", 2, 7, {"max_steps": 9, "valid_actions_timeout": 5.0}) for m in modes]
    assert calls == expected * 2, "each mode's evaluation agent, at step 2 and at the end of training (step 3)"
    logged = [(step, metrics) for step, metrics in logger.metrics if any(k.startswith("eval_") for k in metrics)]
    assert [step for step, _ in logged] == [2, 3]
    for mode in modes:
        assert logged[-1][1][f"eval_{mode}/score"] == 3.0
        assert logged[-1][1][f"eval_{mode}/normalized_score"] == 0.75
        assert logged[-1][1][f"eval_{mode}/episode_length"] == 4.0
    assert callback.last_metrics == logged[-1][1]
    assert float(trainer.callback_metrics["eval_prior/normalized_score"]) == 0.75
