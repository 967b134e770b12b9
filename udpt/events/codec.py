"""Events to record bytes and back: one type byte, then ``struct`` fields.

Each record starts with a *tag* byte naming the event type and its layout
version. A written layout is never changed: a new layout gets a new tag and
the old tag stays decodable forever (``tests/data`` holds golden records).

Announces dominate the log, and replay speed rests on decoding them, so their
layouts are fixed-width: one ``struct`` call each way. ``uploaded``,
``downloaded`` and ``left`` are almost always between 0 and 2**32 - 1; those
announces use the narrow layout (72 bytes for IPv4, 84 for IPv6), the others
the wide one with 64-bit counters. (Varints saved 8 bytes an announce but made
decoding three times slower.)
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from udpt.core import COMPILED
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)

__all__ = ["RECORD_TAGS", "DecodeError", "decode_event", "encode_event"]


class DecodeError(ValueError):
    """A record that today's code cannot read: unknown tag, or bytes that do not fit its layout."""


TAG_ANNOUNCE_V4 = 0x01
TAG_ANNOUNCE_V6 = 0x02
TAG_REFUSED = 0x03
TAG_ANNOUNCE_V4_WIDE = 0x04
TAG_ANNOUNCE_V6_WIDE = 0x05
TAG_ADDED = 0x10
TAG_FLAGGED = 0x11
TAG_UNFLAGGED = 0x12
TAG_DROPPED = 0x13
TAG_IMPORTED = 0x14
TAG_EXPIRED = 0x20

_ANNOUNCE_V4 = struct.Struct("!Bq20s4sH20sIBIII")
_ANNOUNCE_V6 = struct.Struct("!Bq20s16sH20sIBIII")
_ANNOUNCE_V4_WIDE = struct.Struct("!Bq20s4sH20sIBqqq")
_ANNOUNCE_V6_WIDE = struct.Struct("!Bq20s16sH20sIBqqq")
_NARROW = 1 << 32
_REFUSED = struct.Struct("!BqB20sH20sB")
_ADMIN = struct.Struct("!Bq20sB")
_IMPORTED = struct.Struct("!Bq20s?QB")
_EXPIRED = struct.Struct("!Bqqq")

_ANNOUNCE_LAYOUTS = {  # (is IPv4, counters fit in 32 bits) -> (layout, tag)
    (True, True): (_ANNOUNCE_V4, TAG_ANNOUNCE_V4),
    (False, True): (_ANNOUNCE_V6, TAG_ANNOUNCE_V6),
    (True, False): (_ANNOUNCE_V4_WIDE, TAG_ANNOUNCE_V4_WIDE),
    (False, False): (_ANNOUNCE_V6_WIDE, TAG_ANNOUNCE_V6_WIDE),
}

_ADMIN_TYPES: dict[type, int] = {
    TorrentAdded: TAG_ADDED,
    TorrentFlagged: TAG_FLAGGED,
    TorrentUnflagged: TAG_UNFLAGGED,
    TorrentDropped: TAG_DROPPED,
}


def _actor_bytes(actor: str) -> bytes:
    raw = actor.encode("utf-8")
    if len(raw) > 255:
        raise ValueError("actor label longer than 255 bytes")
    return raw


def _read_actor(data: bytes, offset: int, length: int) -> str:
    if len(data) != offset + length:
        raise DecodeError("actor length does not match the record")
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("actor is not UTF-8") from exc


def encode_event(event: Event) -> bytes:
    """The record bytes of ``event``; raises ValueError for values its layout cannot hold."""
    try:
        return _encode(event)
    except struct.error as exc:
        raise ValueError(f"{type(event).__name__}: {exc}") from exc


def _check_sizes(info_hash: bytes, peer_id: bytes = bytes(20)) -> None:
    """``struct`` would pad or cut a wrong-sized hash or peer id without a word."""
    if len(info_hash) != 20 or len(peer_id) != 20:
        raise ValueError("info_hash and peer_id must be 20 bytes")


def _encode(event: Event) -> bytes:
    if isinstance(event, AnnounceAccepted):
        _check_sizes(event.info_hash, event.peer_id)
        if not 0 <= event.event <= 3:
            raise ValueError(f"announce event {event.event} is not 0..3")
        if len(event.ip) not in (4, 16):
            raise ValueError("ip must be 4 or 16 bytes")
        narrow = (
            0 <= event.uploaded < _NARROW
            and 0 <= event.downloaded < _NARROW
            and 0 <= event.left < _NARROW
        )
        layout, tag = _ANNOUNCE_LAYOUTS[len(event.ip) == 4, narrow]
        return layout.pack(
            tag,
            event.at_ms,
            event.info_hash,
            event.ip,
            event.port,
            event.peer_id,
            event.key,
            event.event,
            event.uploaded,
            event.downloaded,
            event.left,
        )
    if isinstance(event, AnnounceRefused):
        _check_sizes(event.info_hash, event.peer_id)
        if len(event.ip) not in (4, 16):
            raise ValueError("ip must be 4 or 16 bytes")
        return (
            _REFUSED.pack(
                TAG_REFUSED,
                event.at_ms,
                len(event.ip),
                event.info_hash,
                event.port,
                event.peer_id,
                RefusalReason(event.reason),
            )
            + event.ip
        )
    if isinstance(event, TorrentAdded | TorrentFlagged | TorrentUnflagged | TorrentDropped):
        _check_sizes(event.info_hash)
        actor = _actor_bytes(event.actor)
        tag = _ADMIN_TYPES[type(event)]
        return _ADMIN.pack(tag, event.at_ms, event.info_hash, len(actor)) + actor
    if isinstance(event, TorrentImported):
        _check_sizes(event.info_hash)
        actor = _actor_bytes(event.actor)
        return (
            _IMPORTED.pack(
                TAG_IMPORTED,
                event.at_ms,
                event.info_hash,
                event.is_flagged,
                event.completed,
                len(actor),
            )
            + actor
        )
    if isinstance(event, PeersExpired):
        return _EXPIRED.pack(
            TAG_EXPIRED, event.at_ms, event.peer_cutoff_ms, event.torrent_cutoff_ms
        )
    raise ValueError(f"not an event: {event!r}")


