"""Snapshots: the projections serialised at a sequence number, so start-up is fast.

Start-up = the newest snapshot + the events after it. A snapshot is built by
folding the log, never by reading live memory, so the daemon can take one in a
child process (``python -m udpt.events.snapshots DB SEQ``) without stalling its
event loop, and ``tools/replay.py --rebuild`` takes one the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator

from udpt.events.codec import DecodeError, decode_event
from udpt.events.log import EventLog
from udpt.projections import SnapshotError, TrackerState

__all__ = [
    "PROGRESS_EVERY",
    "CorruptRecord",
    "fold",
    "read_in_chunks",
    "recover",
    "restore_newest",
    "take_snapshot",
]

PROGRESS_EVERY = 100_000
READ_CHUNK = 100_000

Progress = Callable[[int], None]


class CorruptRecord(DecodeError):
    """A record that cannot be decoded; the state after it is unknown."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event {seq} cannot be decoded: {reason}")
        self.seq = seq


def read_in_chunks(
    log: EventLog, from_seq: int = 1, to_seq: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``log.records`` up to the end as it was when called, in chunks of ``READ_CHUNK``.

    One read transaction per chunk rather than one for the whole scan: on a
    live log, an open reader stops LMDB from reusing the pages the daemon frees
    (old snapshots), so a long replay would make the file grow. Committed
    events never change, so the chunks join into one consistent view.
    """
    end = log.last_seq() if to_seq is None else min(to_seq, log.last_seq())
    start = max(from_seq, log.first_seq())
    while start <= end:
        yield from log.records(start, min(end, start + READ_CHUNK - 1))
        start += READ_CHUNK


def fold(
    log: EventLog, state: TrackerState, to_seq: int | None = None, progress: Progress | None = None
) -> int:
    """Apply the events after ``state.last_seq`` (up to ``to_seq``) to ``state``; how many.

    Raises ``CorruptRecord`` at the first record that cannot be decoded.
    """
    apply = state.apply
    count = 0
    for count, (seq, record) in enumerate(read_in_chunks(log, state.last_seq + 1, to_seq), 1):
        try:
            event = decode_event(record)
        except DecodeError as exc:
            raise CorruptRecord(seq, str(exc)) from exc
        apply(seq, event)
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(seq)
    return count


def recover(
    log: EventLog,
    to_seq: int | None = None,
    *,
    use_snapshots: bool = True,
    progress: Progress | None = None,
) -> tuple[TrackerState, int]:
    """The state at ``to_seq`` (default: the end), and the seq of the snapshot used (0: none).

    A snapshot that cannot be restored is skipped in favour of an older one or
    of a full replay: a damaged snapshot slows a start, it never stops it.
    """
    state = restore_newest(log, to_seq) if use_snapshots else None
    used = state.last_seq if state is not None else 0
    state = state or TrackerState()
    fold(log, state, to_seq, progress)
    return state, used


def restore_newest(log: EventLog, max_seq: int | None = None) -> TrackerState | None:
    """The state of the newest snapshot at or before ``max_seq`` that restores, if any.

    A snapshot that fails to restore, or whose contents name another sequence
    number than its key, is passed over for the next older one.
    """
    for seq in reversed(log.snapshot_seqs()):
        if max_seq is not None and seq > max_seq:
            continue
        try:
            state = TrackerState.restore(log.get_snapshot(seq) or b"")
        except SnapshotError:
            continue
        if state.last_seq == seq:
            return state
    return None


def take_snapshot(log: EventLog, to_seq: int | None = None) -> int:
    """Fold the log up to ``to_seq`` (default: the end) and store the snapshot; returns its seq."""
    state, _ = recover(log, to_seq)
    if state.last_seq:
        log.put_snapshot(state.last_seq, state.snapshot())
    return state.last_seq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store a snapshot of a udpt log.")
    parser.add_argument("db_path")
    parser.add_argument("seq", type=int, nargs="?", help="fold up to this event (default: all)")
    args = parser.parse_args(argv)
    with EventLog(args.db_path) as log:
        print(take_snapshot(log, args.seq))
    return 0


if __name__ == "__main__":
    sys.exit(main())
