"""Group commit: many events per LMDB transaction, one fsync, replies only after it.

The writer lives on the event loop but owns one dedicated thread, and every
write transaction begins, puts and commits on that thread (an LMDB write
transaction is bound to the thread that began it; see docs/PYTHON-STACK.md §3.5).
Events are encoded on the loop when submitted, so the thread runs almost only
GIL-free LMDB code: Python work on it would contend for the GIL and stall the
loop for up to the interpreter's switch interval.

While one batch is being committed the next one gathers; when the commit
returns, the loop applies the committed events to the projections *in log
order* and then runs each event's callback (which builds and sends its reply).
So a reply always reflects a state that is already durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from udpt.events.codec import encode_event
from udpt.events.log import EventLog, LogError
from udpt.events.types import Event

__all__ = ["GroupCommitWriter", "WriterClosed"]

log = logging.getLogger(__name__)

Committed = Callable[[int], None]
Apply = Callable[[int, Event], None]
Batch = list[tuple[Event, bytes, Committed | None]]


class WriterClosed(RuntimeError):
    """The writer no longer takes events (shutting down, or the disk failed)."""


class GroupCommitWriter:
    """Appends events to ``event_log`` in batches and applies them once committed.

    ``max_pending`` bounds the events waiting for a commit; past it ``submit``
    refuses (the caller sheds load) instead of queueing without limit.
    """

    def __init__(
        self,
        event_log: EventLog,
        apply: Apply,
        *,
        linger_s: float = 0.002,
        max_pending: int = 100_000,
        max_batch: int = 50_000,
        retry_after_s: float = 5.0,
    ) -> None:
        self._log = event_log
        self._retry_after_s = retry_after_s
        self._apply = apply
        self._linger_s = linger_s
        self.max_pending = max_pending
        self._max_batch = max_batch
        self._pending: Batch = []
        self._in_flight = False
        self._scheduled = False
        self._closed = False
        self._failed: BaseException | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_seq = event_log.last_seq() + 1
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdb-writer")
        self._loop = asyncio.get_running_loop()
        self.batches = 0
        self.committed = 0

    @property
    def last_committed_seq(self) -> int:
        return self._next_seq - 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, event: Event, on_committed: Committed | None = None) -> bool:
        """Queue ``event``; ``on_committed(seq)`` runs after it is committed and applied.

        If the commit fails, ``on_committed(0)`` runs instead: nothing was recorded,
        so nothing may be acknowledged. Returns False, queueing nothing, when the
        writer is full, closed or failed. Raises ValueError, queueing nothing, for an
        event the codec cannot record: encoding here rather than on the writer thread
        keeps one bad event from failing its whole batch and stopping the writer.
        """
        if self._closed or self._failed or len(self._pending) >= self.max_pending:
            return False
        self._pending.append((event, encode_event(event), on_committed))
        self._idle.clear()
        if not self._in_flight and not self._scheduled:
            self._scheduled = True
            if self._linger_s > 0:
                self._loop.call_later(self._linger_s, self._start_commit)
            else:
                self._loop.call_soon(self._start_commit)
        return True

    async def append(self, event: Event) -> int:
        """Append one event and wait for its commit; returns its sequence number."""
        done: asyncio.Future[int] = self._loop.create_future()

        def resolve(seq: int) -> None:
            if done.done():
                return
            if seq:
                done.set_result(seq)
            else:
                done.set_exception(WriterClosed("the event log failed to commit"))

        if not self.submit(event, resolve):
            raise WriterClosed("the event log is not accepting events")
        return await done

    def _start_commit(self) -> None:
        self._scheduled = False
        if self._in_flight or not self._pending:
            return
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        self._in_flight = True
        first_seq = self._next_seq
        future = self._pool.submit(self._commit, first_seq, [record for _, record, _ in batch])
        future.add_done_callback(
            lambda f: self._loop.call_soon_threadsafe(self._finish_commit, f, first_seq, batch)
        )

    def _commit(self, first_seq: int, records: list[bytes]) -> None:
        """Runs on the writer thread: put, commit (and fsync)."""
        self._log.append_records(first_seq, records)

    def _finish_commit(self, future: Future[None], first_seq: int, batch: Batch) -> None:
        self._in_flight = False
        error = future.exception()
        if error is not None:
            self._fail(error, batch)
            return
        self._next_seq = first_seq + len(batch)
        self.batches += 1
        self.committed += len(batch)
        apply = self._apply
        for offset, (event, _, on_committed) in enumerate(batch):
            seq = first_seq + offset
            try:
                apply(seq, event)
            except Exception:  # a bug, but the event is on disk: keep serving
                log.exception("applying committed event %d failed", seq)
            if on_committed is not None:
                try:
                    on_committed(seq)
                except Exception:
                    log.exception("reply callback for event %d failed", seq)
        if self._pending:
            self._start_commit()
        else:
            self._idle.set()

    def _fail(self, error: BaseException, batch: Batch) -> None:
        """A commit failed (disk full, I/O error): nothing in it was acknowledged.

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
        self._failed = error
        for _, _, on_committed in batch + self._pending:
            if on_committed is not None:
                on_committed(0)
        self._pending.clear()
        self._idle.set()
        if not isinstance(error, LogError):  # a LogError (another writer) needs an operator
            self._loop.call_later(self._retry_after_s, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            log.warning("the event log takes events again after a failed commit")
            self._failed = None

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed and applied."""
        if self._pending and not self._in_flight:
            self._start_commit()
        await self._idle.wait()

    async def close(self) -> None:
        """Stop taking events, commit what is pending, release the thread."""
        await self.drain()
        self._closed = True
        self._pool.shutdown(wait=True)
