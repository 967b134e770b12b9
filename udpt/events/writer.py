"""Group commit: many events per LMDB transaction, one fsync.

The writer lives on the event loop but owns one dedicated thread, and every
write transaction begins, puts and commits on that thread (an LMDB write
transaction is bound to the thread that began it; see docs/PYTHON-STACK.md
§3.5). Each event is encoded on the loop when submitted, so that one the codec
cannot record is refused alone; the thread then encodes the whole batch as one
compact value (``events/batch.py``, about 1-2 µs an event, holding the GIL) and
commits it.

While one batch is being committed the next one gathers. When a commit
returns, ``committed(first_seq, batch, seconds)`` runs on the loop with the
batch in log order; when it fails, ``failed(batch, error)`` runs instead.
What to do with a committed event (fold it, answer it) is the caller's
business: this module only stores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from udpt.events.codec import encode_event
from udpt.events.log import EventLog, LogError
from udpt.events.types import Event

__all__ = ["Batch", "Committed", "Failed", "GroupCommitWriter", "Writer"]

log = logging.getLogger(__name__)

Batch = list[tuple[Event, bytes, Any]]
"""Submitted events with their records and the caller's payload, in submission order."""

Committed = Callable[[int, Batch, float], None]
Failed = Callable[[Batch, BaseException], None]


