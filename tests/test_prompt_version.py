"""Saved prompts carry the prompt version that rendered them; a resume that brings back prompts of
another version warns once (the LLM would train on replayed prompts in the old text)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from priorzero_pl.prior import PROMPT_VERSION
from priorzero_pl.resume import UNRECORDED_PROMPT_VERSION, warn_on_other_prompt_versions
from tests.test_buffer import make_segment
from tests.test_module import make_module
from tests.test_rank_state import rank_datamodule

OLD = "priorzero-prompt-v0"
"""A version this code does not render."""


def _round_trip(state: dict[str, Any]) -> dict[str, Any]:
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=True)


def _prompt_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "prompt version" in str(w.message)]


def test_only_another_version_warns_and_the_message_says_what_it_means() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert not warn_on_other_prompt_versions([PROMPT_VERSION, PROMPT_VERSION], "saved episodes", "x")
        assert warn_on_other_prompt_versions([OLD, PROMPT_VERSION, OLD], "saved episodes", "the old text is replayed")
    assert _prompt_warnings(record) == [
        f"resume: 2 of 3 saved episodes were rendered by prompt version {OLD}, this code renders {PROMPT_VERSION}: "
        "the old text is replayed"
    ]


def test_unrecorded_version_counts_as_the_one_before_versions_were_stored() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warned = warn_on_other_prompt_versions([None], "saved episodes", "x")
    assert warned == (UNRECORDED_PROMPT_VERSION != PROMPT_VERSION) == bool(_prompt_warnings(record))


def test_module_checkpoint_keeps_the_prompt_version_and_warns_on_another(tiny_lm_path: Path) -> None:
    module = make_module(tiny_lm_path)
    module.llm_updates = 5
    checkpoint: dict[str, Any] = {}
    module.on_save_checkpoint(checkpoint)
    loaded = _round_trip(checkpoint)
    assert loaded["priorzero"]["prompt_version"] == PROMPT_VERSION

    resumed = make_module(tiny_lm_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        resumed.on_load_checkpoint(loaded)
    assert _prompt_warnings(record) == [] and resumed.llm_updates == 5

    loaded["priorzero"]["prompt_version"] = OLD
    with pytest.warns(UserWarning, match=rf"the checkpoint's LLM prompts were rendered by prompt version {OLD}") as record:
        make_module(tiny_lm_path).on_load_checkpoint(loaded)
    (message,) = _prompt_warnings(record.list)
    assert "0 queued LLM batches train the LLM on the old text (as its 5 LLM updates so far did)" in message


def test_saved_episodes_keep_their_prompt_version_and_another_warns_once(tw_game_path: Path) -> None:
    datamodule = rank_datamodule(tw_game_path, 0)
    for game, version in (("a", OLD), ("b", PROMPT_VERSION), ("c", OLD)):
        segment = make_segment(3, game=game)
        segment.prompt_version = version
        datamodule.buffer.add(segment)
    checkpoint = _round_trip(datamodule.state_dict())

    resumed = rank_datamodule(tw_game_path, 0)
    with pytest.warns(UserWarning, match="prompt version") as record:
        resumed.load_state_dict(checkpoint)
    assert [s.prompt_version for s in resumed.buffer.recent_segments(3)] == [OLD, PROMPT_VERSION, OLD]
    assert _prompt_warnings(record.list) == [
        f"resume: 2 of 3 saved episodes (replay buffer and episodes in progress) were rendered by prompt version "
        f"{OLD}, this code renders {PROMPT_VERSION}: LLM training on replayed prompts (distillation, RFT, PPO) sees "
        "the old text until those episodes leave the buffer, while new episodes are rendered in the new text"
    ]

    for segment in datamodule.buffer.recent_segments(3):
        segment.prompt_version = PROMPT_VERSION
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        rank_datamodule(tw_game_path, 0).load_state_dict(_round_trip(datamodule.state_dict()))
    assert _prompt_warnings(record) == []
