"""A Python module run as a child process, spoken to over a pipe, and killable at any moment.

Game interpreters can hang inside C code (Jericho's valid-action search on some Zork states), where
no Python timeout reaches; only a separate process can be cut off. We start children with
``python -m <module>`` rather than ``multiprocessing``'s spawn, because spawn re-imports the parent's
``__main__`` (for the training CLI: torch and Lightning, seconds per child), and fork is unsafe once
torch has started threads.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Sequence

import priorzero_pl

_PACKAGE_ROOT = str(Path(priorzero_pl.__file__).resolve().parents[1])
CHILD_THREAD_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
"""Set in every child's environment: OpenMP (torch's intra-op pool reads it at start), MKL, OpenBLAS
and numexpr then start one thread each (:mod:`priorzero_pl.threads` says why)."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ChildDied(RuntimeError):
    """The child process exited or closed its end of the pipe."""


class ChildTimeout(TimeoutError):
    """The child did not answer within the allowed time (it may be hung)."""


class ChildProcess:
    """``python -m module`` with a duplex pipe to it; see :func:`parent_connection` for its side.

    Children get ``PYTHONHASHSEED=0`` so that anything ordered by string hashing inside them (Jericho
    iterates sets of object names) comes out the same in every process and every run, and the
    parent's package root on ``PYTHONPATH`` so they import the same code as the parent. They start
    single-threaded (:data:`CHILD_THREAD_ENVIRONMENT`): their cores belong to the thread budget,
    not to OpenMP pools spinning beside the learner.
    """

    def __init__(self, module: str, args: Sequence[str] = ()) -> None:
        parent_end, child_end = multiprocessing.Pipe()
        python_path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        environment = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=python_path, **CHILD_THREAD_ENVIRONMENT)
        fd = child_end.fileno()
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, str(fd), *args],
            pass_fds=(fd,),
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        child_end.close()
        self._connection = parent_end
        self._finalizer = weakref.finalize(self, _stop, self._process, parent_end)

    @property
    def pid(self) -> int:
        """Process id (tests kill it to check recovery)."""
        return self._process.pid

    def cpu_seconds(self) -> float | None:
        """CPU time the child has used so far (Linux ``/proc``), None where it cannot be read."""
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    @property
    def connection(self) -> Connection:
        """The parent's end of the pipe, for ``multiprocessing.connection.wait`` over many children."""
        return self._connection

    def send(self, message: object) -> None:
        """Send one picklable message; a dead child raises :class:`ChildDied`."""
        try:
            self._connection.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ChildDied(f"child {self.pid} is gone ({exc})") from exc

    def recv(self, timeout: float | None) -> object:
        """Wait up to ``timeout`` seconds (None: forever) for the next message."""
        if not self._connection.poll(timeout):
            raise ChildTimeout(f"child {self.pid} gave no answer within {timeout:.1f} s")
        try:
            return self._connection.recv()
        except (EOFError, ConnectionResetError, OSError) as exc:
            raise ChildDied(f"child {self.pid} exited or closed its pipe") from exc

    def kill(self) -> None:
        """Kill the child now (SIGKILL works on hung and stopped processes alike) and reap it."""
        self._finalizer()

    def close(self, grace: float = 2.0) -> None:
        """Close the pipe, which tells the child to clean up and exit; kill it if it takes longer than ``grace``."""
        self._connection.close()
        try:
            self._process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        self._finalizer()


def parent_connection() -> Connection:
    """The child's end of the pipe, from the descriptor number its parent put in ``argv[1]``."""
    return Connection(int(sys.argv[1]))


def _stop(process: subprocess.Popen, connection: Connection) -> None:
    connection.close()
    if process.poll() is None:
        process.kill()
    process.wait()
