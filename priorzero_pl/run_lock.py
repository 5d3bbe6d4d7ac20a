"""One ``priorzero fit`` per run folder: a lock file in ``trainer.default_root_dir``.

Two fits writing one folder interleave their checkpoints (``last.ckpt`` from either run), their
emergency saves and their logs, and a resume then continues whichever wrote last. The second
fit is refused at start, before it loads anything, with the holder's pid in the message.

The lock is an advisory ``flock`` on the file, not the file's existence: the kernel drops it
when the holding process dies, however it dies (``kill -9`` included), so a lock left by a dead
run is taken over without anyone deleting it. The file also records the holder's pid, host and
start time, for the message and for a person looking at the folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from priorzero_pl.errors import PriorZeroInputError

log = logging.getLogger(__name__)

LOCK_NAME = "priorzero-fit.lock"
"""The lock file's name inside the run folder."""


class RunLock:
    """Exclusive use of a run folder by this process, for a ``with`` block or acquire/release.

    Acquiring raises :class:`PriorZeroInputError` when another live process holds the folder.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the process that holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd) or "a process that is just starting"
                os.close(fd)
                raise PriorZeroInputError(
                    f"trainer.default_root_dir {self.folder} is in use by another fit ({holder}; lock file "
                    f"{self.path}): wait for that run to end, or give this one another --trainer.default_root_dir"
                ) from None
            # The holder we waited on may have removed the file between our open and our flock:
            # then we hold a lock on a file no one else will open; start again on the new one.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        previous = _read(fd)
        if previous:
            log.warning("run folder %s: took over the lock of a run that is gone (%s)", self.folder, previous)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Give the folder back (remove the file, then drop the lock); a no-op when not held."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    """The holder line written by :meth:`RunLock.acquire` ("pid 123 on host since ..."), or ''."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode(errors="replace").strip()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
