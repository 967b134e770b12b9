"""The client side of BEP 15 for tests: request builders, response parsers, a UDP client.

Everything here is written with plain ``struct`` format strings from docs/PROTOCOL.md and
imports nothing from ``udpt``, so a test that builds a request here and parses it with
``udpt.wire`` (or the reverse) checks the codec against an independent reading of
the spec rather than against itself.

Parsers are strict where real clients are strict (docs/PROTOCOL.md §12, client table):
a connect reply must be exactly 16 bytes, an announce reply's peer part a whole
number of entries. A reply of the wrong shape raises ``ProtocolError``; an error
reply (action 3) where another was expected raises ``TrackerError``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import socket
import struct
from dataclasses import dataclass

import asyncio_dgram

__all__ = [
    "PROTOCOL_MAGIC",
    "AnnounceResponse",
    "ConnectResponse",
    "ErrorResponse",
    "ProtocolError",
    "ScrapeResponse",
    "TrackerClient",
    "TrackerError",
    "announce_request",
    "connect_request",
    "parse_announce_response",
    "parse_compact_peers",
    "parse_connect_response",
    "parse_error_response",
    "parse_scrape_response",
    "peer_id_for",
    "scrape_request",
    "url_data_option",
]

PROTOCOL_MAGIC = 0x41727101980

_CONNECT = 0
_ANNOUNCE = 1
_SCRAPE = 2
_ERROR = 3


class ProtocolError(AssertionError):
    """A reply that a real client would discard (wrong size, action or transaction id)."""


class TrackerError(Exception):
    """The tracker answered with an error reply; ``message`` is its text."""

    def __init__(self, transaction_id: bytes, message: str) -> None:
        super().__init__(message)
        self.transaction_id = transaction_id
        self.message = message


# Requests ---------------------------------------------------------------------------


def connect_request(transaction_id: bytes) -> bytes:
    """``CONNECT(tid)`` of docs/PROTOCOL.md §15: magic, action 0, transaction id."""
    return struct.pack("!QI4s", PROTOCOL_MAGIC, _CONNECT, transaction_id)


def announce_request(
    connection_id: bytes,
    transaction_id: bytes,
    info_hash: bytes,
    peer_id: bytes,
    downloaded: int = 0,
    left: int = 1000,
    uploaded: int = 0,
    event: int = 2,
    ip: bytes = b"\0" * 4,
    key: int = 0x01020304,
    num_want: int = -1,
    port: int = 6881,
    options: bytes = b"",
) -> bytes:
    """``ANN(...)`` of docs/PROTOCOL.md §15 (98 bytes), followed by raw BEP 41 ``options``."""
    fixed = struct.pack(
        "!8sI4s20s20sqqqI4sIiH",
        connection_id,
        _ANNOUNCE,
        transaction_id,
        info_hash,
        peer_id,
        downloaded,
        left,
        uploaded,
        event,
        ip,
        key,
        num_want,
        port,
    )
    return fixed + options


def scrape_request(connection_id: bytes, transaction_id: bytes, *info_hashes: bytes) -> bytes:
    """``SCR(h1, h2, ...)`` of docs/PROTOCOL.md §15: header then the 20-byte hashes."""
    return struct.pack("!8sI4s", connection_id, _SCRAPE, transaction_id) + b"".join(info_hashes)


def url_data_option(data: bytes) -> bytes:
    """One BEP 41 URLData option (type 2, length, data), as libtorrent appends it."""
    return bytes([2, len(data)]) + data


def peer_id_for(number: int) -> bytes:
    """docs/PROTOCOL.md §15's peer id for simulated peer ``number``: ``-XX0001-`` + 12 bytes."""
    return b"-XX0001-" + b"%012d" % number


# Responses --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    transaction_id: bytes
    connection_id: bytes


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    """An announce reply. ``peers`` is a set; ``peer_count`` counts entries, duplicates too."""

    transaction_id: bytes
    interval: int
    leechers: int
    seeders: int
    peers: frozenset[tuple[str, int]]
    peer_count: int
    size: int


@dataclass(frozen=True, slots=True)
class ScrapeResponse:
    """A scrape reply: one (seeders, completed, leechers) per requested hash, in order."""

    transaction_id: bytes
    entries: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    transaction_id: bytes
    message: str


