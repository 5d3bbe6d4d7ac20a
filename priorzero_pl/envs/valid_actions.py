"""Jericho's valid actions, searched by several killable worker processes, resumable across visits.

Where Jericho's time goes (profiled on the shared games): 85-97 % in testing candidates, each one a
full game step in C (20 us - 1 ms, as slow as the game's own turn), 3-15 % in naming objects
(spaCy plus look/inventory/examine steps), under 1 % in generating the candidates. There are
1,000-50,000 candidates per state. So the search is split where the work is: one worker names the
candidates, then every worker tests chunks of them from the same state, and the results merge in
Jericho's order (:class:`~priorzero_pl.envs.search_job.SearchJob`), which gives Jericho's answer.

Workers are child processes because the C loop can hang (jericho issue #53) where no Python
timeout reaches. A search that reaches its deadline returns what it has so far and keeps its
place: the state's next visit resumes it instead of starting over, and requests still running
finish in the background. A worker whose request has burnt ``hang_after`` seconds of CPU (a
chunk takes milliseconds), or has not answered for ``stall_after`` seconds, is killed and
replaced, and its chunk is split and retried. CPU time, not the clock, is the first test because
on a machine that other jobs keep busy a healthy chunk can wait seconds for a core.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from priorzero_pl.envs.child_process import ChildDied, ChildProcess, ChildTimeout
from priorzero_pl.envs.search_job import SearchJob
from priorzero_pl.envs.spacy_pipeline import require_spacy_pipeline
from priorzero_pl.errors import PriorZeroInputError

STARTUP_TIMEOUT_S = 120.0
"""How long a new worker may take to load Jericho (and spaCy for the namer): about 1 s, more under load."""

HANG_AFTER_S = 10.0
"""CPU seconds a request may use before its worker counts as hung (a chunk takes 2-50 ms, naming 0.1-1 s)."""

STALL_AFTER_S = 300.0
"""Wall-clock seconds a request may go unanswered (a stopped or blocked worker uses no CPU)."""

MAX_PAUSED_JOBS = 64
"""Searches cut short by their deadline that are kept for resumption (least recently used go first)."""


def default_search_workers() -> int:
    """One search worker per CPU core, at most 8 (the candidate tests of one state are ~10,000 steps)."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class _Task:
    """What a worker is doing: starting, naming a job's candidates, or testing a chunk of them."""

    kind: str
    """"start", "name" or "test"."""
    job: SearchJob | None
    chunk: list[int] | None
    since: float
    cpu_since: float | None = None
    """The worker's CPU seconds when the task began (None: not readable here)."""


class _Worker:
    """One search process, the job whose state it holds, and its task in flight (None: idle)."""

    def __init__(self, story: Path, seed: int, namer: bool) -> None:
        self.namer = namer
        self.child = ChildProcess("priorzero_pl.envs.valid_action_server", (str(story), str(seed), "1" if namer else "0"))
        self.task: _Task | None = _Task("start", None, None, time.monotonic())
        self.holds: str | None = None
        """Key of the job whose state the worker was last sent."""


