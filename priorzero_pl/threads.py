"""How the CPU cores are shared between the learner and the game processes.

torch's default is one OpenMP thread per core in every process. The learner then spins its threads
against the env workers (and anything else on the machine): on a loaded 2-core box a
``[64, 64]`` linear took 1.7 ms with two threads and 84 us with one. So the learner gets the
cores the env workers leave it, and every child process (env workers, valid-action servers, and
the spaCy / numpy inside them) runs single-threaded (:data:`~priorzero_pl.envs.child_process.CHILD_THREAD_ENVIRONMENT`).

The env workers are counted, not their valid-action servers: a server works only while its env
worker waits for its answer, inside that worker's step, so the two never hold a core at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from priorzero_pl.errors import PriorZeroInputError



def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadBudget:
    """Threads of the learner and the processes beside it on one machine.

    Attributes:
        learner: the learner's intra-op threads; None leaves torch's default (one per core).
        interop: the learner's inter-op threads (None: torch's default).
        env_workers: env worker processes of this rank, each single-threaded.
        processes_per_node: learner processes (ranks) sharing the machine.
        cores: cores available to this process.
    """

    learner: int | None
    interop: int | None
    env_workers: int
    processes_per_node: int
    cores: int

    def describe(self) -> str:
        """The one line logged at start, with torch's threads as they are (after :func:`apply_thread_budget`)."""
        if self.learner is None:
            learner = f"torch's default threads ({torch.get_num_threads()})"
        else:
            threads = torch.get_num_threads()
            learner = f"{threads} thread{'s' if threads != 1 else ''} (inter-op {torch.get_num_interop_threads()})"
        ranks = f" x {self.processes_per_node} ranks" if self.processes_per_node > 1 else ""
        return f"learner: {learner}{ranks}; {self.env_workers} env workers, single-threaded; {self.cores} cores"


def plan_thread_budget(
    learner_threads: int | None,
    *,
    env_workers: int,
    processes_per_node: int = 1,
    cores: int | None = None,
) -> ThreadBudget:
    """The learner's threads: ``learner_threads`` if given, else the cores left per rank after the
    env workers (at least one). ``learner_threads=0`` keeps torch's default (the old behaviour,
    for comparison)."""
    if learner_threads is not None and (isinstance(learner_threads, bool) or not isinstance(learner_threads, int) or learner_threads < 0):
        raise PriorZeroInputError(
            f"data.learner_threads={learner_threads!r}: give an integer >= 1, 0 for torch's default, or null for the cores the env workers leave"
        )
    cores = available_cores() if cores is None else cores
    if learner_threads == 0:
        return ThreadBudget(None, None, env_workers, processes_per_node, cores)
    if learner_threads is None:
        learner_threads = max(1, cores // max(1, processes_per_node) - env_workers)
    return ThreadBudget(learner_threads, learner_threads, env_workers, processes_per_node, cores)


def apply_thread_budget(budget: ThreadBudget) -> None:
    """Set this process's torch threads to ``budget``.

    torch accepts an inter-op setting only before its inter-op pool has started (once per process);
    after that the pool keeps its size, which costs little here: the learner runs no inter-op
    parallel work of its own."""
    if budget.learner is None:
        return
    torch.set_num_threads(budget.learner)
    if budget.interop is not None and torch.get_num_interop_threads() != budget.interop:
        try:
            torch.set_num_interop_threads(budget.interop)
        except RuntimeError:
            pass
