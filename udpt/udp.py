"""The UDP edge: asyncio-dgram endpoints around the synchronous decisions.

One receive loop per socket parses each datagram (``udpt.wire``), asks the
decisions what it gets (``Tracker.decide``), sends an immediate reply at once
and hands a record to the intake, which delivers its answer back here after the
commit. Replies go straight to the transport: a datagram send never blocks, and
the transport's buffer is bounded here, so there is no outbox to drain. No
exception from a bad datagram, a failed send or an ICMP error leaves the loop.

Two endpoints read the socket; everything after the read is shared.
``DgramEndpoint`` is the reference: asyncio-dgram, whose receive queue is
unbounded, so ``BoundedProtocol`` sheds datagrams beyond ``max_queued`` and
drops garbage before queueing it; the loop takes every datagram already queued
in one go, reading the clock once. ``BatchEndpoint`` runs with the compiled
core: it waits for the socket to be readable and has ``udpt._sockets`` read up
to ``BATCH_LIMIT`` datagrams with recvmmsg, garbage dropped in C, so a flood of
it costs a fraction of a microsecond a datagram instead of several (measured in
BENCHMARKS.md, "Torture"); the replies of one pass of the loop leave together by
sendmmsg. Same datagrams, same handling, same counters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from typing import Any, cast
from typing import Protocol as TypingProtocol

from asyncio_dgram.aio import DatagramServer, Protocol, TransportClosed

from udpt.addresses import canonical_ip
from udpt.clock import EventClock
from udpt.core import COMPILED, COMPILED_SOCKETS
from udpt.counters import Counters
from udpt.events.types import AnnounceAccepted, AnnounceEvent, AnnounceRefused, RefusalReason
from udpt.intake import Intake
from udpt.quotas import NEW_TORRENTS_OVER_QUOTA, OVER_QUOTA
from udpt.tracker import REFUSAL_MESSAGES, Commit, Decision, Tracker
from udpt.wire import (
    AnnounceRequest,
    ConnectRequest,
    InvalidRequest,
    ScrapeRequest,
    may_be_request,
    parse_request,
)

__all__ = [
    "BatchEndpoint",
    "BoundedProtocol",
    "DgramEndpoint",
    "UdpEndpoint",
    "bind_udp_socket",
    "kernel_drops",
    "open_endpoint",
]

log = logging.getLogger(__name__)

Address = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)

MAX_SEND_BUFFER = 4 << 20
"""Bytes of replies the transport may hold unsent before further replies are dropped."""

BATCH_LIMIT = 256
"""Datagrams ``BatchEndpoint`` reads per wake-up, so that commits and the API get their turn."""

ERROR_LOG_INTERVAL_S = 10.0
"""Unexpected errors are logged at most once in this many seconds (with a count)."""

# Counter keys, built once: (action, ip_version) by request type and address length.
_ACTIONS = {
    ConnectRequest: "connect",
    AnnounceRequest: "announce",
    ScrapeRequest: "scrape",
    InvalidRequest: "invalid",
}
_REQUEST_KEYS = {kind: {4: (action, "4"), 16: (action, "6")} for kind, action in _ACTIONS.items()}
_RESPONSE_KEYS = {kind: (action, "ok") for kind, action in _ACTIONS.items()}
_RESPONSE_KEYS[InvalidRequest] = ("invalid", "error")
# An error reply (action 3) to a valid request is a refusal: over a quota, or unrecorded.
_REFUSED_KEYS = {kind: (action, "refused") for kind, action in _ACTIONS.items()}
_REFUSED_KEYS[InvalidRequest] = ("invalid", "error")
_ERROR_ACTION = 3
_ANNOUNCE_OK = ("announce", "ok")
_ANNOUNCE_REFUSED = ("announce", "refused")

if COMPILED:  # the compiled announce path (udpt/_lane.c) makes these values
    from udpt import _core

    _core.bind_lane(
        Commit,
        AnnounceAccepted,
        tuple(AnnounceEvent),
        OVER_QUOTA,
        NEW_TORRENTS_OVER_QUOTA,
        REFUSAL_MESSAGES[RefusalReason.FLAGGED],
        AnnounceRequest,
    )


class _Transport(TypingProtocol):
    """What the endpoint uses of a datagram transport (asyncio's and uvloop's have all of it)."""

    def sendto(self, data: bytes, addr: Address) -> None: ...

    def get_write_buffer_size(self) -> int: ...


def bind_udp_socket(host: str, port: int) -> socket.socket:
    """A bound, non-blocking UDP socket; ``::`` is dual-stack whatever the sysctl says."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def kernel_drops(fd: int) -> int | None:
    """Datagrams the kernel dropped for socket ``fd`` because its receive buffer was full.

    Read from /proc/net/udp (and udp6), the row whose inode is the socket's: a
    flood that outruns the loop shows here before udpt sees a byte of it. None
    where /proc does not tell (not Linux, or the row is gone).
    """
    inode = str(os.fstat(fd).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as rows:
                next(rows)  # the header
                for row in rows:
                    fields = row.split()
                    if fields[9] == inode:
                        return int(fields[12])
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    return None


class BoundedProtocol(Protocol):
    """asyncio-dgram's protocol with a bound on datagrams waiting to be read."""

    def __init__(
        self,
        recvq: asyncio.Queue[Any],
        excq: asyncio.Queue[Any],
        drained: asyncio.Event,
        max_queued: int,
        counters: Counters,
    ) -> None:
        super().__init__(recvq, excq, drained)
        self._queue = recvq
        self.max_queued = max_queued
        self._counters = counters
        self.reject: Callable[[int], None] = lambda count: None
        """Told of each datagram rejected before the queue (the endpoint counts them)."""

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not may_be_request(data):  # before the queue: garbage must cost little
            self.reject(1)
            return
        if self._queue.qsize() >= self.max_queued:
            self._counters.dropped["queue_full"] += 1
            return
        self._queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors concern one past reply; keep them out of the stream's next call."""
        log.debug("UDP error from the network: %s", exc)


class _ErrorLog:
    """Logs unexpected errors with their traceback, at most once per interval."""

    def __init__(self) -> None:
        self._next_at = 0.0
        self._suppressed = 0

    def report(self, source: str, error: BaseException | None = None) -> None:
        """Log the error being handled (or ``error``) for a datagram from ``source``."""
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        self._next_at = now + ERROR_LOG_INTERVAL_S
        more = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
        self._suppressed = 0
        log.error(
            "unexpected error handling a datagram from %s%s",
            source,
            more,
            exc_info=error if error is not None else True,
        )


class UdpEndpoint(ABC):
    """One bound socket: what each datagram gets, whichever endpoint read it."""

    def __init__(
        self,
        sock: socket.socket,
        tracker: Tracker,
        intake: Intake,
        clock: EventClock,
        receive_buffer: int = 8192,
    ) -> None:
        self.socket = sock
        self.tracker = tracker
        self.intake = intake
        self.counters = intake.counters
        self.clock = clock
        self.receive_buffer = receive_buffer
        self._errors = _ErrorLog()
        self._handled = 0
        self.rejected = 0
        self.send_errors = 0
        self.receive_errors = 0

    @property
    def received(self) -> int:
        """Datagrams read and dealt with: rejected as garbage, or handled."""
        return self.rejected + self._handled

    @property
    def address(self) -> Address:
        return tuple(self.socket.getsockname())

    def handle(self, data: bytes, addr: Any, now_ms: int) -> None:
        """Parse, decide, and reply now or hand the record to the intake."""
        self._handled += 1
        counters = self.counters
        if addr[1] == 0:  # R1: no reply can reach source port 0
            counters.dropped["source_port_0"] += 1
            return
        if len(data) > self.receive_buffer:  # as a recvfrom into a buffer that size would
            data = data[: self.receive_buffer]
        try:
            request = parse_request(data, self.tracker.policy.max_scrape_hashes)
            if request is None:
                counters.dropped["malformed"] += 1
                return
            ip = canonical_ip(addr[0])
            kind = type(request)
            counters.requests[_REQUEST_KEYS[kind][len(ip)]] += 1
            silenced = self.tracker.quotas.silenced
            self._dispatch(kind, self.tracker.decide(request, ip, now_ms), addr, silenced)
        except Exception:
            self._errors.report(str(addr[0]))

    def handle_all(self, taken: list[tuple[bytes, Address]], now_ms: int) -> None:
        """``handle`` each (data, addr) of ``taken``, all at ``now_ms``."""
        handle = self.handle
        for data, addr in taken:
            handle(data, addr, now_ms)

    def _dispatch(self, kind: type, decision: Decision, addr: Address, silenced: int) -> None:
        """Carry out the decision on a request of type ``kind``; ``silenced`` is the quotas'
        count of silenced requests before it was decided."""
        if decision is None:  # a bad id, or a source over quota past its error replies
            over = self.tracker.quotas.silenced != silenced
            self.counters.dropped["over_quota" if over else "bad_connection_id"] += 1
        elif isinstance(decision, bytes):
            keys = _REFUSED_KEYS if decision[3] == _ERROR_ACTION else _RESPONSE_KEYS
            self._send(decision, addr, keys[kind])
        else:
            result = _ANNOUNCE_REFUSED if type(decision.event) is AnnounceRefused else _ANNOUNCE_OK
            self.intake.submit(decision, self._deliver, (addr, result))

    def _deliver(self, to: tuple[Address, tuple[str, str]], outcome: Any) -> None:
        """The intake's answer to a recorded announce; a lost one was counted there."""
        if type(outcome) is bytes:
            self._send(outcome, *to)

    @abstractmethod
    def _send(self, data: bytes, addr: Address, result: tuple[str, str]) -> None:
        """Send a reply to ``addr``, counted under ``result`` once it is out."""

    def _rejected(self, count: int) -> None:
        self.rejected += count
        self.counters.dropped["malformed"] += count

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped before this endpoint could read them (see above)."""
        fd = self.socket.fileno()
        return None if fd < 0 else kernel_drops(fd)

    @abstractmethod
    def run(self) -> list[asyncio.Task[None]]:
        """Start reading: the tasks to cancel when the daemon stops taking datagrams."""

    @abstractmethod
    def close(self) -> None:
        """Close the socket."""


class DgramEndpoint(UdpEndpoint):
    """The reference endpoint: asyncio-dgram's stream, its queue bounded by ``BoundedProtocol``."""

    def __init__(
        self,
        stream: DatagramServer,
        transport: _Transport,
        protocol: BoundedProtocol,
        recvq: asyncio.Queue[Any],
        endpoint: tuple[socket.socket, Tracker, Intake, EventClock, int],
    ) -> None:
        super().__init__(*endpoint)
        self.stream = stream
        self._transport = transport
        self.protocol = protocol
        self._recvq = recvq
        protocol.reject = self._rejected

    @classmethod
    async def open(
        cls,
        sock: socket.socket,
        tracker: Tracker,
        intake: Intake,
        clock: EventClock,
        receive_buffer: int = 8192,
        max_queued: int = 10_000,
    ) -> DgramEndpoint:
        loop = asyncio.get_running_loop()
        recvq: asyncio.Queue[Any] = asyncio.Queue()
        excq: asyncio.Queue[Any] = asyncio.Queue()
        drained = asyncio.Event()
        counters = intake.counters
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: BoundedProtocol(recvq, excq, drained, max_queued, counters), sock=sock
        )
        stream = DatagramServer(transport, recvq, excq, drained)  # type: ignore[arg-type]
        return cls(
            stream,
            cast(_Transport, transport),
            protocol,
            recvq,
            (sock, tracker, intake, clock, receive_buffer),
        )

    async def receive_loop(self) -> None:
        """Read datagrams until the socket closes; nothing a client sends can end this loop."""
        stream = self.stream
        queued = self._recvq
        handle = self.handle
        now_ms = self.clock.now_ms
        while True:
            try:
                data, addr = await stream.recv()
            except TransportClosed:
                return
            except OSError:
                self.receive_errors += 1
                continue
            now = now_ms()
            handle(data, addr, now)
            while not queued.empty():
                data, addr = queued.get_nowait()
                if data is None:  # the transport closed
                    return
                handle(data, addr, now)

    def _send(self, data: bytes, addr: Address, result: tuple[str, str]) -> None:
        transport = self._transport
        if transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            self.counters.dropped["send_buffer_full"] += 1
            return
        try:
            transport.sendto(data, addr)
        except OSError:
            self.send_errors += 1
            return
        self.counters.responses[result] += 1

    def run(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.receive_loop(), name="udp-receive")]

    def close(self) -> None:
        self.stream.close()


