"""EnvPool: same trajectories as single games, and survival of crashed or hung workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from priorzero_pl.envs import EnvPool, StepRecord, TextGame
from priorzero_pl.errors import PriorZeroInputError


def _pick(record: StepRecord, step: int) -> str:
    """A deterministic, non-trivial action choice so the two envs wander differently."""
    return record.candidates[(7 * step + len(record.observation)) % len(record.candidates)]


def _play_single(path: Path, seed: int, steps: int) -> list[StepRecord]:
    with TextGame(path, seed=seed, max_steps=50) as game:
        records = [game.reset()]
        for step in range(steps):
            if records[-1].done:
                break
            records.append(game.step(_pick(records[-1], step + seed)))
    return records


def test_pool_matches_single_games(tw_game_path: Path) -> None:
    steps = 12
    expected = [_play_single(tw_game_path, seed=4 + i, steps=steps) for i in range(2)]
    with EnvPool(tw_game_path, 2, seed=4, max_steps=50) as pool:
        assert pool.num_envs == 2 and pool.max_score == expected[0][0].max_score
        got: list[list[StepRecord]] = [[r] for r in pool.reset()]
        for step in range(steps):
            if any(trace[-1].done for trace in got):
                break
            records = pool.step([_pick(got[i][-1], step + 4 + i) for i in range(2)])
            for trace, record in zip(got, records):
                trace.append(record)
    length = min(len(t) for t in got)
    assert length > 5
    for i in range(2):
        assert got[i][:length] == expected[i][:length]


def test_killed_worker_is_restarted_and_others_continue(tw_game_path: Path) -> None:
    with EnvPool(tw_game_path, 2, step_timeout=20) as pool:
        first = pool.reset()
        walk = TextGame(tw_game_path).walkthrough()
        assert walk is not None
        pool.step([walk[0], walk[0]])
        old_pid = pool.worker_pids[0]
        os.kill(old_pid, signal.SIGKILL)
        records = pool.step([walk[1], walk[1]])
        assert records[0].done and records[0].truncated and "env 0" in (records[0].error or "")
        assert records[0].score == 1.0
        assert records[1].error is None and not records[1].done and records[1].score == 2.0
        assert pool.restarts == 1 and pool.worker_pids[0] != old_pid
        fresh = pool.reset([0])[0]
        assert fresh.state_hash == first[0].state_hash and fresh.error is None
        after = pool.step([walk[0], walk[2]])
        assert after[0].score == 1.0 and after[1].score == 3.0


def test_hung_worker_times_out(tw_game_path: Path) -> None:
    with EnvPool(tw_game_path, 2, step_timeout=1.0) as pool:
        pool.reset()
        os.kill(pool.worker_pids[1], signal.SIGSTOP)
        records = pool.step(["look", "look"])
        assert records[0].error is None and not records[0].done
        assert records[1].truncated and "step_timeout" in (records[1].error or "")
        assert pool.restarts == 1
        # The replacement was reset when it started, so both envs step normally again.
        assert all(r.error is None and not r.done for r in pool.step(["look", "look"]))


def test_bad_options_fail_before_starting_workers(tw_game_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="max_stepz"):
        EnvPool(tw_game_path, 2, max_stepz=3)
    with pytest.raises(PriorZeroInputError, match="num_envs=0"):
        EnvPool(tw_game_path, 0)


def test_bad_option_value_is_reported_from_the_worker(tw_game_path: Path) -> None:
    with pytest.raises(PriorZeroInputError, match="max_steps=0"):
        EnvPool(tw_game_path, 1, max_steps=0)


def test_step_needs_one_action_per_env(tw_game_path: Path) -> None:
    with EnvPool(tw_game_path, 2) as pool:
        pool.reset()
        with pytest.raises(ValueError, match="one action per env"):
            pool.step(["look"])


def test_worker_error_is_raised_and_the_pool_stays_in_step(tw_game_path: Path) -> None:
    with EnvPool(tw_game_path, 2, max_steps=1) as pool:
        pool.reset()
        assert all(r.truncated for r in pool.step(["look", "look"]))
        with pytest.raises(RuntimeError, match="env 0 .*call reset"):
            pool.step(["look", "look"])
        records = pool.reset()
        # Both answers of the failed call were read, so these are the answers to this reset.
        assert all(not r.done and r.candidates for r in records)
        assert pool.restarts == 0
