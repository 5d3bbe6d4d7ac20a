"""The real Jericho story files: walkthroughs reach full score; valid actions, their cache and timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from priorzero_pl.envs import EnvPool, TextGame

MAX_SCORES = {"zork1": 350, "detective": 360, "pentari": 70, "acorncourt": 30, "omniquest": 50, "library": 30}
"""From ../shared/games/README.md."""


@pytest.mark.parametrize("name", sorted(MAX_SCORES))
def test_walkthrough_reaches_max_score(shared_games_dir: Path, name: str) -> None:
    # Stepping only: valid actions at every step would take minutes on zork1.
    with TextGame(name, games_dir=shared_games_dir, max_steps=1000, use_valid_actions=False) as game:
        assert game.name == name and game.max_score == MAX_SCORES[name]
        walkthrough = game.walkthrough()
        assert walkthrough
        record = game.reset()
        assert record.candidates_fallback and record.state_hash
        total = record.score  # detective starts with 10 points
        for action in walkthrough:
            record = game.step(action)
            total += record.reward
        assert record.score == total == MAX_SCORES[name]


def test_state_hash_identifies_world_states(shared_games_dir: Path) -> None:
    with TextGame("zork1", games_dir=shared_games_dir, use_valid_actions=False) as game, \
            TextGame("zork1", games_dir=shared_games_dir, use_valid_actions=False, seed=7) as other:
        home = game.reset().state_hash
        north = game.step("north").state_hash
        back = game.step("west").state_hash  # North of House -> West of House again
        opened = game.step("open mailbox").state_hash
        assert len({home, north, opened}) == 3 and back == home
        assert other.reset().state_hash == home


def test_zork1_valid_actions_come_back_within_timeout(shared_games_dir: Path) -> None:
    with TextGame("zork1", games_dir=shared_games_dir, valid_actions_timeout=5.0) as game:
        start = game.reset()
        assert not start.candidates_fallback
        assert "open mailbox" in start.candidates
        assert start.candidates == sorted(set(start.candidates))
        opened = game.step("open mailbox")
        assert not opened.candidates_fallback and "take leaflet" in opened.candidates


def test_cache_answers_revisited_states_without_searching(shared_games_dir: Path) -> None:
    with TextGame("zork1", games_dir=shared_games_dir) as game:
        first = game.reset()
        second = game.reset()
        assert second.candidates == first.candidates and not second.candidates_fallback
        assert (game.valid_action_searches, game.valid_action_cache_hits) == (1, 1)
    with TextGame("zork1", games_dir=shared_games_dir, cache_valid_actions=False) as uncached:
        assert uncached.reset().candidates == uncached.reset().candidates == first.candidates
        assert (uncached.valid_action_searches, uncached.valid_action_cache_hits) == (2, 0)


def test_timeout_falls_back_to_default_actions(shared_games_dir: Path) -> None:
    defaults = ("look", "north", "look")
    with TextGame("zork1", games_dir=shared_games_dir, valid_actions_timeout=1e-4, default_actions=defaults) as game:
        record = game.reset()
        assert record.candidates_fallback and record.candidates == ["look", "north"]
        # A cut-short search is not cached: the next visit resumes it (and runs out of time again here).
        assert game.reset().candidates_fallback


@pytest.mark.slow
def test_pool_valid_actions_match_single_games(shared_games_dir: Path) -> None:
    actions = [("open mailbox", "north"), ("take leaflet", "east"), ("north", "open window")]
    expected = []
    for i in range(2):
        with TextGame("zork1", games_dir=shared_games_dir, seed=1 + i) as game:
            expected.append([game.reset()] + [game.step(pair[i]) for pair in actions])
    with EnvPool("zork1", 2, games_dir=shared_games_dir, seed=1) as pool:
        got = [pool.reset()] + [pool.step(list(pair)) for pair in actions]
    assert [[step[i] for step in got] for i in range(2)] == expected
    assert not any(r.candidates_fallback for trace in expected for r in trace)
