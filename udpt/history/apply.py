"""The one rule for a committed event: apply it, and survive an apply that fails.

The event is already on disk when it is applied, so a failure (a bug in a
handler) cannot be refused or retried: the event is logged, counted and passed
over, and folding goes on. The live writer and every replay apply events by
this rule, so a state rebuilt from the log equals the live one even then.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from udpt.events.types import Event
from udpt.projections import TrackerState

__all__ = ["ApplyFailures", "apply_batch", "apply_committed", "apply_failed"]

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
    state: TrackerState, seq: int, event: Event, failures: ApplyFailures | None
) -> None:
    """Log and count the failed apply of ``seq``, then treat it as folded.

    Called from the ``except`` block (the log carries the traceback).
    ``state.last_seq`` moves past the event, so that a snapshot taken now is
    filed under the position it holds and recovery does not apply the event's
    partial effects a second time.
    """
    log.exception("applying committed event %d (%s) failed", seq, type(event).__name__)
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
        try:
            state.apply_many(first_seq, events, start)
            return
        except Exception:
            failed = max(start, state.last_seq + 1 - first_seq)
            apply_failed(state, first_seq + failed, events[failed], failures)
            start = failed + 1
