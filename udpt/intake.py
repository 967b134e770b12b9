"""The one road to the log: a decision's record in, its answer out after commit + apply.

UDP and the REST API both hand their ``Commit`` values here. The intake gives
the event to the group-commit writer; when the batch is durable it folds each
event into the projections in log order and, right after each one, builds that
event's answer (``commit.answer(commit.context)``) and delivers it. If the
commit fails, each waiting caller is delivered a ``NotRecorded`` value instead:
nothing unrecorded is ever acknowledged, and that rule lives only here.

Time passing is recorded here too: before any event whose time is a sweep
interval past the last sweep, and on a periodic tick, the intake records the
expiry sweep the decisions ask for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from udpt.counters import Counters
from udpt.events.types import Event
from udpt.events.writer import Batch, GroupCommitWriter
from udpt.projections import TrackerState
from udpt.tracker import Commit, Tracker

__all__ = ["Deliver", "Intake", "NotRecorded", "NotRecordedError"]

log = logging.getLogger(__name__)


class NotRecorded(NamedTuple):
    """A record that did not reach the log, so its answer must not be given.

    ``reason`` is a ``Counters.dropped`` label: ``writer_full``, ``writer_closed``
    (shutting down, or refusing after a failed commit) or ``commit_failed``.
    """

    reason: str
    detail: str


class NotRecordedError(RuntimeError):
    """Raised by ``Intake.record`` for a ``NotRecorded`` outcome."""

    def __init__(self, outcome: NotRecorded) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


Deliver = Callable[[Any, Any], None]
"""``deliver(to, outcome)``: the answer, or a ``NotRecorded``, for destination ``to``."""

_FULL = NotRecorded("writer_full", "the event log has too many events waiting for a commit")
_CLOSED = NotRecorded("writer_closed", "the event log is not accepting events")


class Intake:
    """Takes commits to ``writer`` and answers them from ``state`` once applied."""

    def __init__(
        self,
        state: TrackerState,
        tracker: Tracker,
        counters: Counters,
        apply: Callable[[TrackerState, int, Event], None],
    ) -> None:
        self.state = state
        self.tracker = tracker
        self.counters = counters
        self._apply = apply
        self._sweep_interval_ms = tracker.policy.sweep_interval_ms
        self.last_sweep_ms = 0
        self.writer: GroupCommitWriter | None = None

    def attach(self, writer: GroupCommitWriter) -> None:
        """Use ``writer`` (made with this intake's ``committed`` and ``failed``)."""
        self.writer = writer

    # -- taking records ----------------------------------------------------

    def submit(self, commit: Commit, deliver: Deliver, to: Any) -> NotRecorded | None:
        """Queue ``commit``; ``deliver(to, outcome)`` runs once it is applied or lost.

        Returns the ``NotRecorded`` outcome at once (and delivers nothing) when
        the writer cannot take it; None when it is on its way.
        """
        writer = self.writer
        assert writer is not None, "attach() a writer first"
        if commit.event.at_ms - self.last_sweep_ms >= self._sweep_interval_ms:
            self.sweep(commit.event.at_ms)
        if writer.submit(commit.event, (commit, deliver, to)):
            return None
        refused = _CLOSED if not writer.accepting else _FULL
        self.counters.dropped[refused.reason] += 1
        return refused

    async def record(self, commit: Commit) -> Any:
        """Record ``commit`` and return its answer; raises ``NotRecordedError`` if it is lost."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        refused = self.submit(commit, _resolve, done)
        if refused is not None:
            raise NotRecordedError(refused)
        return await done

    def sweep(self, now_ms: int) -> None:
        """Record the expiry sweep due at ``now_ms``, if it would change anything."""
        assert self.writer is not None, "attach() a writer first"
        sweep = self.tracker.sweep(now_ms)
        if sweep is None or self.writer.submit(sweep):
            self.last_sweep_ms = now_ms  # a sweep refused by a full writer is tried again

    def sweep_if_due(self, now_ms: int) -> None:
        if now_ms - self.last_sweep_ms >= self._sweep_interval_ms:
            self.sweep(now_ms)

    # -- the writer's reports ------------------------------------------------

    def committed(self, first_seq: int, batch: Batch, seconds: float) -> None:
        """Fold the durable ``batch`` in log order, answering each event right after it."""
        counters = self.counters
        counters.commit_seconds.observe(seconds)
        counters.commit_batch_events.observe(len(batch))
        state = self.state
        apply = self._apply
        for seq, (event, _, payload) in enumerate(batch, first_seq):
            apply(state, seq, event)
            if payload is None:
                continue
            commit, deliver, to = payload
            try:
                deliver(to, commit.answer(commit.context))
            except Exception:
                log.exception("answering event %d failed", seq)

    def failed(self, batch: Batch, error: BaseException) -> None:
        """Nothing in ``batch`` was recorded: tell each caller so, acknowledge nothing."""
        lost = NotRecorded("commit_failed", f"the event log failed to commit: {error}")
        for _, _, payload in batch:
            if payload is None:
                continue
            self.counters.dropped[lost.reason] += 1
            _, deliver, to = payload
            try:
                deliver(to, lost)
            except Exception:
                log.exception("reporting a lost event failed")


def _resolve(done: asyncio.Future[Any], outcome: Any) -> None:
    if done.done():  # the caller went away; the change stands
        return
    if type(outcome) is NotRecorded:
        done.set_exception(NotRecordedError(outcome))
    else:
        done.set_result(outcome)