def _action_and_transaction(data: bytes) -> tuple[int, bytes]:
    if len(data) < 8:
        raise ProtocolError(f"reply of {len(data)} bytes is shorter than the 8-byte header")
    action, transaction_id = struct.unpack_from("!I4s", data)
    return action, transaction_id


def _expect_action(data: bytes, expected: int) -> bytes:
    action, transaction_id = _action_and_transaction(data)
    if action == _ERROR and expected != _ERROR:
        raise TrackerError(transaction_id, parse_error_response(data).message)
    if action != expected:
        raise ProtocolError(f"reply action {action}, expected {expected}: {data.hex()}")
    return transaction_id


def parse_connect_response(data: bytes) -> ConnectResponse:
    """A connect reply; exactly 16 bytes, as Transmission requires."""
    transaction_id = _expect_action(data, _CONNECT)
    if len(data) != 16:
        raise ProtocolError(f"connect reply is {len(data)} bytes, not 16: {data.hex()}")
    return ConnectResponse(transaction_id, data[8:16])


def parse_compact_peers(data: bytes, stride: int) -> list[tuple[str, int]]:
    """BEP 23 compact entries (6 bytes IPv4, 18 bytes IPv6) as (address text, port)."""
    if stride not in (6, 18):
        raise ValueError(f"stride must be 6 or 18, got {stride}")
    if len(data) % stride:
        raise ProtocolError(f"{len(data)} peer bytes are not a multiple of {stride}")
    family = socket.AF_INET if stride == 6 else socket.AF_INET6
    return [
        (
            socket.inet_ntop(family, data[offset : offset + stride - 2]),
            int.from_bytes(data[offset + stride - 2 : offset + stride], "big"),
        )
        for offset in range(0, len(data), stride)
    ]


def parse_announce_response(data: bytes, stride: int = 6) -> AnnounceResponse:
    """An announce reply with 6-byte (IPv4 client) or 18-byte (IPv6 client) peers."""
    transaction_id = _expect_action(data, _ANNOUNCE)
    if len(data) < 20:
        raise ProtocolError(f"announce reply is {len(data)} bytes, under 20: {data.hex()}")
    interval, leechers, seeders = struct.unpack_from("!iii", data, 8)
    peers = parse_compact_peers(data[20:], stride)
    return AnnounceResponse(
        transaction_id, interval, leechers, seeders, frozenset(peers), len(peers), len(data)
    )


def parse_scrape_response(data: bytes) -> ScrapeResponse:
    """A scrape reply: 8-byte header then 12-byte entries."""
    transaction_id = _expect_action(data, _SCRAPE)
    if len(data) < 20 or (len(data) - 8) % 12:
        raise ProtocolError(f"scrape reply of {len(data)} bytes is not 8 + 12n, n >= 1")
    entries = tuple(struct.iter_unpack("!iii", data[8:]))
    return ScrapeResponse(transaction_id, entries)


def parse_error_response(data: bytes) -> ErrorResponse:
    """An error reply: the text must be valid UTF-8 (a NUL would be kept, and so seen)."""
    transaction_id = _expect_action(data, _ERROR)
    try:
        message = data[8:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"error text is not UTF-8: {data[8:]!r}") from error
    return ErrorResponse(transaction_id, message)


# Client -----------------------------------------------------------------------------