def _check_length(data: bytes, layout: struct.Struct, name: str) -> None:
    if len(data) < layout.size:
        raise DecodeError(f"{name} record is {len(data)} bytes, needs at least {layout.size}")


_ANNOUNCE_EVENTS = tuple(AnnounceEvent)
_new = tuple.__new__


def _announce_decoder(layout: struct.Struct) -> Callable[[bytes], Event]:
    size = layout.size
    unpack = layout.unpack

    def decode(data: bytes) -> Event:
        """Replay speed rests on this function: keep it free of per-call extras."""
        if len(data) != size:
            raise DecodeError(f"announce record is {len(data)} bytes, expected {size}")
        _, at_ms, info_hash, ip, port, peer_id, key, event, uploaded, downloaded, left = unpack(
            data
        )
        if event > 3:
            raise DecodeError(f"announce event {event} is not 0..3")
        return _new(
            AnnounceAccepted,
            (
                at_ms,
                info_hash,
                ip,
                port,
                peer_id,
                key,
                _ANNOUNCE_EVENTS[event],
                uploaded,
                downloaded,
                left,
            ),
        )

    return decode


def _decode_refused(data: bytes) -> AnnounceRefused:
    _check_length(data, _REFUSED, "refused announce")
    _, at_ms, ip_len, info_hash, port, peer_id, reason = _REFUSED.unpack_from(data)
    if ip_len not in (4, 16) or len(data) != _REFUSED.size + ip_len:
        raise DecodeError("refused announce has a bad address length")
    try:
        why = RefusalReason(reason)
    except ValueError as exc:
        raise DecodeError(f"unknown refusal reason {reason}") from exc
    return AnnounceRefused(at_ms, info_hash, data[_REFUSED.size :], port, peer_id, why)


def _admin_decoder(kind: type) -> Callable[[bytes], Event]:
    def decode(data: bytes) -> Event:
        _check_length(data, _ADMIN, kind.__name__)
        _, at_ms, info_hash, actor_len = _ADMIN.unpack_from(data)
        event: Event = kind(at_ms, info_hash, _read_actor(data, _ADMIN.size, actor_len))
        return event

    return decode


def _decode_imported(data: bytes) -> TorrentImported:
    _check_length(data, _IMPORTED, "import")
    _, at_ms, info_hash, flagged, completed, actor_len = _IMPORTED.unpack_from(data)
    return TorrentImported(
        at_ms, info_hash, flagged, completed, _read_actor(data, _IMPORTED.size, actor_len)
    )


def _decode_expired(data: bytes) -> PeersExpired:
    if len(data) != _EXPIRED.size:
        raise DecodeError(f"expiry record is {len(data)} bytes, expected {_EXPIRED.size}")
    _, at_ms, peer_cutoff, torrent_cutoff = _EXPIRED.unpack(data)
    return PeersExpired(at_ms, peer_cutoff, torrent_cutoff)


_DECODERS: dict[int, Callable[[bytes], Event]] = {
    TAG_ANNOUNCE_V4: _announce_decoder(_ANNOUNCE_V4),
    TAG_ANNOUNCE_V6: _announce_decoder(_ANNOUNCE_V6),
    TAG_ANNOUNCE_V4_WIDE: _announce_decoder(_ANNOUNCE_V4_WIDE),
    TAG_ANNOUNCE_V6_WIDE: _announce_decoder(_ANNOUNCE_V6_WIDE),
    TAG_REFUSED: _decode_refused,
    TAG_ADDED: _admin_decoder(TorrentAdded),
    TAG_FLAGGED: _admin_decoder(TorrentFlagged),
    TAG_UNFLAGGED: _admin_decoder(TorrentUnflagged),
    TAG_DROPPED: _admin_decoder(TorrentDropped),
    TAG_IMPORTED: _decode_imported,
    TAG_EXPIRED: _decode_expired,
}


def decode_event(data: bytes) -> Event:
    """The event stored in ``data``; raises DecodeError for anything it cannot read."""
    if not data:
        raise DecodeError("empty record")
    decoder = _DECODERS.get(data[0])
    if decoder is None:
        raise DecodeError(f"unknown record type 0x{data[0]:02x}")
    return decoder(data if type(data) is bytes else bytes(data))


RECORD_TAGS = frozenset(_DECODERS)
"""Every tag this version reads; any other first byte is a DecodeError."""


# The reference stays importable under these names; with the compiled core selected
# (udpt/core.py), the public names are its drop-ins (docs/DESIGN.md §11).
encode_event_py = encode_event
decode_event_py = decode_event

if COMPILED:
    from udpt import _core

    _core.bind_codec(
        AnnounceAccepted, _ANNOUNCE_EVENTS, DecodeError, encode_event_py, decode_event_py
    )
    encode_event = _core.encode_event
    decode_event = _core.decode_event
