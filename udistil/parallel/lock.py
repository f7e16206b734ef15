"""One writer per output: a second run on the same output stops cleanly, the first goes on.

`OutputLock(out_path)` takes a POSIX record lock (fcntl.lockf, which NFS honours) on
`<out>.lock` and writes the holder's pid and host into it.  The kernel drops the lock
when the holder dies, even by kill -9, so a stale lock file never blocks a rerun; only a
live holder does, and the message names it:

    exp/teacher/train/shards/cuts.1.jsonl.gz is being written by another run
    (pid 1234 on host node07, since 2026-11-30 14:02:11); wait for it or stop it

The lock file is left in place on release (removing it would race with a waiting run).
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from udistil.errors import UdistilError

SUFFIX = ".lock"


class OutputLockedError(UdistilError):
    """Another live process holds the lock on this output."""


def lock_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + SUFFIX)


class OutputLock:
    def __init__(self, out_path: str | os.PathLike):
        self.out_path = Path(out_path)
        self.path = lock_path(out_path)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip() or "unknown holder"
            os.close(fd)
            raise OutputLockedError(f"{self.out_path} is being written by another run ({holder}); "
                                    "wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
