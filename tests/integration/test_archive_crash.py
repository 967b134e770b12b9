"""SIGKILL during pruning and archiving loses no event and never leaves a torn archive file.

The test writes a log of ``EVENTS`` events in small batches with a snapshot
covering them all. A child process then prunes it with an archive (a few
batches per transaction, so there are many archive files, fsyncs and prune
transactions), and is killed at a random moment once it reported it started.
After each kill, the archive and the live log together must hold every event
exactly once, equal to what was written, and every archive file must read
whole. Each round resumes the same log and archive; a last run without a kill
must then finish the job.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_log_crash import _child_env, _next_line, _stdout_lines
from udpt.events.archive import Archive, History, read_file
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event, TorrentFlagged

EVENTS = 6000
PER_BATCH = 20
ROUNDS = 8

PRUNER = """
import sys

import udpt.events.maintenance as maintenance
from udpt.events.archive import Archive
from udpt.events.log import EventLog

maintenance.PRUNE_ENTRIES = 3
path, archive = sys.argv[1], sys.argv[2]
with EventLog(path) as log:
    pruner = maintenance.LogMaintenance(log, retention_ms=1, archive=Archive(archive))
    print("started", flush=True)
    while pruner.run(now_ms=1 << 60).pruned:
        pass
    print("done", flush=True)
"""


def expected_events() -> list[Event]:
    events: list[Event] = [
        AnnounceAccepted(
            n,
            bytes([n % 11]) * 20,
            bytes((10, 0, n >> 8 & 255, n & 255)),
            6881,
            n.to_bytes(20, "big"),
            n,
            AnnounceEvent.NONE,
            n,
            0,
            n % 3,
        )
        for n in range(1, EVENTS + 1)
    ]
    events[99] = TorrentFlagged(100, b"\x03" * 20, "alice")
    return events


def check_one_history(db: Path, archive: Archive, expected: list[Event]) -> int:
    """Every event once, as written; every archive file whole. Returns the live first seq."""
    for file in archive.files():
        assert sum(len(events) for _, events in read_file(file.path)) == (
            file.last_seq - file.first_seq + 1
        )
    with EventLog(db) as log:
        assert list(History(log, archive).events()) == list(enumerate(expected, 1))
        assert list(log.admin_events()) == [(100, expected[99])]
        return log.first_seq()


def run_pruner(db: Path, archive: Archive, kill_after_s: float | None) -> str | None:
    child = subprocess.Popen(
        [sys.executable, "-c", PRUNER, str(db), str(archive.path)],
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        lines = _stdout_lines(child)
        assert _next_line(lines) == "started"
        if kill_after_s is None:
            assert child.wait(timeout=60) == 0
            return _next_line(lines)
        time.sleep(kill_after_s)  # picks the moment of the kill; waits for nothing
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=20)
        return None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_pruner_killed_at_any_moment_loses_no_event_and_tears_no_archive(
    tmp_path: Path,
) -> None:
    db, archive = tmp_path / "log", Archive(tmp_path / "archive")
    expected = expected_events()
    with EventLog(db, sync=False) as log:
        for start in range(0, EVENTS, PER_BATCH):
            log.append_events(expected[start : start + PER_BATCH])
        log.put_snapshot(EVENTS, b"covers everything")
    rng = random.Random()
    firsts = []
    for _ in range(ROUNDS):
        run_pruner(db, archive, rng.uniform(0, 0.05))
        firsts.append(check_one_history(db, archive, expected))
    assert run_pruner(db, archive, None) == "done"
    assert check_one_history(db, archive, expected) == EVENTS - PER_BATCH + 1  # the newest stays
    assert firsts == sorted(firsts)
    assert firsts[-1] > 1, "no kill landed after any pruning: the test proved nothing"
