"""Session-wide fixtures: the tiny LM and the generated game are built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


SHARED_GAMES = Path(__file__).resolve().parents[1].parent / "shared" / "games"


@pytest.fixture(scope="session")
def shared_games_dir() -> Path:
    """../shared/games (real Jericho story files); tests that need it skip when it is absent."""
    games = Path(os.environ.get("PRIORZERO_GAMES", SHARED_GAMES))
    if not (games / "zork1.z5").exists():
        pytest.skip(f"no Jericho story files in {games}")
    return games


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama causal LM with a locally trained BPE tokenizer, saved with save_pretrained."""
    from priorzero_pl.assets.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture(scope="session")
def tw_game_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small TextWorld game with graded rewards (tw-simple, dense rewards, seed 3)."""
    from priorzero_pl.envs.textworld_make import make_game

    return make_game(tmp_path_factory.mktemp("games"), family="tw-simple", seed=3)


EASY_COOKING = {"recipe": 1, "take": 1, "go": 1}
"""The easiest tw-cooking level: short walkthroughs (about 5 steps), so corpora build in seconds."""


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train-split walkthrough corpus of 3 easy cooking games (prompt settings of configs/debug.yaml)."""
    from priorzero_pl.corpus import CorpusPlan, build_corpus

    out = tmp_path_factory.mktemp("corpus-train")
    plan = CorpusPlan(split="train", num_games=3, family_weights={"tw-cooking": 1.0}, cooking_options=EASY_COOKING)
    build_corpus(out, plan, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_test_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test-split corpus of 2 easy cooking games that no train corpus can hold."""
    from priorzero_pl.corpus import CorpusPlan, build_corpus

    out = tmp_path_factory.mktemp("corpus-test")
    plan = CorpusPlan(split="test", num_games=2, family_weights={"tw-cooking": 1.0}, cooking_options=EASY_COOKING)
    build_corpus(out, plan, progress=False)
    return out