class TrackerClient:
    """A UDP client bound to ``local_host`` and connected to the tracker.

    The socket is connected, so the kernel drops datagrams from any other source,
    as libtorrent does (docs/PROTOCOL.md §1.7). Every receive has a deadline and raises
    ``TimeoutError`` when nothing arrives: that is how a test sees silence.
    """

    def __init__(self, stream: asyncio_dgram.DatagramClient, peer_id: bytes) -> None:
        self._stream = stream
        self._transaction_ids = itertools.count(1)
        self.peer_id = peer_id
        self.connection_id: bytes | None = None

    @classmethod
    async def open(
        cls, server_addr: tuple[str, int], local_host: str = "127.0.0.1"
    ) -> TrackerClient:
        """Bind an ephemeral port on ``local_host`` and connect it to ``server_addr``."""
        family = socket.AF_INET6 if ":" in local_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((local_host, 0))
            sock.connect(server_addr)
            sock.setblocking(False)
            stream = await asyncio_dgram.from_socket(sock)
        except BaseException:
            sock.close()
            raise
        return cls(stream, b"-XX0001-" + os.urandom(6).hex().encode("ascii"))

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def local_address(self) -> tuple[str, int]:
        """(host, port) this client sends from."""
        host, port = self._stream.sockname[:2]
        return host, port

    @property
    def stride(self) -> int:
        """Peer entry size the tracker must use for this client: 6 (IPv4) or 18 (IPv6)."""
        address = ipaddress.ip_address(self.local_address[0])
        if address.version == 4 or address.ipv4_mapped is not None:
            return 6
        return 18

    def next_transaction_id(self) -> bytes:
        return next(self._transaction_ids).to_bytes(4, "big")

    async def send(self, data: bytes) -> None:
        if not data:
            # asyncio's datagram transport silently skips an empty datagram (CPython 3.11
            # ``sendto``: ``if not data: return``), so send it on the socket itself.
            with self._stream.socket.dup() as sock:
                sock.send(data)
            return
        await self._stream.send(data)

    async def recv(self, timeout: float = 2.0) -> bytes:
        """The next datagram from the tracker; ``TimeoutError`` after ``timeout`` seconds."""
        data, _addr = await asyncio.wait_for(self._stream.recv(), timeout)
        return data

    async def request(self, data: bytes, timeout: float = 2.0) -> bytes:
        """Send ``data`` and return the next datagram received."""
        await self.send(data)
        return await self.recv(timeout)

    async def connect(self, timeout: float = 2.0) -> bytes:
        """Run a connect exchange; remembers and returns the connection id."""
        transaction_id = self.next_transaction_id()
        reply = parse_connect_response(await self.request(connect_request(transaction_id), timeout))
        _check_transaction(reply.transaction_id, transaction_id)
        self.connection_id = reply.connection_id
        return reply.connection_id

    async def announce(
        self,
        info_hash: bytes,
        *,
        connection_id: bytes | None = None,
        peer_id: bytes | None = None,
        downloaded: int = 0,
        left: int = 1000,
        uploaded: int = 0,
        event: int = 2,
        ip: bytes = b"\0" * 4,
        key: int = 0x01020304,
        num_want: int = -1,
        port: int = 6881,
        options: bytes = b"",
        timeout: float = 2.0,
    ) -> AnnounceResponse:
        """Announce with the last connection id (or ``connection_id``); parse the reply.

        Raises ``TrackerError`` on an error reply and ``TimeoutError`` on silence.
        """
        transaction_id = self.next_transaction_id()
        datagram = announce_request(
            self._connection_id(connection_id),
            transaction_id,
            info_hash,
            self.peer_id if peer_id is None else peer_id,
            downloaded=downloaded,
            left=left,
            uploaded=uploaded,
            event=event,
            ip=ip,
            key=key,
            num_want=num_want,
            port=port,
            options=options,
        )
        reply = await self.request(datagram, timeout)
        _check_transaction(_action_and_transaction(reply)[1], transaction_id)
        return parse_announce_response(reply, self.stride)

    async def scrape(
        self, *info_hashes: bytes, connection_id: bytes | None = None, timeout: float = 2.0
    ) -> ScrapeResponse:
        """Scrape with the last connection id (or ``connection_id``); parse the reply."""
        transaction_id = self.next_transaction_id()
        datagram = scrape_request(self._connection_id(connection_id), transaction_id, *info_hashes)
        reply = await self.request(datagram, timeout)
        _check_transaction(_action_and_transaction(reply)[1], transaction_id)
        return parse_scrape_response(reply)

    def close(self) -> None:
        self._stream.close()

    def _connection_id(self, explicit: bytes | None) -> bytes:
        if explicit is not None:
            return explicit
        if self.connection_id is None:
            raise RuntimeError("call connect() first or pass connection_id")
        return self.connection_id


def _check_transaction(received: bytes, sent: bytes) -> None:
    if received != sent:
        raise ProtocolError(f"reply transaction id {received.hex()}, sent {sent.hex()}")
