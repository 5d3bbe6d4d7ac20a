"""Many copies of one game, each in its own process, stepped together: :class:`EnvPool`."""

from __future__ import annotations

import inspect
import os
import time
from multiprocessing.connection import wait
from types import TracebackType
from typing import Sequence

from priorzero_pl.envs.child_process import ChildDied, ChildProcess, ChildTimeout
from priorzero_pl.envs.game_files import resolve_game
from priorzero_pl.envs.step import StepRecord
from priorzero_pl.envs.text_game import TextGame
from priorzero_pl.errors import PriorZeroInputError

STARTUP_TIMEOUT_S = 120.0
"""How long a worker may take to start and load its game (about 0.5 s; more on a loaded machine)."""


class EnvPool:
    """``num_envs`` :class:`TextGame` s of one game in worker processes; env ``i`` uses seed ``seed + i``.

    Requests go to all workers before any answer is read, so the games (and their valid-action
    searches, the expensive part) run concurrently. A worker that dies or does not answer within
    ``step_timeout`` seconds is killed and replaced by a fresh, reset game; its record for that call
    has ``done=True, truncated=True`` and ``error`` set, the other envs are unaffected, and
    ``restarts`` counts it. Results are deterministic given the seed, except where a valid-action
    search timed out. Unless ``valid_action_workers`` is given, the CPU cores are shared out among
    the envs for their valid-action searches (at least one search process each).
    """

    def __init__(
        self,
        game: str | os.PathLike,
        num_envs: int,
        *,
        seed: int = 0,
        step_timeout: float = 30.0,
        **text_game_kwargs: object,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise PriorZeroInputError(f"num_envs={num_envs!r}: must be an integer >= 1")
        if not step_timeout > 0:
            raise PriorZeroInputError(f"step_timeout={step_timeout}: must be > 0 seconds")
        try:
            inspect.signature(TextGame).bind(game, **text_game_kwargs)
        except TypeError as exc:
            raise PriorZeroInputError(f"EnvPool options {sorted(text_game_kwargs)}: {exc}") from exc
        games_dir = text_game_kwargs.pop("games_dir", None)
        if text_game_kwargs.get("valid_action_workers") is None:
            text_game_kwargs["valid_action_workers"] = max(1, (os.cpu_count() or 1) // num_envs)
        self._path = resolve_game(game, games_dir)  # type: ignore[arg-type]
        self._seed = seed
        self._step_timeout = float(step_timeout)
        self._options = text_game_kwargs
        self._workers: list[ChildProcess] = []
        self._last: list[StepRecord | None] = [None] * num_envs
        self.restarts = 0
        try:
            for index in range(num_envs):
                self._workers.append(self._launch(index))
            # Launched first and awaited after, so the workers load their games in parallel.
            infos = [self._await_ready(index, worker) for index, worker in enumerate(self._workers)]
        except BaseException:
            self.close()
            raise
        self._name, self._max_score = infos[0]

    @property
    def num_envs(self) -> int:
        """How many games the pool runs."""
        return len(self._workers)

    @property
    def name(self) -> str:
        """The game's short name."""
        return self._name

    @property
    def max_score(self) -> float:
        """The game's highest reachable score."""
        return self._max_score

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers, env order (they change when a worker is restarted)."""
        return [worker.pid for worker in self._workers]

    def reset(self, indices: Sequence[int] | None = None) -> list[StepRecord]:
        """Reset the envs at ``indices`` (all when None); returns their records in that order."""
        chosen = list(range(self.num_envs)) if indices is None else list(indices)
        if any(not 0 <= i < self.num_envs for i in chosen) or len(set(chosen)) != len(chosen):
            raise ValueError(f"reset indices {chosen}: need distinct envs in 0..{self.num_envs - 1}")
        return self._exchange({i: ("reset",) for i in chosen})

    def step(self, actions: Sequence[str]) -> list[StepRecord]:
        """Step every env with its action (one per env, in env order), all at once."""
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise ValueError(f"step needs one action per env ({self.num_envs}), got {actions!r}")
        return self._exchange({i: ("step", action) for i, action in enumerate(actions)})

    def close(self) -> None:
        """Stop all workers (each closes its game)."""
        for worker in self._workers:
            worker.connection.close()
        for worker in self._workers:
            worker.close(grace=2.0)

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _exchange(self, requests: dict[int, tuple]) -> list[StepRecord]:
        records: dict[int, StepRecord] = {}
        pending: dict[object, int] = {}
        for index, request in requests.items():
            try:
                self._workers[index].send(request)
                pending[self._workers[index].connection] = index
            except ChildDied as exc:
                records[index] = self._restart(index, f"worker died before the request: {exc}")
        failures: list[str] = []
        deadline = time.monotonic() + self._step_timeout
        while pending:
            ready = wait(list(pending), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                for index in pending.values():
                    records[index] = self._restart(index, f"no answer within step_timeout={self._step_timeout:g} s")
                break
            for connection in ready:
                index = pending.pop(connection)
                try:
                    reply = self._workers[index].recv(timeout=0)
                except (ChildDied, ChildTimeout) as exc:
                    records[index] = self._restart(index, f"worker crashed: {exc}")
                    continue
                status, payload = reply[0], reply[-1]  # type: ignore[index]
                if status != "ok":
                    failures.append(f"env {index} ({self._path.name}): {payload}")
                    continue
                records[index] = payload  # type: ignore[assignment]
                self._last[index] = payload  # type: ignore[assignment]
        # Raised only once every answer is read, so that no stale reply waits in a pipe.
        if failures:
            raise RuntimeError("; ".join(failures))
        return [records[index] for index in requests]

    def _launch(self, index: int) -> ChildProcess:
        worker = ChildProcess("priorzero_pl.envs.pool_worker")
        worker.send(("init", str(self._path), self._seed + index, self._options))
        return worker

    def _await_ready(self, index: int, worker: ChildProcess) -> tuple[str, float]:
        try:
            reply = worker.recv(STARTUP_TIMEOUT_S)
        except (ChildDied, ChildTimeout) as exc:
            raise RuntimeError(f"env {index} ({self._path.name}) failed to start: {exc}") from exc
        status, first, second = reply  # type: ignore[misc]
        if status == "ready":
            return str(first), float(second)
        if first == "input":
            raise PriorZeroInputError(str(second))
        raise RuntimeError(f"env {index} ({self._path.name}) failed to start: {second}")

    def _restart(self, index: int, reason: str) -> StepRecord:
        """Replace worker ``index`` by a fresh, reset game; return the record that ends its episode."""
        self._workers[index].kill()
        worker = self._launch(index)
        self._workers[index] = worker
        self.restarts += 1
        self._await_ready(index, worker)
        worker.send(("reset",))
        try:
            worker.recv(STARTUP_TIMEOUT_S)
        except (ChildDied, ChildTimeout) as exc:
            raise RuntimeError(f"env {index} ({self._path.name}) failed again after a restart: {exc}") from exc
        last = self._last[index]
        self._last[index] = None
        return StepRecord(
            observation="",
            candidates=[],
            score=last.score if last is not None else 0.0,
            max_score=self._max_score,
            moves=last.moves if last is not None else 0,
            done=True,
            truncated=True,
            error=f"env {index}: {reason}; restarted with a fresh game",
        )