class Writer(Protocol):
    """What the intake, the daemon and the operator's view use of a writer: this module's
    ``GroupCommitWriter``, or a cluster node's ``udpt.cluster.ClusterWriter``."""

    max_pending: int
    batches: int
    committed: int

    @property
    def last_committed_seq(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def failure(self) -> BaseException | None: ...
    @property
    def accepting(self) -> bool: ...
    def submit(self, event: Event, payload: Any = None) -> bool: ...
    def submit_all(self, items: list[tuple[Event, Any]]) -> int: ...
    async def drain(self) -> None: ...
    async def close(self) -> None: ...


class GatheringWriter(ABC):
    """What every writer shares: the next batch gathers on the loop while one is stored.

    ``submit`` queues an event and, when no batch is being stored, starts one
    ``linger_s`` later (``_start_batch``); a writer says when it is busy
    (``_storing``) and whether it takes events (``accepting``), and takes each
    batch with ``_take_batch``. ``max_pending`` bounds the events waiting;
    past it ``submit`` refuses (the caller sheds load) instead of queueing
    without limit.
    """

    def __init__(self, linger_s: float, max_pending: int, max_batch: int) -> None:
        self._linger_s = linger_s
        self.max_pending = max_pending
        self._max_batch = max_batch
        self._pending: Batch = []
        self._scheduled = False
        self._storing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop = asyncio.get_running_loop()

    @property
    @abstractmethod
    def accepting(self) -> bool:
        """Whether events are taken now (not closed, not failed)."""

    def submit(self, event: Event, payload: Any = None) -> bool:
        """Queue ``event`` with ``payload`` (handed back with the batch's fate).

        Returns False, queueing nothing, when the writer is full, closed or
        failed. Raises ValueError, queueing nothing, for an event the codec
        cannot record: encoding here rather than with its batch keeps one bad
        event from failing the whole batch.
        """
        if not self.accepting or len(self._pending) >= self.max_pending:
            return False
        self._pending.append((event, encode_event(event), payload))
        self._queued()
        return True

    def submit_all(self, items: list[tuple[Event, Any]]) -> int:
        """``submit`` of each (event, payload) in order; how many were queued.

        Those queued are the first ones: once the writer is full, every later one
        would be refused too. One call for the run of announces the compiled lane
        (udpt/_lane.c) takes from one read of the socket. Raises ValueError,
        queueing none, if the codec cannot record one of them.
        """
        if not self.accepting:
            return 0
        pending = self._pending
        queued = items[: max(0, self.max_pending - len(pending))]
        if not queued:
            return 0
        pending.extend([(event, encode_event(event), payload) for event, payload in queued])
        self._queued()
        return len(queued)

    def _queued(self) -> None:
        """Events were queued: the writer is not idle, and a batch starts unless one is due."""
        self._idle.clear()
        if not self._storing and not self._scheduled:
            self._scheduled = True
            if self._linger_s > 0:
                self._loop.call_later(self._linger_s, self._start_batch)
            else:
                self._loop.call_soon(self._start_batch)

    @abstractmethod
    def _start_batch(self) -> None:
        """Store the next batch, unless one is being stored or nothing is pending."""

    def _take_batch(self) -> Batch:
        """The next batch (at most ``max_batch`` events), now being stored."""
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._storing = True
        return batch


class GroupCommitWriter(GatheringWriter):
    """Appends events to ``event_log`` in batches and reports each batch's fate.

    ``max_pending`` bounds the events waiting for a commit (``GatheringWriter``).
    """

    def __init__(
        self,
        event_log: EventLog,
        committed: Committed,
        failed: Failed,
        *,
        linger_s: float = 0.002,
        max_pending: int = 100_000,
        max_batch: int = 50_000,
        retry_after_s: float = 5.0,
    ) -> None:
        super().__init__(linger_s, max_pending, max_batch)
        self._log = event_log
        self._committed = committed
        self._failed_batch = failed
        self._retry_after_s = retry_after_s
        self._closed = False
        self._failure: BaseException | None = None
        self._next_seq = event_log.last_seq() + 1
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdb-writer")
        self.batches = 0
        self.committed = 0

    @property
    def last_committed_seq(self) -> int:
        return self._next_seq - 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def failure(self) -> BaseException | None:
        """Why the last commit failed, while events are refused because of it."""
        return self._failure

    @property
    def accepting(self) -> bool:
        return not self._closed and self._failure is None

    def _start_batch(self) -> None:
        self._scheduled = False
        if self._storing or not self._pending:
            return
        batch = self._take_batch()
        first_seq = self._next_seq
        future = self._pool.submit(self._commit, first_seq, [event for event, _, _ in batch])
        future.add_done_callback(
            lambda f: self._loop.call_soon_threadsafe(self._finish_commit, f, first_seq, batch)
        )

    def _commit(self, first_seq: int, events: list[Event]) -> float:
        """Runs on the writer thread: encode, put, commit (and fsync); the seconds it took."""
        started = time.perf_counter()
        self._log.append_batch(first_seq, events)
        return time.perf_counter() - started

    def _finish_commit(self, future: Future[float], first_seq: int, batch: Batch) -> None:
        self._storing = False
        error = future.exception()
        if error is not None:
            self._fail(error, batch)
            return
        self._next_seq = first_seq + len(batch)
        self.batches += 1
        self.committed += len(batch)
        try:
            self._committed(first_seq, batch, future.result())
        finally:
            if self._pending:
                self._start_batch()
            else:
                self._idle.set()

    def _fail(self, error: BaseException, batch: Batch) -> None:
        """A commit failed (disk full, I/O error): nothing in it, nor pending, is recorded.

        Events are refused for ``retry_after_s``, then taken again: an operator who
        frees the disk gets a working tracker back without a restart. The failed
        batch was never committed, so no sequence number is lost or reused. A
        ``LogError`` (the log moved on behind this writer's back) is final.
        """
        log.error(
            "the event log could not commit (%s); refusing events for %.0f s",
            error,
            self._retry_after_s,
        )
        self._failure = error
        lost = batch + self._pending
        self._pending.clear()
        self._idle.set()
        if not isinstance(error, LogError):  # a LogError (another writer) needs an operator
            self._loop.call_later(self._retry_after_s, self._resume)
        self._failed_batch(lost, error)

    def _resume(self) -> None:
        if not self._closed:
            log.warning("the event log takes events again after a failed commit")
            self._failure = None

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (or failed) and reported."""
        if self._pending and not self._storing:
            self._start_batch()
        await self._idle.wait()

    async def close(self) -> None:
        """Stop taking events, commit what is pending, release the thread."""
        await self.drain()
        self._closed = True
        self._pool.shutdown(wait=True)
