"""Snapshots of the live state, written by a forked child: no second copy of the state.

``fork()`` hands the child the daemon's memory copy-on-write. The child walks
the state as it was at the fork — a state of the committed log, since the
event loop forks between two folded events — and streams ``write_snapshot()``
into a file; the daemon then stores the file in the log from a thread. With
the compiled core the child writes from C through borrowed pointers, touching
no reference count, so what gets copied is little more than the pages the
daemon itself changes meanwhile (a Python walk copied every page holding a
torrent object). The child
uses nothing it shares with the daemon's other threads (no log: an LMDB
environment must not cross a fork, no event loop, no logging), closes every
descriptor it inherited but the standard three (sockets, the lock, the log's
files), and leaves with ``os._exit``, so none of the daemon's exit handlers run
twice.
"""

from __future__ import annotations

import gc
import os
import signal
import traceback
from pathlib import Path

from udpt.projections import TrackerState

__all__ = ["fork_snapshot", "write_snapshot_file"]

_WRITE_BUFFER = 1 << 20


def write_snapshot_file(state: TrackerState, path: Path) -> None:
    """Write ``state.snapshot()`` to ``path``."""
    with path.open("wb", buffering=_WRITE_BUFFER) as out:
        state.write_snapshot(out)


def fork_snapshot(state: TrackerState, path: Path) -> int:
    """Fork a child that writes ``state``'s snapshot to ``path``; its pid.

    The child exits 0 once the file is complete, 1 if writing it failed. Call
    it only between two folded events (not halfway through an expiry sweep).
    """
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        # Nothing of the daemon's stays open here but stdin, stdout and stderr: a daemon
        # killed meanwhile can start again at once, its UDP port and its lock free.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        gc.disable()  # a collection would touch, and so copy, every tracked object
        signal.set_wakeup_fd(-1)  # signals to the child must not wake the daemon's loop
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        write_snapshot_file(state, path)
        status = 0
    except BaseException:
        traceback.print_exc()  # the daemon reports only the exit status
    finally:
        os._exit(status)