Receive = Callable[[int, int, int], tuple[list[tuple[bytes, Address]], int, int]]
"""``udpt._sockets.receive(fd, limit, size)``: (may-be requests, rejected, errors)."""

Send = Callable[[int, list[tuple[bytes, Address]]], bytes]
"""``udpt._sockets.send(fd, messages)``: a status byte per message (0 sent, 1 full, 2 failed)."""

_SENT, _WOULD_BLOCK = 0, 1


class BatchEndpoint(UdpEndpoint):
    """The compiled endpoint: readable wake-ups, datagrams read and replies sent in batches.

    Replies wait in ``_outbox`` only until the loop's current pass ends, then go
    to the non-blocking socket in one call; one the kernel cannot take at once
    is dropped and counted (the client retries), which bounds memory as the
    reference's transport buffer limit does.
    """

    def __init__(
        self,
        sock: socket.socket,
        tracker: Tracker,
        intake: Intake,
        clock: EventClock,
        receive_buffer: int,
        io: tuple[Receive, Send],
    ) -> None:
        super().__init__(sock, tracker, intake, clock, receive_buffer)
        self._receive, self._send_all = io
        self._fd = sock.fileno()
        self._outbox: list[tuple[bytes, Address]] = []
        self._results: list[tuple[str, str]] = []
        self._loop = asyncio.get_running_loop()
        self._lane = (
            _core.Lane(
                self,
                (*_REQUEST_KEYS[AnnounceRequest].values(), *_REQUEST_KEYS[ScrapeRequest].values()),
                _ANNOUNCE_OK,
                _RESPONSE_KEYS[ScrapeRequest],
                partial(_core.answer_announce, tracker),
            )
            if COMPILED
            else None
        )
        """The compiled announce and scrape path, which hands ``handle`` every other datagram."""

    @property
    def received(self) -> int:
        return super().received + (self._lane.handled if self._lane is not None else 0)

    def _readable(self) -> None:
        try:
            taken, rejected, errors = self._receive(self._fd, BATCH_LIMIT, self.receive_buffer)
        except OSError:
            self.receive_errors += 1
            return
        if rejected:
            self._rejected(rejected)
        self.receive_errors += errors
        if taken:
            self.handle_all(taken, self.clock.now_ms())

    def handle_all(self, taken: list[tuple[bytes, Address]], now_ms: int) -> None:
        if self._lane is None:
            super().handle_all(taken, now_ms)
        else:
            self._lane.handle_all(taken, now_ms)

    async def _serve(self) -> None:
        self._loop.add_reader(self._fd, self._readable)
        try:
            await self._loop.create_future()  # until cancelled
        finally:
            self._loop.remove_reader(self._fd)

    def _send(self, data: bytes, addr: Address, result: tuple[str, str]) -> None:
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.append((data, addr))
        self._results.append(result)

    def _flush(self) -> None:
        outbox, results = self._outbox, self._results
        self._outbox, self._results = [], []
        if self.socket.fileno() < 0:
            return
        counters = self.counters
        responses = counters.responses
        statuses = self._send_all(self._fd, outbox)
        if statuses.count(_SENT) == len(results):  # as the loop below counts them, in C
            responses.update(results)
            return
        for status, result in zip(statuses, results, strict=True):
            if status == _SENT:
                responses[result] += 1
            elif status == _WOULD_BLOCK:
                counters.dropped["send_buffer_full"] += 1
            else:
                self.send_errors += 1

    def run(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._serve(), name="udp-receive")]

    def close(self) -> None:
        if self._outbox:
            self._flush()
        self.socket.close()


async def open_endpoint(
    sock: socket.socket,
    tracker: Tracker,
    intake: Intake,
    clock: EventClock,
    receive_buffer: int = 8192,
) -> UdpEndpoint:
    """The compiled endpoint when ``udpt._sockets`` is built and wanted, else the reference."""
    io = compiled_sockets()
    if io is None:
        return await DgramEndpoint.open(sock, tracker, intake, clock, receive_buffer)
    return BatchEndpoint(sock, tracker, intake, clock, receive_buffer, io)


def compiled_sockets() -> tuple[Receive, Send] | None:
    """``udpt._sockets``' receive and send when ``udpt.core`` selected them."""
    if not COMPILED_SOCKETS:
        return None
    from udpt._sockets import receive, send

    return receive, send
