"""One daemon per log: an exclusive lock on a file in the data directory.

Two daemons appending to one LMDB log would each number events from what they
last saw and refuse each other's commits (the log refuses gaps and overlaps),
so the second one must not start at all. ``udpt.pid`` in the data directory is
locked with ``flock`` for the life of the process and holds its pid, so the
refusal can name the daemon already running.

``flock`` belongs to the open file: the kernel drops it when the process exits,
however it exits (SIGKILL included), so a stale file never blocks a restart.
Readers of a live log (``tools/replay.py``) never take it. The forked snapshot
child inherits the open file, so it holds the lock with the daemon until it
exits: a daemon killed while a snapshot is written can be restarted once the
child has finished (as long as one snapshot takes, about a second at 1M peers).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_FILE", "DataDirInUse", "DataDirLock"]

LOCK_FILE = "udpt.pid"


class DataDirInUse(RuntimeError):
    """Another process holds the data directory; ``str()`` is one line naming it and its pid."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "a process whose pid is unknown"
        super().__init__(f"{path} is in use by another udpt daemon ({holder})")
        self.path = path
        self.pid = pid


class DataDirLock:
    """Held from ``acquire()`` (or ``with``) until ``release()`` or the process's end."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Lock the directory (creating it if needed) and write our pid; raise ``DataDirInUse``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(self.path.parent, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Unlock. The file stays: removing it would race with a daemon starting meanwhile."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The holder's pid; None if it has not written it yet (it locks first, then writes)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
