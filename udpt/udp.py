"""The UDP edge: asyncio-dgram endpoints around the tracker's synchronous handler.

One receive loop per socket hands each datagram to ``Tracker.handle``; replies
(immediate, or after their event's commit) go into an outbox that one sender
coroutine drains. No exception from a bad datagram, a failed send or an ICMP
error leaves these loops (asyncio-dgram reports send errors on the *next*
call — docs/PYTHON-STACK.md §2).

asyncio-dgram's own receive queue is unbounded; ``BoundedProtocol`` sheds
datagrams beyond ``max_queued`` so a flood costs a counter, not memory.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from functools import partial

from asyncio_dgram.aio import DatagramServer, Protocol, TransportClosed

from udpt.addresses import canonical_ip
from udpt.clock import EventClock
from udpt.tracker import Tracker

__all__ = ["BoundedProtocol", "UdpEndpoint", "bind_udp_socket"]

log = logging.getLogger(__name__)

Address = tuple  # (host, port) or (host, port, flowinfo, scope_id)


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


class BoundedProtocol(Protocol):
    """asyncio-dgram's protocol with a bound on datagrams waiting to be read."""

    def __init__(
        self, recvq: asyncio.Queue, excq: asyncio.Queue, drained: asyncio.Event, max_queued: int
    ) -> None:
        super().__init__(recvq, excq, drained)
        self.max_queued = max_queued
        self.shed = 0

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self._recvq.qsize() >= self.max_queued:
            self.shed += 1
            return
        self._recvq.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors concern one past reply; keep them out of the stream's next call."""
        log.debug("UDP error from the network: %s", exc)


class UdpEndpoint:
    """One bound socket: its receive loop, its outbox and its sender."""

    def __init__(
        self,
        stream: DatagramServer,
        protocol: BoundedProtocol,
        tracker: Tracker,
        clock: EventClock,
        receive_buffer: int = 8192,
    ) -> None:
        self.stream = stream
        self.receive_buffer = receive_buffer
        self.protocol = protocol
        self.tracker = tracker
        self.clock = clock
        self._outbox: deque[tuple[bytes, Address]] = deque()
        self._wake = asyncio.Event()
        self.received = 0
        self.send_errors = 0
        self.receive_errors = 0

    @classmethod
    async def open(
        cls,
        sock: socket.socket,
        tracker: Tracker,
        clock: EventClock,
        receive_buffer: int = 8192,
        max_queued: int = 10_000,
    ) -> UdpEndpoint:
        loop = asyncio.get_running_loop()
        recvq: asyncio.Queue = asyncio.Queue()
        excq: asyncio.Queue = asyncio.Queue()
        drained = asyncio.Event()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: BoundedProtocol(recvq, excq, drained, max_queued), sock=sock
        )
        return cls(
            DatagramServer(transport, recvq, excq, drained),
            protocol,
            tracker,
            clock,
            receive_buffer,
        )

    @property
    def address(self) -> Address:
        return self.stream.sockname

    def _reply(self, addr: Address, data: bytes) -> None:
        self._outbox.append((data, addr))
        self._wake.set()

    async def receive_loop(self) -> None:
        """Read datagrams until the socket closes; nothing a client sends can end this loop."""
        stream = self.stream
        handle = self.tracker.handle
        clock = self.clock
        reply = self._reply
        limit = self.receive_buffer
        while True:
            try:
                data, addr = await stream.recv()
            except TransportClosed:
                return
            except OSError:
                self.receive_errors += 1
                continue
            self.received += 1
            if addr[1] == 0:  # R1: no reply can reach source port 0
                continue
            if len(data) > limit:  # as a recvfrom into a receive_buffer-sized buffer would
                data = data[:limit]
            try:
                ip = canonical_ip(addr[0])
                handle(data, ip, clock.now(), clock.now_ms(), partial(reply, addr))
            except Exception:
                log.exception("unexpected error handling a datagram from %s", addr[0])

    async def send_loop(self) -> None:
        """Send queued replies until the socket closes."""
        stream = self.stream
        outbox = self._outbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            while outbox:
                data, addr = outbox.popleft()
                try:
                    await stream.send(data, addr)
                except TransportClosed:
                    return
                except OSError:
                    self.send_errors += 1

    def run(self) -> list[asyncio.Task]:
        return [
            asyncio.create_task(self.receive_loop(), name="udp-receive"),
            asyncio.create_task(self.send_loop(), name="udp-send"),
        ]

    async def flush(self) -> None:
        """Send what is queued (used at shutdown, after the final commit)."""
        while self._outbox:
            data, addr = self._outbox.popleft()
            try:
                await self.stream.send(data, addr)
            except (OSError, TransportClosed):
                self.send_errors += 1

    def close(self) -> None:
        self.stream.close()
