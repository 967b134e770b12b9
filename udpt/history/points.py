"""Points in the log as a user names them: a sequence number, or a time (ISO 8601, UTC).

Event times never go backwards along the log (``udpt.clock``; ``verify``
checks it), so a time maps to the last event at or before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from udpt.events.log import LogReader
from udpt.events.types import Event

__all__ = ["Until", "event_time", "format_time", "parse_time", "parse_until", "seq_at_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def parse_time(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time; a time without an offset is UTC.

    Accepts ``2026-11-29T14:05``, ``2026-11-29T14:05:00Z``, ``2026-11-29T16:05+02:00``.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MILLISECOND


def format_time(at_ms: int) -> str:
    """UTC ISO 8601 with milliseconds: ``2026-11-29T14:05:00.000Z``.

    A time outside the calendar's range (only a damaged or synthetic log has
    one) is shown as the bare number of milliseconds.
    """
    try:
        moment = _EPOCH + at_ms * _MILLISECOND
    except OverflowError:
        return str(at_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Until:
    """A point in the log given by the user: a sequence number or a time (exactly one)."""

    seq: int | None = None
    at_ms: int | None = None

    def to_seq(self, log: LogReader) -> int:
        """The last sequence number at or before this point."""
        if self.seq is not None:
            return self.seq
        assert self.at_ms is not None
        return seq_at_time(log, self.at_ms)


def parse_until(text: str) -> Until:
    """``1234`` is a sequence number; anything else must be an ISO time (ValueError if not)."""
    if text.isascii() and text.isdigit():
        return Until(seq=int(text))
    try:
        return Until(at_ms=parse_time(text))
    except ValueError:
        raise ValueError(f"{text!r} is neither a sequence number nor an ISO time") from None


def _first_at_or_after(log: LogReader, seq: int) -> tuple[int, Event] | None:
    """Returning from the loop drops the reader, which ends its read transaction."""
    for found in log.events(seq):
        return found
    return None


def seq_at_time(log: LogReader, at_ms: int) -> int:
    """The last event at or before ``at_ms`` (0 if none), by binary search over seqs.

    Gaps in the sequence are allowed.
    """
    found = 0
    low, high = log.first_seq(), log.last_seq()
    while low and low <= high:
        middle = (low + high) // 2
        record = _first_at_or_after(log, middle)
        if record is None or record[0] > high or record[1].at_ms > at_ms:
            high = middle - 1
        else:
            found = record[0]
            low = found + 1
    return found


def event_time(log: LogReader, seq: int) -> int | None:
    """The time of event ``seq``; None if the log does not hold it."""
    for _, event in log.events(seq, seq):
        return event.at_ms
    return None
