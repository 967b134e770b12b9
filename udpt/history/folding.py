"""The one fold loop: read committed events in order, a batch at a time, apply them to a state.

Replay, recovery, snapshots, verification and per-torrent history all run
their events through ``Fold``; what differs between them is only what they do
with each event once it is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from udpt.events.batch import HashTable
from udpt.events.log import CorruptEntry, EventLog, LogReader
from udpt.events.types import Event
from udpt.history.apply import ApplyFailures, apply_batch, apply_failed, apply_stored
from udpt.projections import TrackerState

__all__ = [
    "PROGRESS_EVERY",
    "CorruptRecord",
    "Fold",
    "Progress",
    "fold",
]

PROGRESS_EVERY = 100_000

Progress = Callable[[int], None]
"""Called with the sequence number reached, every ``PROGRESS_EVERY`` records."""


CorruptRecord = CorruptEntry
"""A value that cannot be decoded (its ``seq``: the first event it holds); the state after
it is unknown. Raised by the log's readers, under the name history code has always used."""


class Fold:
    """Applies the events after ``state.last_seq`` up to ``to_seq`` (default: the end).

    Iterating yields each ``(seq, event)`` once it is applied (by the rule of
    ``apply.py``); it raises ``CorruptRecord`` at the first value that cannot
    be decoded. ``wanted``, if given, sees each event first and passes over
    those it rejects without applying them. ``missing`` lists the
    ranges of sequence numbers absent from the log, as they are met.
    """

    def __init__(
        self,
        log: LogReader,
        state: TrackerState,
        to_seq: int | None = None,
        *,
        wanted: Callable[[Event], bool] | None = None,
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
        count = 0
        for first, events in self._batches():
            for seq, event in enumerate(events, first):
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(seq)
                if wanted is not None and not wanted(event):
                    continue
                try:
                    apply(seq, event)
                except Exception:
                    apply_failed(state, seq, event, failures)
                yield seq, event

    def apply_all(self) -> int:
        """Apply every event a batch at a time (``apply_batch``), yielding none; how many.

        What a fold that only wants the state uses: the compiled core then folds a
        run of announces in one call, and reads those of a live log's values without
        decoding them into events (``apply_stored``). ``wanted`` is not consulted.
        """
        progress = self.progress
        count = 0
        for first, start, stop, apply_part in self._parts():
            done = start
            while done < stop:  # cut at each multiple of PROGRESS_EVERY
                step = stop - done
                if progress is not None:
                    step = min(step, PROGRESS_EVERY - count % PROGRESS_EVERY)
                apply_part(done, done + step)
                done += step
                count += step
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(first + done - 1)
        return count

    def _parts(self) -> Iterator[tuple[int, int, int, Callable[[int, int], None]]]:
        """(first seq, start, stop, apply) of each value: ``apply(i, j)`` applies its events
        ``i`` to ``j - 1`` (event ``k`` is seq ``first + k``)."""
        state, failures = self.state, self.failures
        if not isinstance(self.log, EventLog):
            for first, events in self._batches():
                yield first, 0, len(events), partial(_apply_slice, state, first, events, failures)
            return
        log = self.log
        previous = state.last_seq
        for first, value, hashes, start, stop in log.stored_batches(previous + 1, self.end):
            self._note_gap(previous, first + start)
            yield (
                first,
                start,
                stop,
                partial(_apply_value, log, state, first, value, hashes, failures),
            )
            previous = first + stop - 1
        self._note_gap(previous, self.end + 1)

    def _batches(self) -> Iterator[tuple[int, list[Event]]]:
        """(first seq, events) of each value after ``state.last_seq``, noting what is missing."""
        previous = self.state.last_seq
        for first, events in self.log.event_batches(previous + 1, self.end):
            self._note_gap(previous, first)
            yield first, events
            previous = first + len(events) - 1
        self._note_gap(previous, self.end + 1)

    def _note_gap(self, previous: int, first: int) -> None:
        """Note the sequence numbers missing between ``previous`` and the next one read."""
        if first > previous + 1:
            self.missing.append((previous + 1, first - 1))


def _apply_slice(
    state: TrackerState,
    first: int,
    events: list[Event],
    failures: ApplyFailures,
    start: int,
    stop: int,
) -> None:
    part = events if (start, stop) == (0, len(events)) else events[start:stop]
    apply_batch(state, first + start, part, failures)


def _apply_value(
    log: EventLog,
    state: TrackerState,
    first: int,
    value: bytes,
    hashes: HashTable,
    failures: ApplyFailures,
    start: int,
    stop: int,
) -> None:
    if not apply_stored(state, first, value, hashes, (start, stop), failures):
        events = log.decode_stored(first, value, hashes)
        apply_batch(state, first + start, events[start:stop], failures)


def fold(
    log: LogReader,
    state: TrackerState,
    to_seq: int | None = None,
    progress: Progress | None = None,
    failures: ApplyFailures | None = None,
) -> int:
    """Apply the events after ``state.last_seq`` (up to ``to_seq``) to ``state``; how many.

    Raises ``CorruptRecord`` at the first record that cannot be decoded.
    """
    return Fold(log, state, to_seq, failures=failures, progress=progress).apply_all()
