"""BEP 15 datagrams as values: parse client requests, build server responses.

Bytes in, values out. This module has no socket, clock, logger or configuration:
limits such as the number of scrape hashes arrive as arguments, and the two checks
that need more than the datagram are left to the caller (docs/PROTOCOL.md §2, R1: a
source port of 0; R6: a connection id that is not valid for the source IP).

``parse_request`` never raises, whatever the bytes and whatever their length
(docs/PROTOCOL.md §1.9); it returns ``None`` for a datagram that must be dropped
without a reply. The builders trust their arguments (they come from the tracker,
not from the network) and produce exactly the layouts of docs/PROTOCOL.md §3, §7, §8
and §9, with no padding and no trailing bytes (§1.4).

Requests are ``NamedTuple`` values, immutable like frozen dataclasses but built
in a sixth of the time (0.3 against 2 µs for an announce): one is built for
every datagram.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import NamedTuple

from udpt.core import COMPILED

__all__ = [
    "ACTION_ANNOUNCE",
    "ACTION_CONNECT",
    "ACTION_ERROR",
    "ACTION_SCRAPE",
    "ANNOUNCE_REQUEST_MIN_SIZE",
    "EVENT_COMPLETED",
    "EVENT_NONE",
    "EVENT_STARTED",
    "EVENT_STOPPED",
    "MAX_ANNOUNCE_OPTIONS",
    "MAX_ERROR_MESSAGE_BYTES",
    "MAX_SCRAPE_HASHES",
    "MAX_URL_DATA",
    "PROTOCOL_ID",
    "AnnounceRequest",
    "ConnectRequest",
    "InvalidRequest",
    "Request",
    "ScrapeRequest",
    "build_announce_response",
    "build_connect_response",
    "build_error_response",
    "build_scrape_response",
    "may_be_request",
    "parse_request",
]
# Also importable, not exported: the pure functions under *_py names (end of the module).

PROTOCOL_ID = 0x41727101980
"""The magic in the connection-id field of a connect request (BEP 15)."""

ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3

EVENT_NONE = 0
EVENT_COMPLETED = 1
EVENT_STARTED = 2
EVENT_STOPPED = 3

MAX_SCRAPE_HASHES = 74
"""BEP 15: "up to about 74" hashes per scrape; a 74-hash request is 1496 bytes.
Precedent: opentracker 75, aquatic 70, chihaya 50, torrust 74 (docs/PROTOCOL.md §8)."""

ANNOUNCE_REQUEST_MIN_SIZE = 98
"""The fixed part of an announce; BEP 41 options start here (docs/PROTOCOL.md §5.1)."""

MAX_URL_DATA = 1024
"""Cap on the concatenated BEP 41 URLData (docs/PROTOCOL.md §5.5); the rest is ignored."""

MAX_ANNOUNCE_OPTIONS = 64
"""Options read per announce, NOPs included, before the rest is ignored like a
malformed tail. libtorrent sends one URLData option and Transmission none; five
255-byte URLData options already exceed MAX_URL_DATA. Without this cap an 8 KiB
datagram of NOPs, checked before its connection id, would cost ~100 times the
work of a normal announce (docs/PROTOCOL.md §11.5: bounded work per packet)."""

MAX_ERROR_MESSAGE_BYTES = 64
"""docs/PROTOCOL.md §9: keep error messages short, so an error reply is at most 72 bytes."""

_I32_MAX = 2**31 - 1
_PROTOCOL_ID_BYTES = PROTOCOL_ID.to_bytes(8, "big")

# Requests (docs/PROTOCOL.md §2, §3, §5.1, §8). Connection ids and transaction ids stay
# raw bytes: the tracker only compares and echoes them.
_ACTION = struct.Struct("!I")  # at offset 8 of every request
_REQUEST_HEADER = struct.Struct("!8sI4s")  # connection_id, action, transaction_id
_ANNOUNCE = struct.Struct("!8sI4s20s20sqqqI4sIiH")  # the 98 fixed bytes
_SCRAPE_HASHES_OFFSET = _REQUEST_HEADER.size
_INFO_HASH_SIZE = 20

# Responses (docs/PROTOCOL.md §3, §7.1, §8, §9).
_RESPONSE_HEADER = struct.Struct("!I4s")  # action, transaction_id
_CONNECT_RESPONSE = struct.Struct("!I4s8s")
_ANNOUNCE_RESPONSE_HEADER = struct.Struct("!I4siii")  # ..., interval, leechers, seeders
_SCRAPE_ENTRY = struct.Struct("!iii")  # seeders, completed, leechers


class ConnectRequest(NamedTuple):
    """Action 0 with the protocol magic: always answered (the reply is 16 bytes, like it)."""

    transaction_id: bytes


class AnnounceRequest(NamedTuple):
    """Action 1, at least 98 bytes, port not 0. Fields in BEP 15 byte order.

    ``event`` is normalised: 4 (libtorrent's "paused") and unknown values become
    EVENT_NONE (docs/PROTOCOL.md §5.3). ``ip`` is the raw field, which the tracker
    ignores (§5.4). ``url_data`` is the concatenated BEP 41 URLData, ``b""`` when
    there is none (§5.5).
    """

    connection_id: bytes
    transaction_id: bytes
    info_hash: bytes
    peer_id: bytes
    downloaded: int
    left: int
    uploaded: int
    event: int
    ip: bytes
    key: int
    num_want: int
    port: int
    url_data: bytes


class ScrapeRequest(NamedTuple):
    """Action 2 with at least one complete info hash; at most ``max_scrape_hashes``."""

    connection_id: bytes
    transaction_id: bytes
    info_hashes: tuple[bytes, ...]


class InvalidRequest(NamedTuple):
    """A request answered with an error reply if, and only if, its connection id is valid.

    An error reply to an unverified source would let anybody reflect traffic at a
    victim (docs/PROTOCOL.md §2 rationale, §9), so the caller checks the id first.
    """

    connection_id: bytes
    transaction_id: bytes
    message: str


Request = ConnectRequest | AnnounceRequest | ScrapeRequest | InvalidRequest


def parse_request(data: bytes, max_scrape_hashes: int = MAX_SCRAPE_HASHES) -> Request | None:
    """Read one client datagram; ``None`` means drop it silently. Never raises.

    Implements the dispatch table of docs/PROTOCOL.md §2 except R1 (source port 0) and
    R6 (connection id validity), which need the source address. ``max_scrape_hashes``
    must be positive.
    """
    if len(data) < _REQUEST_HEADER.size:  # R2
        return None
    (action,) = _ACTION.unpack_from(data, 8)
    reader = _READERS.get(action)
    if reader is None:  # R3: unknown actions, error (3) and legacy IPv6 announce (4)
        return None
    return reader(data, max_scrape_hashes)


def _read_connect(data: bytes, max_scrape_hashes: int) -> ConnectRequest | None:
    connection_id, _action, transaction_id = _REQUEST_HEADER.unpack_from(data)
    if connection_id != _PROTOCOL_ID_BYTES:  # R4
        return None
    return ConnectRequest(transaction_id)  # R5; bytes after 16 are ignored (§3)


def _read_announce(data: bytes, max_scrape_hashes: int) -> AnnounceRequest | InvalidRequest | None:
    if len(data) < ANNOUNCE_REQUEST_MIN_SIZE:  # R7
        return None
    (
        connection_id,
        _action,
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
    ) = _ANNOUNCE.unpack_from(data)
    if port == 0:  # R8
        return InvalidRequest(connection_id, transaction_id, "invalid port")
    return AnnounceRequest(  # R9
        connection_id,
        transaction_id,
        info_hash,
        peer_id,
        downloaded,
        left,
        uploaded,
        event if event <= EVENT_STOPPED else EVENT_NONE,
        ip,
        key,
        num_want,
        port,
        _read_url_data(data) if len(data) > ANNOUNCE_REQUEST_MIN_SIZE else b"",
    )


def _read_url_data(data: bytes) -> bytes:
    """Concatenate the BEP 41 URLData options after the fixed announce, leniently.

    docs/PROTOCOL.md §5.5: 0x00 ends the options; 0x01 is a one-byte NOP; every other
    type has a length byte and is skipped unless it is 0x02 (URLData), because BEP 41
    gives all future options a length exactly so that old parsers can skip them.
    A truncated last option ends parsing without failing the announce (chihaya
    answers "malformed packet" instead; libtorrent never sends one).
    """
    offset = ANNOUNCE_REQUEST_MIN_SIZE
    end = len(data)
    # Common case first: libtorrent's one URLData option, which ends the datagram.
    if data[offset] == 0x02 and end > offset + 1 and end == offset + 2 + data[offset + 1]:
        return bytes(data[offset + 2 :])
    pieces: list[bytes] = []
    collected = 0
    for _ in range(MAX_ANNOUNCE_OPTIONS):
        if offset >= end:
            break
        option = data[offset]
        if option == 0x00:
            break
        if option == 0x01:
            offset += 1
            continue
        if offset + 1 >= end:  # type byte without its length byte
            break
        start = offset + 2
        offset = start + data[offset + 1]
        if offset > end:  # length runs past the datagram
            break
        if option == 0x02:
            pieces.append(data[start:offset])
            collected += offset - start
            if collected >= MAX_URL_DATA:
                break
    return b"".join(pieces)[:MAX_URL_DATA]


def _read_scrape(data: bytes, max_scrape_hashes: int) -> ScrapeRequest | InvalidRequest:
    connection_id, _action, transaction_id = _REQUEST_HEADER.unpack_from(data)
    # §8: a trailing partial hash is ignored; hashes beyond the cap get no entry.
    count = min((len(data) - _SCRAPE_HASHES_OFFSET) // _INFO_HASH_SIZE, max_scrape_hashes)
    if count <= 0:  # R10: UDP has no full scrape
        return InvalidRequest(connection_id, transaction_id, "no info hashes")
    return ScrapeRequest(  # R11
        connection_id,
        transaction_id,
        tuple(
            data[offset : offset + _INFO_HASH_SIZE]
            for offset in range(
                _SCRAPE_HASHES_OFFSET,
                _SCRAPE_HASHES_OFFSET + count * _INFO_HASH_SIZE,
                _INFO_HASH_SIZE,
            )
        ),
    )


_READERS: dict[int, Callable[[bytes, int], Request | None]] = {
    ACTION_CONNECT: _read_connect,
    ACTION_ANNOUNCE: _read_announce,
    ACTION_SCRAPE: _read_scrape,
}

_KNOWN_ACTIONS = frozenset(_ACTION.pack(action) for action in _READERS)


def may_be_request(data: bytes) -> bool:
    """False for a datagram ``parse_request`` would certainly drop (R2, R3), found cheaply.

    The UDP edge asks this before queueing a datagram: a flood of garbage then
    costs a slice and a set lookup each instead of a trip through the receive
    queue and the parser, so it takes a far larger flood to fill the socket's
    buffer and crowd out real requests.
    """
    return len(data) >= _REQUEST_HEADER.size and data[8:12] in _KNOWN_ACTIONS


def build_connect_response(transaction_id: bytes, connection_id: bytes) -> bytes:
    """The 16-byte connect reply (docs/PROTOCOL.md §3); Transmission accepts no other size."""
    return _CONNECT_RESPONSE.pack(ACTION_CONNECT, transaction_id, connection_id)


def build_announce_response(
    transaction_id: bytes, interval: int, leechers: int, seeders: int, peers: bytes
) -> bytes:
    """The announce reply (docs/PROTOCOL.md §7.1): note leechers come before seeders.

    ``peers`` is the concatenation of compact entries, all 6 bytes (IPv4 client) or
    all 18 bytes (IPv6 client). Interval and counts saturate at 2**31 - 1.
    """
    return (
        _ANNOUNCE_RESPONSE_HEADER.pack(
            ACTION_ANNOUNCE,
            transaction_id,
            min(interval, _I32_MAX),
            min(leechers, _I32_MAX),
            min(seeders, _I32_MAX),
        )
        + peers
    )


def build_scrape_response(transaction_id: bytes, entries: Iterable[tuple[int, int, int]]) -> bytes:
    """The scrape reply (docs/PROTOCOL.md §8): one (seeders, completed, leechers) per hash.

    Seeders come first here, unlike the announce reply. Values saturate at 2**31 - 1.
    """
    return _RESPONSE_HEADER.pack(ACTION_SCRAPE, transaction_id) + b"".join(
        [
            _SCRAPE_ENTRY.pack(
                min(seeders, _I32_MAX), min(completed, _I32_MAX), min(leechers, _I32_MAX)
            )
            for seeders, completed, leechers in entries
        ]
    )


def build_error_response(transaction_id: bytes, message: str) -> bytes:
    """The error reply (docs/PROTOCOL.md §9): UTF-8 text without a terminating NUL.

    Transmission shows every byte after the header, so a NUL would appear as part of
    the text (opentracker and chihaya append one). The text is cut to
    MAX_ERROR_MESSAGE_BYTES on a character boundary.
    """
    text = message.encode("utf-8")
    if len(text) > MAX_ERROR_MESSAGE_BYTES:
        text = text[:MAX_ERROR_MESSAGE_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return _RESPONSE_HEADER.pack(ACTION_ERROR, transaction_id) + text


# The reference stays importable under these names; with the compiled core selected
# (udpt/core.py), the public names are its drop-ins (docs/DESIGN.md §11).
parse_request_py = parse_request
may_be_request_py = may_be_request
build_connect_response_py = build_connect_response
build_announce_response_py = build_announce_response
build_scrape_response_py = build_scrape_response
build_error_response_py = build_error_response

if COMPILED:
    from udpt import _core

    _core.bind_wire(
        ConnectRequest,
        AnnounceRequest,
        ScrapeRequest,
        InvalidRequest,
        parse_request_py,
        may_be_request_py,
        build_connect_response_py,
        build_announce_response_py,
        build_scrape_response_py,
        build_error_response_py,
    )
    parse_request = _core.parse_request
    may_be_request = _core.may_be_request
    build_connect_response = _core.build_connect_response
    build_announce_response = _core.build_announce_response
    build_scrape_response = _core.build_scrape_response
    build_error_response = _core.build_error_response
