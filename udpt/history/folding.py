"""The one fold loop: read committed records in order, decode them, apply them to a state.

Replay, recovery, snapshots, verification and per-torrent history all run
their events through ``Fold``; what differs between them is only what they do
with each event once it is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from udpt.events.codec import DecodeError, decode_event
from udpt.events.log import EventLog
from udpt.events.types import Event
from udpt.history.apply import ApplyFailures, apply_failed
from udpt.projections import TrackerState

__all__ = [
    "PROGRESS_EVERY",
    "READ_CHUNK",
    "CorruptRecord",
    "Fold",
    "Progress",
    "decode_record",
    "fold",
    "read_in_chunks",
]

PROGRESS_EVERY = 100_000
READ_CHUNK = 100_000

Progress = Callable[[int], None]
"""Called with the sequence number reached, every ``PROGRESS_EVERY`` records."""


class CorruptRecord(DecodeError):
    """A record that cannot be decoded; the state after it is unknown."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event {seq} cannot be decoded: {reason}")
        self.seq = seq


def decode_record(seq: int, record: bytes) -> Event:
    """The event in ``record``; ``CorruptRecord`` naming ``seq`` if it cannot be decoded."""
    try:
        return decode_event(record)
    except DecodeError as exc:
        raise CorruptRecord(seq, str(exc)) from exc


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


class Fold:
    """Applies the events after ``state.last_seq`` up to ``to_seq`` (default: the end).

    Iterating yields each ``(seq, event)`` once it is applied (by the rule of
    ``apply.py``); it raises ``CorruptRecord`` at the first record that cannot
    be decoded. ``wanted``, if given, sees each record's bytes first and
    passes over those it rejects without decoding them. ``missing`` lists the
    ranges of sequence numbers absent from the log, as they are met.
    """

    def __init__(
        self,
        log: EventLog,
        state: TrackerState,
        to_seq: int | None = None,
        *,
        wanted: Callable[[bytes], bool] | None = None,
        failures: ApplyFailures | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.log = log
        self.state = state
        self.end = log.last_seq() if to_seq is None else min(to_seq, log.last_seq())
        self.wanted = wanted
        self.failures = ApplyFailures() if failures is None else failures
        self.progress = progress
        self.missing: list[tuple[int, int]] = []

    def __iter__(self) -> Iterator[tuple[int, Event]]:
        state, wanted, progress, failures = self.state, self.wanted, self.progress, self.failures
        apply = state.apply
        previous = state.last_seq
        count = 0
        for seq, record in read_in_chunks(self.log, previous + 1, self.end):
            if seq != previous + 1:
                self.missing.append((previous + 1, seq - 1))
            previous = seq
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(seq)
            if wanted is not None and not wanted(record):
                continue
            event = decode_record(seq, record)
            try:
                apply(seq, event)
            except Exception:
                apply_failed(state, seq, event, failures)
            yield seq, event
        if previous < self.end:
            self.missing.append((previous + 1, self.end))


def fold(
    log: EventLog,
    state: TrackerState,
    to_seq: int | None = None,
    progress: Progress | None = None,
    failures: ApplyFailures | None = None,
) -> int:
    """Apply the events after ``state.last_seq`` (up to ``to_seq``) to ``state``; how many.

    Raises ``CorruptRecord`` at the first record that cannot be decoded.
    """
    return sum(1 for _ in Fold(log, state, to_seq, failures=failures, progress=progress))
