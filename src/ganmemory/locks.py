"""One writer per task: an exclusive ``flock`` on ``BANK/locks/NAME.lock``.

A ``learn`` holds its task's lock from before it looks for an existing task to after its final
rename; ``remove``, ``compress`` and ``merge`` hold the locks of the tasks they write, and every
writer of the bank's shared bases holds the lock ``BASES_LOCK``. A second writer of the same
name gets one clear error at once; different names never wait for each other.

The kernel drops a ``flock`` when its process ends, however it ends (SIGKILL included), so a
killed writer never leaves a stale lock behind. The lock file itself stays and holds the last
holder's process id and command, which the error shows.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator

from .errors import GanMemoryError

BASES_LOCK = "_bases"  # not a task name (those start with a letter or digit)


class TaskLock:
    """An exclusive, non-blocking lock on one name of one bank."""

    def __init__(self, bank_root: Path, name: str):
        self.path = Path(bank_root) / "locks" / f"{name}.lock"
        self.name = name
        self._fd: int | None = None

    def try_acquire(self, holder: str = "") -> bool:
        """Take the lock if nobody holds it; False (and nothing changed) if somebody does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {holder}\n".encode())
        self._fd = fd
        return True

    def acquire(self, holder: str = "") -> "TaskLock":
        if not self.try_acquire(holder):
            raise self.busy()
        return self

    def busy(self) -> GanMemoryError:
        """The error for a lock somebody else holds."""
        bank = self.path.parent.parent
        if self.name == BASES_LOCK:
            return GanMemoryError(f"the shared bases of bank '{bank}' are being written by another process "
                                  f"({self.holder()}); wait for it to finish")
        return GanMemoryError(f"task '{self.name}' of bank '{bank}' is in use by another process "
                              f"({self.holder()}); wait for it to finish, or use another task name")

    def holder(self) -> str:
        """Who holds (or last held) the lock, as it wrote itself down."""
        try:
            pid, _, cmd = self.path.read_text().strip().partition(" ")
        except OSError:
            return "unknown"
        return f"process {pid}" + (f", {cmd}" if cmd else "")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextmanager
def locked(bank_root: Path, names: list[str], holder: str) -> Iterator[None]:
    """Hold the locks of every name in ``names`` for the block; none is held if one is taken."""
    held: list[TaskLock] = []
    try:
        for name in sorted(set(names)):
            held.append(TaskLock(bank_root, name).acquire(holder))
        yield
    finally:
        for lock in held:
            lock.release()
