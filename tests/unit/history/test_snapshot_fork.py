"""Snapshots written by a forked child: the state as it was at the fork, stored from a file."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, TorrentAdded
from udpt.history import recover
from udpt.history.snapshot_fork import fork_snapshot
from udpt.projections import TrackerState

IH = bytes(range(20))
T0 = 1_700_000_000_000


def announces(first: int, count: int) -> list[AnnounceAccepted]:
    return [
        AnnounceAccepted(
            T0 + n, IH, bytes([10, 0, n >> 8, n & 255]), 6881, bytes(20), 0,
            AnnounceEvent.STARTED, 0, 0, n % 2,
        )
        for n in range(first, first + count)
    ]  # fmt: skip


def exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_child_writes_the_state_as_it_was_at_the_fork(tmp_path: Path) -> None:
    state = TrackerState()
    state.apply_all(enumerate(announces(0, 500), 1))
    at_fork = state.snapshot()
    path = tmp_path / "snapshot.partial"
    pid = fork_snapshot(state, path)
    state.apply_all(enumerate(announces(500, 500), 501))  # the parent goes on meanwhile
    assert exit_code(pid) == 0
    assert path.read_bytes() == at_fork
    assert TrackerState.restore(path.read_bytes()).last_seq == 500


def test_a_stored_snapshot_file_reads_back_as_the_fold_of_the_log(
    tmp_log: EventLog, tmp_path: Path
) -> None:
    tmp_log.append_events([TorrentAdded(T0, IH, "ops"), *announces(1, 3000)])
    state, _ = recover(tmp_log)
    path = tmp_path / "snapshot.partial"
    assert exit_code(fork_snapshot(state, path)) == 0
    tmp_log.put_snapshot_file(state.last_seq, path)
    assert tmp_log.snapshot_seqs() == [3001]
    assert tmp_log.get_snapshot(3001) == recover(tmp_log, use_snapshots=False)[0].snapshot()


def test_a_child_that_cannot_write_exits_1_and_leaves_the_parent_running(tmp_path: Path) -> None:
    state = TrackerState()
    state.apply_all(enumerate(announces(0, 10), 1))
    assert exit_code(fork_snapshot(state, tmp_path / "missing" / "snapshot.partial")) == 1
    assert state.last_seq == 10


def test_the_child_holds_none_of_the_daemons_sockets_or_files(tmp_path: Path) -> None:
    """A daemon killed while its child writes can start again at once: the child keeps no
    socket (the UDP port) and no file (the lock) open. The child is held at its output's
    open, a FIFO, while its descriptors are looked at."""
    state = TrackerState()
    state.apply_all(enumerate(announces(0, 10), 1))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    lock = (tmp_path / "lock").open("w")
    shared = {os.fstat(f.fileno()).st_ino for f in (udp, lock)}
    fifo = tmp_path / "snapshot.fifo"
    os.mkfifo(fifo)
    pid = fork_snapshot(state, fifo)
    try:
        deadline = time.monotonic() + 10
        while shared & child_inodes(pid):
            assert time.monotonic() < deadline, "the child still holds the parent's files"
            time.sleep(0.01)
        with fifo.open("rb") as written:  # lets the child open it and write
            assert written.read() == state.snapshot()
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # it may wait at the FIFO for ever
        raise
    finally:
        udp.close()
        lock.close()
        status = exit_code(pid)
    assert status == 0


def child_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            inodes.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        except FileNotFoundError:  # closed meanwhile
            continue
    return inodes
