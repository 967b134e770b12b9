"""The one rule for a committed event: apply it, and survive an apply that fails.

The event is already on disk when it is applied, so a failure (a bug in a
handler) cannot be refused or retried: the event is logged, counted and passed
over, and folding goes on. The live writer and every replay apply events by
this rule, so a state rebuilt from the log equals the live one even then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from udpt.core import COMPILED
from udpt.events.batch import HashTable
from udpt.events.types import Event
from udpt.projections import TrackerState

if COMPILED:
    from udpt import _core

__all__ = [
    "ApplyFailures",
    "apply_batch",
    "apply_committed",
    "apply_failed",
    "apply_stored",
    "tell_failed",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplyFailures:
    """Committed events whose apply raised: how many, and the last one's sequence number."""

    count: int = 0
    last_seq: int = 0


def apply_committed(
    state: TrackerState, seq: int, event: Event, failures: ApplyFailures | None = None
) -> bool:
    """Apply committed event ``seq`` to ``state``; False if it failed (see ``apply_failed``).

    Shaped for the writer's apply callback: ``partial(apply_committed, state,
    failures=failures)``.
    """
    try:
        state.apply(seq, event)
    except Exception:
        apply_failed(state, seq, event, failures)
        return False
    return True


def apply_failed(
    state: TrackerState,
    seq: int,
    event: Event,
    failures: ApplyFailures | None,
    error: BaseException | None = None,
) -> None:
    """Log and count the failed apply of ``seq``, then treat it as folded.

    Called from the ``except`` block (the log carries the traceback), or given
    the ``error``. ``state.last_seq`` moves past the event, so that a snapshot
    taken now is filed under the position it holds and recovery does not apply
    the event's partial effects a second time.
    """
    log.error(
        "applying committed event %d (%s) failed",
        seq,
        type(event).__name__,
        exc_info=error if error is not None else True,
    )
    if failures is not None:
        failures.count += 1
        failures.last_seq = seq
    if seq > state.last_seq:
        state.last_seq = seq


def apply_batch(
    state: TrackerState, first_seq: int, events: list[Event], failures: ApplyFailures | None = None
) -> None:
    """``apply_committed`` of each of ``events`` (``events[i]`` is event ``first_seq + i``),
    through ``TrackerState.apply_many``: what a fold that looks at no single event uses."""
    start = 0
    while start < len(events):
        before = state.last_seq
        try:
            state.apply_many(first_seq, events, start)
            return
        except Exception:
            # the event after the last one applied, or the first one tried (a gap before
            # it); but one at or below where the state was is refused by apply itself,
            # and that is the one at ``start``
            failed = start
            if first_seq + start > before:
                failed = max(start, state.last_seq + 1 - first_seq)
            apply_failed(state, first_seq + failed, events[failed], failures)
            start = failed + 1


def apply_stored(
    state: TrackerState,
    first_seq: int,
    value: bytes,
    hashes: HashTable,
    part: tuple[int, int],
    failures: ApplyFailures | None = None,
) -> bool:
    """``apply_batch`` of events ``part[0]`` to ``part[1] - 1`` of a stored batch value, the
    compiled core reading its announces straight from the value (no event objects).

    False, with nothing applied, when that is not possible (the pure core, or a value
    the compiled decoder does not read): the caller decodes the value instead.
    """
    if not COMPILED:
        return False
    start, stop = part
    folded: bool = _core.fold_batch(
        state,
        first_seq,
        value,
        hashes,
        start,
        stop,
        partial(apply_committed, state, failures=failures),
        partial(tell_failed, state, failures),
    )
    return folded


def tell_failed(
    state: TrackerState,
    failures: ApplyFailures | None,
    seq: int,
    event: Event,
    error: BaseException,
) -> None:
    """``apply_failed`` for a fold in the compiled core, which hands over the ``error``."""
    apply_failed(state, seq, event, failures, error)
