"""One process at a time: an exclusive lock on a file that names its holder.

The lock is the operating system's (``flock``): a process that dies, even by kill -9,
leaves none behind. Used for a batch run's OUTPUT folder and an SQLite tuning study.
"""

from __future__ import annotations

import fcntl
import os


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is the pid it wrote ("" when unreadable)."""

    def __init__(self, holder: str):
        super().__init__(f"held by pid {holder or '?'}")
        self.holder = holder


def take_lock(path: str | os.PathLike) -> int:
    """Take the exclusive lock of the file ``path`` (created if missing) without waiting, and write this
    process's pid in it; the lock lasts until the returned file descriptor is closed. :class:`LockHeld`
    when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
        os.close(fd)
        raise LockHeld(holder) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
