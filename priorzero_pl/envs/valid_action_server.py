"""Child side of :class:`~priorzero_pl.envs.valid_actions.ValidActionOracle`: one worker of the search.

Run as ``python -m priorzero_pl.envs.valid_action_server FD STORY SEED NAMER``. The worker holds its
own copy of the game and answers two requests, each for a game state (a ``FrotzEnv.get_state()``
tuple) that the parent sends along:

- ``("name", state)`` -> ``("named", candidates, objects)``: Jericho's candidate actions for the
  state (its grammar templates filled with the names of the objects in reach) and the names each
  one was filled with. Only a worker started with NAMER=1 does this, because naming needs spaCy.
- ``("test", state or None, candidates)`` -> ``("tested", [(position, diff), ...])``: which of the
  candidates change the world from that state (None: the state of the previous request), with the
  world change of each, by Jericho's own candidate loop (C, through ctypes).

Any exception is answered with ``("error", message, traceback)``. The worker exits when the parent
closes the pipe; the parent kills it when a request runs too long (the C loop can hang).
"""

from __future__ import annotations

import sys
import traceback
from collections import defaultdict, deque

from priorzero_pl.envs.child_process import parent_connection


def candidates_with_objects(env: object, names: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
    """``env.act_gen.generate_actions(names)`` (same list, same order), with the names each one holds."""
    candidates: list[str] = []
    objects: list[tuple[str, ...]] = []
    for template in env.act_gen.templates:  # type: ignore[attr-defined]
        count = template.count("OBJ")
        if count <= 0:
            fillings: list[tuple[str, ...]] = [()]
        elif count == 1:
            fillings = [(name,) for name in names]
        elif count == 2:
            fillings = [(first, second) for first in names for second in names if first != second]
        else:
            fillings = []  # Jericho has no template with more than two objects, and skips any
        for filling in fillings:
            action = template
            for name in filling:
                action = action.replace("OBJ", name, 1)
            candidates.append(action)
            objects.append(filling)
    return candidates, objects


def name_candidates(env: object, state: tuple) -> tuple[list[str], list[tuple[str, ...]]]:
    """The first half of ``FrotzEnv.get_valid_actions``: the candidates for ``state``."""
    if not env.is_fully_supported or not env.act_gen:  # type: ignore[attr-defined]
        return [], []  # Jericho returns no valid actions for games it does not support
    env.set_state(state)  # type: ignore[attr-defined]
    objects = env._identify_interactive_objects(use_object_tree=True)  # type: ignore[attr-defined]
    names = env._score_object_names(objects)  # type: ignore[attr-defined]
    env.set_state(state)  # type: ignore[attr-defined]
    return candidates_with_objects(env, names)


def test_candidates(env: object, state: tuple, candidates: list[str]) -> list[tuple[int, bytes]]:
    """The second half: (position in ``candidates``, world-change bytes) of each one that is valid."""
    import numpy as np

    env.set_state(state)  # type: ignore[attr-defined]
    by_diff = env._filter_candidate_actions(candidates, use_ctypes=True, use_parallel=False)  # type: ignore[attr-defined]
    # Jericho returns {diff: [actions]}; each valid occurrence of a string is one entry, in order.
    diffs: dict[str, deque[bytes]] = defaultdict(deque)
    for diff, actions in by_diff.items():
        blob = np.asarray(diff, dtype=np.uint16).tobytes()
        for action in actions:
            diffs[action].append(blob)
    return [(position, diffs[action].popleft()) for position, action in enumerate(candidates) if diffs.get(action)]


def main() -> None:
    """Serve requests until the parent goes away."""
    connection = parent_connection()
    story, seed, namer = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    # spaCy's thinc imports torch when it can (1.5 s per start); this process never needs it.
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from jericho import FrotzEnv

        if namer:
            from priorzero_pl.envs.spacy_pipeline import install_spacy_pipeline

            install_spacy_pipeline()
        env = FrotzEnv(story, seed)
        env.reset()
    except Exception as exc:  # reported to the parent, which raises it with context
        connection.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    connection.send(("ready", "", ""))
    state: tuple | None = None
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        try:
            if request[0] == "name":
                state = request[1]
                reply: tuple = ("named", *name_candidates(env, state))
            else:
                state = request[1] if request[1] is not None else state
                reply = ("tested", test_candidates(env, state, request[2]))
        except Exception as exc:  # a bug or a broken state: the parent raises it
            reply = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        try:
            connection.send(reply)
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    main()
