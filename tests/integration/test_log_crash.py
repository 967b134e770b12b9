"""A writer killed with SIGKILL mid-write leaves a log of whole committed batches, nothing else.

A child process appends batches of ``BATCH`` announces through
``EventLog.append_records`` and prints each batch's last seq once its commit
returned. We kill it at a random moment after it reported a few batches, then
reopen the log: it must hold a prefix of whole batches that includes every
reported one (at most one more: committed, killed before it could print).
Each round resumes the same log, so recovery after a crash is exercised too.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import udpt
from udpt.events.log import EventLog

BATCH = 1000
ROUNDS = 10

WRITER = """
import struct
import sys

from udpt.events.codec import encode_event
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent

path, size = sys.argv[1], int(sys.argv[2])
template = encode_event(
    AnnounceAccepted(0, b"\\x01" * 20, b"\\x7f\\x00\\x00\\x01", 6881, b"-qB4630-" + bytes(12), 7,
                     AnnounceEvent.NONE, 0, 0, 1000)
)
head, tail = template[:1], template[9:]
log = EventLog(path)
seq = log.last_seq() + 1
while True:
    # at_ms == seq, so the test can tell every record apart
    records = [head + struct.pack(">q", n) + tail for n in range(seq, seq + size)]
    log.append_records(seq, records)
    seq += size
    print(seq - 1, flush=True)
"""


def _child_env() -> dict[str, str]:
    root = str(Path(udpt.__file__).resolve().parents[1])
    paths = [root, os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _stdout_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's stdout lines as they come (None at the end), so reads can have deadlines."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str | None], timeout: float = 20.0) -> str | None:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"the writer reported nothing within {timeout} s")


def _kill_while_writing(path: Path, rng: random.Random) -> list[int]:
    """Run the writer until it reported a few batches, SIGKILL it; returns every reported seq."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(BATCH)],
        stdout=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        lines = _stdout_lines(child)
        reported = []
        for _ in range(rng.randint(2, 6)):
            line = _next_line(lines)
            assert line is not None, "the writer exited on its own"
            reported.append(int(line))
        time.sleep(rng.uniform(0, 0.005))  # picks the moment of the kill; waits for nothing
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=20) == -signal.SIGKILL
        while (line := _next_line(lines)) is not None:
            reported.append(int(line))  # committed and printed before the kill landed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return reported


def test_a_killed_writer_leaves_exactly_a_prefix_of_whole_committed_batches(
    tmp_path: Path,
) -> None:
    rng = random.Random()
    committed = 0
    for round_ in range(ROUNDS):
        reported = _kill_while_writing(tmp_path, rng)
        assert reported == list(range(committed + BATCH, reported[-1] + 1, BATCH))
        with EventLog(tmp_path) as log:
            seqs_and_times = [(seq, event.at_ms) for seq, event in log.events()]
        count = len(seqs_and_times)
        context = f"round {round_}: {count} events, last reported {reported[-1]}"
        assert count % BATCH == 0, context
        assert count in (reported[-1], reported[-1] + BATCH), context
        assert seqs_and_times == [(seq, seq) for seq in range(1, count + 1)], context
        committed = count