class ValidActionOracle:
    """Valid actions of Jericho game states, computed by ``workers`` child processes.

    ``timeouts`` counts searches that reached their deadline, ``candidates_tested`` candidate
    steps taken (a resumed search does not repeat any), ``restarts`` workers killed because
    a request hung (or died), ``dropped_candidates`` candidates left out because testing them hung
    twice. A request counts as hung after ``hang_after`` CPU seconds or ``stall_after`` seconds
    unanswered (see the module doc; where CPU time cannot be read, ``hang_after`` seconds).
    """

    def __init__(
        self,
        story: Path,
        seed: int,
        workers: int | None = None,
        hang_after: float = HANG_AFTER_S,
        stall_after: float = STALL_AFTER_S,
    ) -> None:
        require_spacy_pipeline()
        count = default_search_workers() if workers is None else workers
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise PriorZeroInputError(f"valid_action_workers={workers!r}: must be an integer >= 1 (or None: one per core)")
        self._story = story
        self._seed = seed
        self._hang_after = hang_after
        self._stall_after = stall_after
        self._workers = [_Worker(story, seed, namer=index == 0) for index in range(count)]
        self._paused: OrderedDict[str, SearchJob] = OrderedDict()
        self.timeouts = 0
        self.candidates_tested = 0
        self.restarts = 0
        self.dropped_candidates = 0

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the search workers (tests stop them to check recovery)."""
        return [worker.child.pid for worker in self._workers]

    def search(self, key: str, state: tuple, timeout: float) -> tuple[list[str], bool]:
        """Valid actions of ``state`` (``key``: its :func:`~priorzero_pl.envs.state_key.jericho_state_key`).

        Returns ``(actions, complete)``. Complete: Jericho's ``get_valid_actions`` for the state.
        Not complete (the deadline came first): the actions found so far; the search is kept and
        a later call with the same key continues it. Workers still starting (the first search, or
        after a restart) are waited for before the ``timeout`` seconds begin, as a slow start is
        no sign of a slow state.
        """
        self.wait_ready()
        deadline = time.monotonic() + timeout
        job = self._paused.pop(key, None) or SearchJob(key, state)
        self._kill_hung()
        while not job.complete and job.naming_failures < 2:
            self._dispatch(job)
            if not any(w.task is not None for w in self._workers):
                break  # nothing left that any worker could do
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._receive(wait([w.child.connection for w in self._workers if w.task is not None], min(remaining, 1.0)))
            self._kill_hung()
        self.dropped_candidates += len(job.dropped)
        job.dropped.clear()
        if job.complete:
            return job.actions(), True
        self.timeouts += 1
        self._paused[key] = job
        while len(self._paused) > MAX_PAUSED_JOBS:
            self._paused.popitem(last=False)
        return (job.actions() if job.candidates is not None else []), False

    def close(self) -> None:
        """Stop the worker processes."""
        for worker in self._workers:
            worker.child.kill()

    def wait_ready(self) -> None:
        """Wait until every worker has started (benchmarks call it to time searches, not start-ups)."""
        starting = [w for w in self._workers if w.task is not None and w.task.kind == "start"]
        while starting:
            self._receive(wait([w.child.connection for w in starting], STARTUP_TIMEOUT_S))
            self._kill_hung()
            starting = [w for w in self._workers if w.task is not None and w.task.kind == "start"]

    def _dispatch(self, job: SearchJob) -> None:
        """Give every idle worker the job's next piece of work."""
        for worker in self._workers:
            if worker.task is not None:
                continue
            if job.candidates is None:
                if worker.namer and not self._naming(job):
                    self._send(worker, _Task("name", job, None, time.monotonic()), ("name", job.state))
                continue
            if not job.pending:
                return
            chunk = job.take()
            state = None if worker.holds == job.key else job.state
            self._send(worker, _Task("test", job, chunk, time.monotonic()),
                       ("test", state, [job.candidates[i] for i in chunk]))

    def _naming(self, job: SearchJob) -> bool:
        return any(w.task is not None and w.task.kind == "name" and w.task.job is job for w in self._workers)

    def _send(self, worker: _Worker, task: _Task, request: tuple) -> None:
        task.cpu_since = worker.child.cpu_seconds()
        worker.task = task
        worker.holds = task.job.key if task.job is not None else None
        try:
            worker.child.send(request)
        except ChildDied:
            self._replace(worker)

    def _receive(self, ready: list[object]) -> None:
        for worker in self._workers:
            if worker.child.connection not in ready or worker.task is None:
                continue
            task = worker.task
            try:
                reply = worker.child.recv(timeout=0)
            except (ChildDied, ChildTimeout):
                self._replace(worker)
                continue
            worker.task = None
            if reply[0] == "error":  # type: ignore[index]
                if task.kind == "start":
                    raise RuntimeError(f"valid-action worker for {self._story} failed to start: {reply[1]}\n{reply[2]}")  # type: ignore[index]
                raise RuntimeError(f"valid-action worker for {self._story} failed: {reply[1]}\n{reply[2]}")  # type: ignore[index]
            if task.kind == "name":
                task.job.set_candidates(reply[1], reply[2])  # type: ignore[union-attr,index]
            elif task.kind == "test":
                task.job.record([(task.chunk[position], diff) for position, diff in reply[1]])  # type: ignore[index,union-attr]
                self.candidates_tested += len(task.chunk)  # type: ignore[arg-type]

    def _kill_hung(self) -> None:
        """Replace workers whose request looks hung (see the module doc); a start-up may take ``STARTUP_TIMEOUT_S``."""
        now = time.monotonic()
        for worker in self._workers:
            task = worker.task
            if task is None:
                continue
            waited = now - task.since
            if task.kind == "start":
                if waited > STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"valid-action worker for {self._story} did not start within {STARTUP_TIMEOUT_S:.0f} s")
                continue
            cpu = worker.child.cpu_seconds()
            used = waited if cpu is None or task.cpu_since is None else cpu - task.cpu_since
            if used > self._hang_after or waited > self._stall_after:
                self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a hung or dead worker, put its work back (split), and start a fresh one in its place."""
        task = worker.task
        if task is not None and task.job is not None:
            if task.kind == "name":
                task.job.naming_failures += 1
            elif task.chunk is not None:
                task.job.retry(task.chunk)
        worker.child.kill()
        self.restarts += 1
        index = self._workers.index(worker)
        self._workers[index] = _Worker(self._story, self._seed, worker.namer)
