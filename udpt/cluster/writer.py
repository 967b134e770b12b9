"""Group commit through JetStream: publish a node's batch, fold every node's in stream order.

``ClusterWriter`` has the interface of ``udpt.events.writer.GroupCommitWriter``
(``submit``, ``drain``, ``close``, the ``committed`` / ``failed`` callbacks), so
the intake and everything above it are the same alone and in a cluster. What
differs is what "committed" means and in which order batches come back:

* **Publish.** Submitted events gather for ``linger_s`` as they do alone; then
  the batch is encoded as one stand-alone batch value and published as one
  message with the id ``node_id:boot:number``. The publish acknowledgement
  (the stream has stored it, on ``replicas`` servers) is the durability a
  reply waits for; no reply is sent before it. One publish is in flight at a
  time, while the next batch gathers.
* **Consume.** Every node, this one included, reads the stream in its order
  from a pull consumer started after the last position it applied. Each
  message is appended to the local LMDB log as one batch, in one transaction
  that also records its stream position (meta ``cluster_position``), then
  handed to ``committed(first_seq, batch, seconds)``. An event whose time is
  earlier than the one before it in the stream (nodes' clocks differ) is appended
  and folded with that time instead (``_in_time_order``). Local sequence numbers
  are therefore the stream's order, counted in events: the same on every
  node, so logs compare event for event and ``tools/replay.py`` reads them
  unchanged. A foreign batch comes with payload None for each event (nobody
  here waits for it); this node's own batch comes back with its payloads,
  once it is both consumed and acknowledged, so the answer is built from the
  state every node reaches at that point of the stream.
* **Failure.** A publish that fails or times out, or a lost connection,
  reports the batch (and everything pending) to ``failed``: those callers get
  ``NotRecorded`` and no reply. A batch that did reach the stream despite a
  failed publish is folded like a foreign one when it is consumed. Events are
  refused while the connection is down and for ``retry_after_s`` after a
  failed publish; the consumer resubscribes by itself from the last applied
  position, so a node catches up once NATS is back.
* **Gaps.** A stream position that skips (batches aged out by ``max_age``
  before this node read them, or a stream recreated behind its back) is final:
  the node stops consuming and taking events, and says why in ``/health``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from udpt.cluster.link import StreamLink, when_ready
from udpt.events.batch import decode_batch, encode_batch
from udpt.events.codec import DecodeError
from udpt.events.log import EventLog, LogError
from udpt.events.types import Event
from udpt.events.writer import Batch, Committed, Failed, GatheringWriter

__all__ = [
    "POSITION_KEY",
    "STREAM_KEY",
    "ClusterUnavailable",
    "ClusterWriter",
    "StreamGap",
    "stream_position",
]

log = logging.getLogger(__name__)

POSITION_KEY = b"cluster_position"
"""Meta key: the stream sequence of the last message appended to the local log."""
STREAM_KEY = b"cluster_stream"
"""Meta key: the name of the stream the local log is a copy of."""
MAX_BATCH = 5_000
"""Events per message: about 55 bytes each at worst in a stand-alone batch, well under
NATS's default 1 MiB ``max_payload``."""
FETCH_BATCH = 256
FETCH_WAIT_S = 1.0
RESUBSCRIBE_S = 0.5
PUBLISH_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 10.0
_POSITION = struct.Struct(">Q")
_MSG_ID = "Nats-Msg-Id"


class ClusterUnavailable(ConnectionError):
    """NATS JetStream cannot be reached: nothing is acknowledged until it can."""


class StreamGap(LogError):
    """The stream no longer holds the batches this node must apply next."""


def stream_position(event_log: EventLog) -> int:
    """The stream sequence the local log holds everything up to (0: nothing yet)."""
    value = event_log.get_meta(POSITION_KEY)
    return int(_POSITION.unpack(value)[0]) if value else 0


@dataclass(slots=True)
class _Own:
    """A batch of this node's, published or being published, not yet consumed."""

    batch: Batch
    published: asyncio.Future[bool]


