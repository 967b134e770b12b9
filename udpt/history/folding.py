"""The one fold loop: read committed events in order, a batch at a time, apply them to a state.

Replay, recovery, snapshots, verification and per-torrent history all run
their events through ``Fold``; what differs between them is only what they do
with each event once it is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from udpt.events.log import CorruptEntry, LogReader
from udpt.events.types import Event
from udpt.history.apply import ApplyFailures, apply_batch, apply_failed
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
        run of announces in one call. ``wanted`` is not consulted.
        """
        state, progress, failures = self.state, self.progress, self.failures
        count = 0
        for first, events in self._batches():
            done = 0
            while done < len(events):  # cut at each multiple of PROGRESS_EVERY
                step = len(events) - done
                if progress is not None:
                    step = min(step, PROGRESS_EVERY - count % PROGRESS_EVERY)
                part = events if step == len(events) else events[done : done + step]
                apply_batch(state, first + done, part, failures)
                done += step
                count += step
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(first + done - 1)
        return count

    def _batches(self) -> Iterator[tuple[int, list[Event]]]:
        """(first seq, events) of each value after ``state.last_seq``, noting what is missing."""
        previous = self.state.last_seq
        for first, events in self.log.event_batches(previous + 1, self.end):
            if first != previous + 1:
                self.missing.append((previous + 1, first - 1))
            yield first, events
            previous = first + len(events) - 1
        if previous < self.end:
            self.missing.append((previous + 1, self.end))


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
