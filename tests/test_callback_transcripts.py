"""``callbacks.Transcripts``: one episode as a TensorBoard text table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks import Transcripts
from priorzero_pl import episodes
from priorzero_pl.episodes import EpisodeResult
from tests.callback_fakes import GameData, MemoryLogger, TinyModule, fake_episode, tiny_trainer


def test_transcripts_write_tensorboard_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    played = []

    def play(agent: Any, game: str, **kw: Any) -> list[EpisodeResult]:
        played.append((agent, game, kw))
        return [fake_episode(1.0, 2)]

    monkeypatch.setattr(episodes, "play_episodes", play)
    logger = TensorBoardLogger(tmp_path, name="tb")
    module = TinyModule()
    tiny_trainer(tmp_path, [Transcripts(every_n_steps=2, mode="prior", seed=3)], max_steps=4, logger=logger).fit(
        module, datamodule=GameData()
    )
    assert played == [
        (("evaluate", "prior"), "stories/game.z5", {"episodes": 1, "seed": 3, "max_steps": 7, "valid_actions_timeout": 5.0})
    ] * 2

    events = EventAccumulator(logger.log_dir, size_guidance={"tensors": 0})
    events.Reload()
    tag = "transcript/prior/text_summary"
    assert tag in events.Tags()["tensors"]
    entries = events.Tensors(tag)
    assert [e.step for e in entries] == [2, 4]
    text = entries[0].tensor_proto.string_val[0].decode()
    assert "| step | observation | candidates (prior / visits) | action | reward |" in text
    assert "West of House<br>There is a \\| mailbox here." in text
    assert "**open mailbox (0.70 / 0.88)**<br>go north (0.30 / 0.12)" in text
    assert "score **1** / 4 in 2 steps" in text


def test_transcripts_do_nothing_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def play(module: Any, **kw: Any) -> list[EpisodeResult]:
        raise AssertionError("no episode should be played without a TensorBoard logger")

    monkeypatch.setattr(episodes, "play_episodes", play)
    tiny_trainer(tmp_path, [Transcripts(every_n_steps=1)], max_steps=2, logger=MemoryLogger()).fit(TinyModule())


def test_transcript_cells_show_game_text_literally() -> None:
    from callbacks.transcripts import transcript_markdown

    episode = fake_episode(0.0, 1)
    episode.transcript[0].observation = "  \\|/ *banner* _x_\r\n|"
    row = transcript_markdown(episode, "h").splitlines()[-1]
    assert row.startswith("| 0 | \\\\\\|/ \\*banner\\* \\_x\\_<br>\\| | ")
    assert row.count(" | ") == 4, "exactly five cells: no unescaped pipe from the game text"
