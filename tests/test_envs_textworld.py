"""TextWorld-generated games: building them offline, and playing them through TextGame."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from priorzero_pl.envs import TextGame, make_game
from priorzero_pl.errors import PriorZeroInputError


def test_walkthrough_reaches_max_score_and_is_always_a_candidate(tw_game_path: Path) -> None:
    with TextGame(tw_game_path) as game:
        walkthrough = game.walkthrough()
        assert walkthrough and game.max_score > 0
        record = game.reset()
        rewards = 0.0
        for action in walkthrough:
            assert not record.candidates_fallback
            assert action in record.candidates
            assert record.candidates == sorted(set(record.candidates))
            record = game.step(action)
            rewards += record.reward
        assert record.done and record.won and not record.truncated
        assert record.score == game.max_score == rewards
        assert record.candidates == []


def test_state_hash_is_stable_and_tracks_the_world(tw_game_path: Path) -> None:
    with TextGame(tw_game_path) as game:
        first = game.reset()
        moved = game.step(game.walkthrough()[0])
        again = game.reset()
    assert first.state_hash == again.state_hash != moved.state_hash
    with TextGame(tw_game_path, seed=5) as other:
        assert other.reset().state_hash == first.state_hash


def test_max_steps_truncates(tw_game_path: Path) -> None:
    with TextGame(tw_game_path, max_steps=2) as game:
        game.reset()
        assert not game.step("look").done
        last = game.step("look")
        assert last.done and last.truncated and not last.won
        with pytest.raises(RuntimeError, match="reset"):
            game.step("look")


def test_make_game_is_cached(tw_game_path: Path) -> None:
    stamp = tw_game_path.stat().st_mtime_ns
    start = time.perf_counter()
    again = make_game(tw_game_path.parent, family="tw-simple", seed=3)
    assert time.perf_counter() - start < 0.5
    assert again == tw_game_path and again.stat().st_mtime_ns == stamp
    assert tw_game_path.with_suffix(".json").is_file()


def test_cli_prints_the_cached_path(tw_game_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "priorzero_pl.envs.textworld_make", "--out", str(tw_game_path.parent),
         "--family", "tw-simple", "--seed", "3"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == str(tw_game_path)


def test_unknown_family_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="family 'tw-maze'"):
        make_game(tmp_path, family="tw-maze")


def test_bad_tw_make_option_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="tw-make tw-simple"):
        make_game(tmp_path, family="tw-simple", seed=1, rewards="lots")


def test_cooking_game_walkthrough_reaches_max_score(tmp_path: Path) -> None:
    path = make_game(tmp_path, family="tw-cooking", seed=1)
    with TextGame(path, max_steps=200) as game:
        record = game.reset()
        for action in game.walkthrough() or []:
            assert action in record.candidates
            record = game.step(action)
        assert record.won and record.score == game.max_score > 1


def test_intro_observation_has_no_ascii_banner(tw_game_path) -> None:
    from priorzero_pl.envs import TextGame

    with TextGame(tw_game_path) as game:
        intro = game.reset().observation
    inventory, _, feedback = intro.partition("\n\n")
    assert "$$" not in intro and inventory == "You are carrying nothing."
    assert feedback.startswith("Hey, thanks for coming over")


def test_observation_leads_with_what_is_carried(tmp_path: Path) -> None:
    """A cooking game's right next step depends on what is carried: every observation says it first."""
    path = make_game(tmp_path, family="tw-cooking", seed=1)
    with TextGame(path, max_steps=200) as game:
        record = game.reset()
        for action in game.walkthrough() or []:
            record = game.step(action)
            if action.startswith("take "):
                item = action.removeprefix("take ").split(" from ")[0]
                assert record.observation.startswith("You are carrying:")
                assert item in record.observation.partition("\n\n")[0]
                return
    pytest.fail("the cooking walkthrough takes nothing")


def test_winning_plan_recovers_from_a_wrong_move(tw_game_path: Path) -> None:
    """After a move off the walkthrough, TextWorld's replanned commands still win the game."""
    with TextGame(tw_game_path, max_steps=200, track_winning_plan=True) as game:
        record = game.reset()
        plan = game.winning_plan()
        assert plan and plan[0] in record.candidates
        detour = next(c for c in record.candidates if c != plan[0] and not c.startswith(("examine", "look", "inventory")))
        record = game.step(detour)
        while not record.done:
            plan = game.winning_plan()
            assert plan and plan[0] in record.candidates
            record = game.step(plan[0])
        assert record.won and game.winning_plan() is None


def test_winning_plan_needs_tracking_and_a_textworld_game(tw_game_path: Path, shared_games_dir: Path) -> None:
    with TextGame(tw_game_path) as game:
        game.reset()
        with pytest.raises(PriorZeroInputError, match="track_winning_plan=True"):
            game.winning_plan()
    with pytest.raises(PriorZeroInputError, match="not a TextWorld game"):
        TextGame(shared_games_dir / "detective.z5", track_winning_plan=True)
