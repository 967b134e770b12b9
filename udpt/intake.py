"""The one road to the log: a decision's record in, its answer out after commit + apply.

UDP and the REST API both hand their ``Commit`` values here. The intake gives
the event to the group-commit writer; when the batch is durable it folds each
event into the projections in log order and, right after each one, builds that
event's answer (``commit.answer(commit.context)``) and delivers it. If the
commit fails, each waiting caller is delivered a ``NotRecorded`` value instead:
nothing unrecorded is ever acknowledged, and that rule lives only here.

Folding a large expiry sweep in one piece would hold the event loop for as long
as it takes (0.9 s for 200k torrents), so the intake folds a sweep in steps of
at most ``APPLY_SLICE_S``, yielding to the loop between them, and holds the
events after it until it is done: the state any later event meets is the same
as on replay.

On a cluster node (``udpt.cluster.writer``) the writer hands back every node's
batches, in the stream's order: the events of other nodes come with no payload,
so they are folded and nobody is answered; this node's are answered as above,
from the state every node reaches at that point of the stream.

Time passing is recorded here too: before any event whose time is a sweep
interval past the last sweep, and on a periodic tick, the intake records the
expiry sweep the decisions ask for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, NamedTuple

from udpt.core import COMPILED
from udpt.counters import Counters
from udpt.events.types import AnnounceAccepted, Event, PeersExpired
from udpt.events.writer import Batch, Writer
from udpt.history.apply import ApplyFailures, apply_committed, apply_failed, tell_failed
from udpt.projections import TrackerState
from udpt.tracker import Commit, Tracker

if COMPILED:
    from udpt import _core

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

APPLY_SLICE_S = 0.002
"""Longest stretch the intake folds a sweep before it lets the loop run."""

_FULL = NotRecorded("writer_full", "the event log has too many events waiting for a commit")
_CLOSED = NotRecorded("writer_closed", "the event log is not accepting events")


class Intake:
    """Takes commits to ``writer`` and answers them from ``state`` once applied."""

    def __init__(
        self,
        state: TrackerState,
        tracker: Tracker,
        counters: Counters,
    ) -> None:
        self.state = state
        self.tracker = tracker
        self.counters = counters
        self.apply_failures = ApplyFailures()
        self._sweep_interval_ms = tracker.policy.sweep_interval_ms
        self.last_sweep_ms = 0
        self.writer: Writer | None = None
        # Committed batches not yet folded, with how far into each the fold has got,
        # and the steps left of a sweep being folded.
        self._unapplied: deque[tuple[int, Batch, int]] = deque()
        self._sweeping: Iterator[None] | None = None
        self._applied = asyncio.Event()
        self._applied.set()
        self._fold_announces = _core.fold_answered if COMPILED else None
        """The loop of ``_fold`` for a run of announces, compiled (udpt/_swarm.c)."""
        self._tell = partial(tell_failed, state, self.apply_failures)
        """How the compiled fold reports an announce it could not fold (``apply_failed``)."""

    @property
    def sweeping(self) -> bool:
        """Whether an expiry sweep is half folded: the state is then no state of the log."""
        return self._sweeping is not None

    def attach(self, writer: Writer) -> None:
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
        return self._not_taken(commit, writer)

    def submit_all(self, items: list[tuple[Event, tuple[Commit, Deliver, Any]]]) -> None:
        """``submit`` of each (commit, deliver, to) in order, with one call to the writer.

        The compiled lane's way (udpt/_lane.c): each comes as (its commit's event, the
        payload), the writer's ``submit_all`` items as they are, from one read of the
        socket and with one time, so the first one's sweep check is every one's. A
        commit the writer cannot take is counted and settled as ``submit`` does it, and
        delivered nothing.
        """
        writer = self.writer
        assert writer is not None, "attach() a writer first"
        if not items:
            return
        at_ms = items[0][0].at_ms
        if at_ms - self.last_sweep_ms >= self._sweep_interval_ms:
            self.sweep(at_ms)
        taken = writer.submit_all(items)
        for _, (commit, _, _) in items[taken:]:
            self._not_taken(commit, writer)

    def _not_taken(self, commit: Commit, writer: Writer) -> NotRecorded:
        """Why ``writer`` refused ``commit``, counted; a torrent it would create is not."""
        if type(commit.event) is AnnounceAccepted:  # as failed() does: it creates nothing
            self.tracker.settled(commit.event.info_hash)
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
        self._unapplied.append((first_seq, batch, 0))
        if self._applied.is_set():
            self._applied.clear()
            self._fold()

    async def drain(self) -> None:
        """Wait until every committed event is folded and answered."""
        await self._applied.wait()

    def _fold(self) -> None:
        """Fold what is committed; pause (and come back) when a sweep takes long."""
        state, failures = self.state, self.apply_failures
        creating = self.tracker.creating
        unapplied = self._unapplied
        deadline = time.perf_counter() + APPLY_SLICE_S
        while unapplied:
            first_seq, batch, index = unapplied[0]
            while index < len(batch):
                if self._fold_announces is not None:
                    index = self._fold_announces(
                        state, first_seq, batch, index, self.tracker, self._tell, self._unanswered
                    )
                    if index == len(batch):
                        break
                seq = first_seq + index
                event, _, payload = batch[index]
                if type(event) is PeersExpired:
                    if self._sweeping is None:
                        self._sweeping = self._steps(seq, event)
                    if not self._sweep_until(deadline):
                        unapplied[0] = (first_seq, batch, index)
                        asyncio.get_running_loop().call_soon(self._fold)
                        return
                else:
                    apply_committed(state, seq, event, failures)
                    # Only this node's announces were counted (a cluster folds others too).
                    if creating and payload is not None and type(event) is AnnounceAccepted:
                        self.tracker.settled(event.info_hash)
                if payload is not None:
                    self._answer(seq, payload)
                index += 1
            unapplied.popleft()
        self._applied.set()

    def _steps(self, seq: int, sweep: PeersExpired) -> Iterator[None]:
        try:
            yield from self.state.apply_in_steps(seq, sweep)
        except Exception:  # the same rule as any failing apply: the event is on disk
            apply_failed(self.state, seq, sweep, self.apply_failures)

    def _sweep_until(self, deadline: float) -> bool:
        """Run the sweep's steps until it is folded (True) or ``deadline`` passes (False)."""
        assert self._sweeping is not None
        for _ in self._sweeping:
            if time.perf_counter() >= deadline:
                return False
        self._sweeping = None
        return True

    @staticmethod
    def _answer(seq: int, payload: tuple[Commit, Deliver, Any]) -> None:
        commit, deliver, to = payload
        try:
            deliver(to, commit.answer(commit.context))
        except Exception as error:
            Intake._unanswered(seq, error)

    @staticmethod
    def _unanswered(seq: int, error: BaseException) -> None:
        log.error("answering event %d failed", seq, exc_info=error)

    def failed(self, batch: Batch, error: BaseException) -> None:
        """Nothing in ``batch`` was recorded: tell each caller so, acknowledge nothing."""
        lost = NotRecorded("commit_failed", f"the event log failed to commit: {error}")
        for event, _, payload in batch:
            if type(event) is AnnounceAccepted:
                self.tracker.settled(event.info_hash)
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