class ClusterWriter(GatheringWriter):
    """Publishes this node's batches and folds the stream's, in its order (module docstring)."""

    def __init__(
        self,
        event_log: EventLog,
        link: StreamLink,
        committed: Committed,
        failed: Failed,
        *,
        linger_s: float = 0.002,
        max_pending: int = 100_000,
        max_batch: int = MAX_BATCH,
        retry_after_s: float = 1.0,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        super().__init__(linger_s, max_pending, max_batch)
        self._log = event_log
        self._link = link
        self._committed = committed
        self._failed_batch = failed
        self._retry_after_s = retry_after_s
        self._publish_timeout_s = publish_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmdb-writer")
        self._own: dict[str, _Own] = {}
        self._own_events = 0
        self._msg_prefix = f"{link.node_id}:{time.time_ns():x}"
        self._number = 0
        self._closed = False
        self._link_down: ClusterUnavailable | None = None
        self._down_since = 0.0
        self._publish_failure: BaseException | None = None
        self._fatal: BaseException | None = None
        self._consume_trouble = False
        self._resubscribe = False
        self._progress = asyncio.Event()
        self._consumer: asyncio.Task[None] | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self.position = stream_position(event_log)
        self._next_seq = event_log.last_seq() + 1
        self._last_ms = max(
            (event.at_ms for _, event in event_log.events(self._next_seq - 1, self._next_seq - 1)),
            default=0,
        )
        """The time of the last event appended (only the writer thread moves it)."""
        self.batches = 0
        """This node's batches acknowledged by JetStream."""
        self.committed = 0
        """This node's events acknowledged by JetStream."""
        self.foreign_events = 0
        """Events of other nodes folded here (what a cluster costs a node)."""
        link.lost = self._lost
        link.found = self._found

    # -- what the intake and the operator's view read -------------------------

    @property
    def last_committed_seq(self) -> int:
        return self._next_seq - 1

    @property
    def pending(self) -> int:
        """Events not yet folded: waiting to be published, or published and on their way."""
        return len(self._pending) + self._own_events

    @property
    def failure(self) -> BaseException | None:
        """Why events are refused now: a gap, a lost connection, a failed publish."""
        return self._fatal or self._link_down or self._publish_failure

    @property
    def accepting(self) -> bool:
        return not self._closed and self.failure is None

    # -- start-up ----------------------------------------------------------------

    async def start(self) -> None:
        """Check that the local log is a copy of this stream, then consume it to its end.

        Returns once every batch the stream held when called is folded. Raises
        ``LogError`` for a local log that cannot continue from the stream.
        """
        link, event_log = self._link, self._log
        stored = event_log.get_meta(STREAM_KEY)
        if stored is None and event_log.last_seq():
            raise LogError(
                f"{event_log.path} holds a single-node log; a cluster node starts with an "
                "empty data directory or a copy of another node's"
            )
        if stored is not None and stored.decode() != link.stream:
            raise LogError(
                f"{event_log.path} is a copy of stream {stored.decode()}, not {link.stream}"
            )
        if stored is None:
            event_log.put_meta(STREAM_KEY, link.stream.encode())
        info = await when_ready(partial(link.js.stream_info, link.stream))
        first, last = info.state.first_seq, info.state.last_seq
        if self.position > last:
            raise LogError(
                f"{event_log.path} holds stream {link.stream} up to {self.position}, but the "
                f"stream ends at {last}: was it recreated?"
            )
        if self.position + 1 < first:
            raise StreamGap(
                f"stream {link.stream} no longer holds batches {self.position + 1} to "
                f"{first - 1} ([log] retention); start this node from a copy of another "
                "node's data directory"
            )
        self._consumer = asyncio.create_task(self._consume(), name="cluster-consumer")
        while self.position < last and self._fatal is None:
            self._progress.clear()
            await self._progress.wait()
        if self._fatal is not None:
            raise self._fatal

    # -- publishing ----------------------------------------------------------------

    def _start_batch(self) -> None:
        self._scheduled = False
        if self._storing or not self._pending or self.failure is not None:
            return
        batch = self._take_batch()
        msg_id = f"{self._msg_prefix}:{self._number}"
        self._number += 1
        own = _Own(batch, self._loop.create_future())
        self._own[msg_id] = own
        self._own_events += len(batch)
        self._publish_task = asyncio.create_task(self._publish(msg_id, own), name="cluster-publish")

    async def _publish(self, msg_id: str, own: _Own) -> None:
        events = [event for event, _, _ in own.batch]
        try:
            value = await self._loop.run_in_executor(self._pool, encode_batch, events)
            ack = await self._link.js.publish(
                self._link.subject,
                value,
                timeout=self._publish_timeout_s,
                stream=self._link.stream,
                headers={_MSG_ID: msg_id},
            )
        except Exception as error:
            self._storing = False
            self._forget(msg_id)
            own.published.set_result(False)
            self._fail(error, own.batch)
            return
        self._storing = False
        self.batches += 1
        self.committed += len(own.batch)
        own.published.set_result(True)
        if ack.seq <= self.position and not ack.duplicate:
            self._stop(
                StreamGap(
                    f"stream {self._link.stream} restarted at {ack.seq}, behind "
                    f"this node's position {self.position}: was it recreated?"
                )
            )
        elif self._pending:
            self._start_batch()
        self._check_idle()

    def _forget(self, msg_id: str) -> None:
        own = self._own.pop(msg_id, None)
        if own is not None:
            self._own_events -= len(own.batch)

    def _fail(self, error: BaseException, batch: Batch) -> None:
        """A publish failed: nothing in it, nor pending, is acknowledged (see the module doc)."""
        if self._link_down is None:
            log.error(
                "publishing to JetStream failed (%s); refusing events for %.0f s",
                error or type(error).__name__,
                self._retry_after_s,
            )
        self._publish_failure = error
        self._loop.call_later(self._retry_after_s, self._resume)
        self._refuse(batch, error)

    def _refuse(self, batch: Batch, error: BaseException) -> None:
        lost = batch + self._pending
        self._pending.clear()
        self._check_idle()
        if lost:
            self._failed_batch(lost, error)

    def _resume(self) -> None:
        self._publish_failure = None

    def _lost(self) -> None:
        """The connection to NATS is gone: refuse events until it is back (logged once)."""
        if self._link_down is not None or self._closed:
            return
        self._link_down = ClusterUnavailable("NATS JetStream unreachable")
        self._down_since = time.monotonic()
        log.error(
            "lost the connection to NATS JetStream: announces and admin changes go "
            "unacknowledged until it is back; connects and scrapes are still answered"
        )
        self._refuse([], self._link_down)

    def _found(self) -> None:
        if self._link_down is None:
            return
        log.warning(
            "NATS JetStream reachable again after %.1f s; catching up from stream position %d",
            time.monotonic() - self._down_since,
            self.position,
        )
        self._link_down = None
        self._resubscribe = True

    def _stop(self, error: BaseException) -> None:
        """Final: this node cannot go on from the stream (an operator must reseed it)."""
        log.error("%s; this node stops taking events", error)
        self._fatal = error
        self._refuse([], error)
        self._progress.set()

    # -- consuming ----------------------------------------------------------------

    async def _consume(self) -> None:
        """Read the stream from the position after the last applied, forever, in order."""
        js = self._link.js
        while self._fatal is None:
            subscription = None
            try:
                subscription = await js.pull_subscribe(
                    self._link.subject,
                    stream=self._link.stream,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                        opt_start_seq=self.position + 1,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=30.0,
                        mem_storage=True,
                    ),
                )
                await self._follow(subscription)
            except asyncio.CancelledError:
                raise
            except StreamGap as gap:
                self._stop(gap)
            except Exception as error:
                if not self._consume_trouble and self._link_down is None:
                    log.warning("reading the stream failed (%s); trying again", error)
                self._consume_trouble = True
                await asyncio.sleep(RESUBSCRIBE_S)
            finally:
                if subscription is not None:
                    await _unsubscribe(subscription)

    async def _follow(self, subscription: JetStreamContext.PullSubscription) -> None:
        """Fetch until something fails; then the caller subscribes again.

        A restarted NATS server has forgotten the consumer (it lives in memory)
        and a fetch from it just times out, as when nothing is new: so a quiet
        fetch asks whether the consumer still exists, and a reconnection
        (``_found``) always starts a new one.
        """
        self._resubscribe = False
        wanted = 1
        while not self._resubscribe:
            try:
                messages = await subscription.fetch(wanted, timeout=FETCH_WAIT_S)
            except TimeoutError:
                await subscription.consumer_info()  # NotFoundError: subscribe again
                self._consume_trouble = False
                continue
            self._consume_trouble = False
            await self._take([(m.metadata.sequence.stream, m.headers, m.data) for m in messages])
            # nats-py answers a fetch of n when n messages came or the wait is over, so
            # ask for no more than the stream holds: one (returned as soon as it comes)
            # when this node is up to date, the backlog when it catches up.
            wanted = min(max(messages[-1].metadata.num_pending, 1), FETCH_BATCH)

    async def _take(self, messages: list[tuple[int, dict[str, str] | None, bytes]]) -> None:
        """Append consecutive stream messages to the local log in one transaction, then fold
        them in order. A message that is not a udpt batch is skipped by every node alike,
        so sequence numbers stay equal everywhere."""
        taken: list[tuple[bytes, str, _Own | None]] = []
        position = self.position
        for seq, headers, data in messages:
            if seq <= position:
                continue  # delivered again after a resubscription
            if seq != position + 1:
                raise StreamGap(
                    f"stream {self._link.stream} skipped from {position} to {seq} (batches "
                    "aged out by [log] retention before this node read them?); start this "
                    "node from a copy of another node's data directory"
                )
            msg_id = (headers or {}).get(_MSG_ID, "")
            own = self._own.get(msg_id)
            if own is not None and not await asyncio.shield(own.published):
                own = None  # its publish failed after all: its callers were told; fold it bare
            taken.append((data, msg_id, own))
            position = seq
        if not taken:
            return
        first = self._next_seq
        batches, seconds = await self._loop.run_in_executor(
            self._pool, self._append, first, position, [data for data, _, _ in taken]
        )
        self.position = position
        self._progress.set()
        try:
            for (_, msg_id, own), events in zip(taken, batches, strict=True):
                if not events:
                    continue
                if own is not None:
                    self._forget(msg_id)
                    batch = [  # the events as appended: their times may have been raised
                        (event, record, payload)
                        for event, (_, record, payload) in zip(events, own.batch, strict=True)
                    ]
                else:
                    batch = [(event, b"", None) for event in events]
                    self.foreign_events += len(events)
                self._committed(first, batch, seconds)
                first += len(events)
        finally:
            self._next_seq = first
            self._check_idle()

    def _append(
        self, first: int, position: int, values: list[bytes]
    ) -> tuple[list[list[Event]], float]:
        """On the writer thread: decode, then append with the position, in one transaction."""
        started = time.perf_counter()
        batches = []
        for value in values:
            try:
                batches.append(self._in_time_order(decode_batch(value)))
            except DecodeError as error:
                log.error("a stream message is not a udpt batch (%s); skipped", error)
                batches.append([])
        self._log.append_batches(first, batches, ((POSITION_KEY, _POSITION.pack(position)),))
        return batches, time.perf_counter() - started

    def _in_time_order(self, events: list[Event]) -> list[Event]:
        """``events`` with each time raised to the last one appended, where it is earlier.

        Nodes decide with their own clocks: two events decided at once on two nodes can
        reach the stream a millisecond out of order, and machines' clocks differ by more.
        The fold needs times that never go backwards (an expiry index files a torrent
        no later than its oldest peer, projections/time_index.py), and every node raises
        the same times of the same stream in the same order, so the logs stay equal.
        """
        last = self._last_ms
        ordered: list[Event] = []
        for event in events:
            if event.at_ms < last:
                event = event._replace(at_ms=last)
            last = event.at_ms
            ordered.append(event)
        self._last_ms = last
        return ordered

    # -- shutdown ----------------------------------------------------------------

    def _check_idle(self) -> None:
        if not self._pending and not self._storing and not self._own:
            self._idle.set()
        else:
            self._idle.clear()

    async def drain(self) -> None:
        """Wait until everything submitted so far is folded (or failed) and reported."""
        if self._pending and not self._storing and not self._scheduled:
            self._start_batch()
        self._check_idle()
        await self._idle.wait()

    async def close(self) -> None:
        """Publish and fold what is pending (for at most ``CLOSE_TIMEOUT_S``), then disconnect.

        Batches acknowledged but not yet consumed when the time is up are in the
        stream: the next start folds them.
        """
        try:
            await asyncio.wait_for(self.drain(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "closing with %d events not folded yet; the next start folds what the stream holds",
                self.pending,
            )
        self._closed = True
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
        await self._link.close()
        self._pool.shutdown(wait=True)


async def _unsubscribe(subscription: JetStreamContext.PullSubscription) -> None:
    try:
        await subscription.unsubscribe()
    except Exception:  # the connection is gone; the server forgets the consumer by itself
        log.debug("unsubscribing from the stream failed", exc_info=True)
