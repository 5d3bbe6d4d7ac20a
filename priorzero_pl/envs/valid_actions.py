"""Jericho's valid actions with a hard timeout: the search runs in a child process that can be killed.

``FrotzEnv.get_valid_actions`` takes 40 ms to 2 s on Zork I, and on some states never returns
(jericho issue #53), stuck in C code where no Python-level timeout can interrupt it. The child holds
its own copy of the game and is sent the parent's state with each request, so killing it loses
nothing; a fresh one is started right away so that the next request does not pay for the start.
"""

from __future__ import annotations

from pathlib import Path

from priorzero_pl.envs.child_process import ChildDied, ChildProcess, ChildTimeout
from priorzero_pl.envs.spacy_pipeline import require_spacy_pipeline

STARTUP_TIMEOUT_S = 120.0
"""How long a new child may take to load Jericho and spaCy (about 1 s; more on a loaded machine)."""


class ValidActionOracle:
    """Computes valid actions for Jericho game states in a killable child process.

    ``timeouts`` counts requests that timed out or crashed the child (the caller falls back to
    default actions; the child is replaced).
    """

    def __init__(self, story: Path, seed: int) -> None:
        require_spacy_pipeline()
        self._story = story
        self._seed = seed
        self._child: ChildProcess | None = None
        self._ready = False
        self.timeouts = 0
        self._start()

    def compute(self, state: object, timeout: float) -> list[str] | None:
        """Valid actions for ``state`` (a ``FrotzEnv.get_state()`` tuple), or None when the search timed out or crashed."""
        child = self._wait_ready()
        try:
            child.send(state)
            actions = child.recv(timeout)
        except (ChildTimeout, ChildDied):
            self.timeouts += 1
            self._replace_child()
            return None
        return list(actions)  # type: ignore[call-overload]

    def close(self) -> None:
        """Stop the child process."""
        if self._child is not None:
            self._child.kill()
            self._child = None

    def _start(self) -> None:
        self._child = ChildProcess(
            "priorzero_pl.envs.valid_action_server", (str(self._story), str(self._seed))
        )
        self._ready = False

    def _replace_child(self) -> None:
        self.close()
        self._start()

    def _wait_ready(self) -> ChildProcess:
        if self._child is None:
            self._start()
        child = self._child
        assert child is not None
        if self._ready:
            return child
        try:
            status, message, details = child.recv(STARTUP_TIMEOUT_S)  # type: ignore[misc]
        except (ChildTimeout, ChildDied) as exc:
            self.close()
            raise RuntimeError(f"valid-action process for {self._story} failed to start: {exc}") from exc
        if status != "ready":
            self.close()
            raise RuntimeError(f"valid-action process for {self._story} failed to start: {message}\n{details}")
        self._ready = True
        return child
