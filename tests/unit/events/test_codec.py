"""The binary codec: every event survives a round trip; anything else is a DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import (
    ACTOR_EXTREMES,
    EVENT_STRATEGIES,
    I64_MAX,
    I64_MIN,
    U32_MAX,
    U64_MAX,
    events,
)
from udpt.events.codec import RECORD_TAGS, DecodeError, decode_event, encode_event
from udpt.events.types import (
    EVENT_TYPES,
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

IH = bytes(range(20))
PEER_ID = b"-qB4630-abcdefghijkl"
IP4 = bytes([192, 0, 2, 1])
IP6 = bytes.fromhex("20010db8000000000000000000000001")
ADMIN_KINDS = (TorrentAdded, TorrentFlagged, TorrentUnflagged, TorrentDropped)

EXTREMES: list[Event] = [
    AnnounceAccepted(
        I64_MIN, IH, IP4, 0, PEER_ID, U32_MAX, AnnounceEvent.STOPPED, I64_MIN, I64_MAX, 0
    ),
    AnnounceAccepted(
        I64_MAX, IH, IP6, 65535, PEER_ID, 0, AnnounceEvent.COMPLETED, I64_MAX, I64_MIN, -1
    ),
    AnnounceAccepted(
        0, bytes(20), bytes(4), 65535, bytes(20), U32_MAX, AnnounceEvent.NONE, 0, 0, I64_MAX
    ),
    AnnounceAccepted(
        -1, b"\xff" * 20, b"\xff" * 16, 0, b"\xff" * 20, 0, AnnounceEvent.STARTED, -1, 1, I64_MIN
    ),
    AnnounceAccepted(
        I64_MAX, IH, IP4, 65535, PEER_ID, U32_MAX, AnnounceEvent.NONE, U32_MAX, 0, U32_MAX
    ),
    AnnounceAccepted(I64_MIN, IH, IP6, 0, PEER_ID, 0, AnnounceEvent.STOPPED, 0, U32_MAX, 0),
    AnnounceRefused(I64_MIN, IH, IP4, 0, PEER_ID, RefusalReason.NOT_REGISTERED),
    AnnounceRefused(I64_MAX, IH, IP6, 65535, PEER_ID, RefusalReason.FLAGGED),
    *(
        kind(at_ms, IH, actor)
        for kind in ADMIN_KINDS
        for at_ms, actor in zip((I64_MIN, I64_MAX, 0, -1, 1), ACTOR_EXTREMES, strict=True)
    ),
    TorrentImported(I64_MIN, IH, True, U64_MAX, ACTOR_EXTREMES[1]),
    TorrentImported(I64_MAX, IH, False, 0, ""),
    PeersExpired(I64_MIN, I64_MAX, 0),
    PeersExpired(I64_MAX, I64_MIN, I64_MAX),
]


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENT_STRATEGIES) == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda kind: kind.__name__)
@settings(max_examples=60)
@given(data=st.data())
def test_every_event_type_survives_a_round_trip(kind: type, data: st.DataObject) -> None:
    event = data.draw(EVENT_STRATEGIES[kind])
    decoded = decode_event(encode_event(event))
    assert type(decoded) is kind
    assert decoded == event


@pytest.mark.parametrize("event", EXTREMES, ids=lambda e: type(e).__name__)
def test_extreme_values_survive_a_round_trip(event: Event) -> None:
    decoded = decode_event(encode_event(event))
    assert type(decoded) is type(event)
    assert decoded == event


def test_kinds_with_the_same_fields_never_compare_equal() -> None:
    added, flagged = TorrentAdded(1, IH, "admin"), TorrentFlagged(1, IH, "admin")
    assert added != flagged
    assert len({added, flagged}) == 2


@pytest.mark.parametrize(("ip", "size"), [(IP4, 72), (IP6, 84)], ids=["ipv4", "ipv6"])
def test_an_announce_costs_well_under_100_bytes(ip: bytes, size: int) -> None:
    """Counters up to 2**32 - 1 (4 GiB) are the common case; others cost 12 bytes more."""
    typical = AnnounceAccepted(
        1_700_000_000_000, IH, ip, 6881, PEER_ID, 0x1234ABCD, AnnounceEvent.STARTED, 0, 0, 700 << 20
    )
    assert len(encode_event(typical)) == size
    assert len(encode_event(typical._replace(uploaded=U32_MAX, left=U32_MAX))) == size
    assert len(encode_event(typical._replace(left=1 << 32))) == size + 12
    assert len(encode_event(typical._replace(left=-1))) == size + 12


@pytest.mark.parametrize(
    "event",
    [
        AnnounceAccepted(1 << 63, IH, IP4, 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, 65536, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, -1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID, 1 << 32, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID, -1, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID, 0, AnnounceEvent.NONE, 1 << 63, 0, 0),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, I64_MIN - 1),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID, 0, 4, 0, 0, 0),  # type: ignore[arg-type]
        AnnounceAccepted(1, IH, b"\x01" * 5, 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, b"", 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH[:19], IP4, 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH + b"!", IP4, 1, PEER_ID, 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceAccepted(1, IH, IP4, 1, PEER_ID + b"!", 0, AnnounceEvent.NONE, 0, 0, 0),
        AnnounceRefused(1, IH, b"\x01" * 6, 1, PEER_ID, RefusalReason.FLAGGED),
        AnnounceRefused(1, IH, IP4, 1, PEER_ID, max(RefusalReason) + 1),  # type: ignore[arg-type]
        AnnounceRefused(1, IH[:10], IP4, 1, PEER_ID, RefusalReason.FLAGGED),
        TorrentAdded(1, IH, "a" * 256),
        TorrentFlagged(1, IH, "é" * 128),
        TorrentDropped(1 << 63, IH, "admin"),
        TorrentUnflagged(1, IH[:19], "admin"),
        TorrentImported(1, IH, False, -1, "import"),
        TorrentImported(1, IH, False, U64_MAX + 1, "import"),
        TorrentImported(1, IH, False, 0, "€" * 86),
        PeersExpired(1, 1 << 63, 0),
        PeersExpired(I64_MIN - 1, 0, 0),
    ],
    ids=repr,
)
def test_values_a_record_cannot_hold_are_refused_when_encoding(event: Event) -> None:
    """Never pad, cut or wrap: a record that does not say what happened must not be written."""
    with pytest.raises(ValueError):
        encode_event(event)


def test_something_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_event((1, IH, "admin"))  # type: ignore[arg-type]


KNOWN_TAGS = RECORD_TAGS


def test_the_extreme_values_cover_every_record_layout() -> None:
    assert {encode_event(event)[0] for event in EXTREMES} == KNOWN_TAGS


def test_an_empty_record_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_event(b"")


def test_every_unknown_tag_is_a_decode_error() -> None:
    for tag in sorted(set(range(256)) - KNOWN_TAGS):
        with pytest.raises(DecodeError, match="unknown"):
            decode_event(bytes([tag]) + bytes(100))


@pytest.mark.parametrize("event", EXTREMES, ids=lambda e: type(e).__name__)
def test_every_truncation_or_extension_of_a_record_is_a_decode_error(event: Event) -> None:
    record = encode_event(event)
    for end in range(1, len(record)):
        with pytest.raises(DecodeError):
            decode_event(record[:end])
    for extra in (b"\x00", b"\x01", b"\x80", b"\xff\x00", bytes(16)):
        with pytest.raises(DecodeError):
            decode_event(record + extra)


def _announce_v4() -> bytes:
    return encode_event(AnnounceAccepted(5, IH, IP4, 6881, PEER_ID, 9, AnnounceEvent.NONE, 0, 0, 0))


def _with_byte(record: bytes, index: int, value: int) -> bytes:
    return record[:index] + bytes([value]) + record[index + 1 :]


REFUSED_V4 = encode_event(AnnounceRefused(5, IH, IP4, 6881, PEER_ID, RefusalReason.FLAGGED))


@pytest.mark.parametrize(
    "record",
    [
        _with_byte(_announce_v4(), 59, 4),  # announce event 4 was normalised away before writing
        _with_byte(_announce_v4(), 59, 0xFF),
        _with_byte(REFUSED_V4, 9, 5),  # refused: address length 5
        _with_byte(REFUSED_V4, -5, 0),  # refused: reason 0
        _with_byte(REFUSED_V4, -5, max(RefusalReason) + 1),  # refused: unknown reason
        encode_event(TorrentAdded(1, IH, "ab"))[:-2] + b"\xc3\x28",  # actor not UTF-8
        encode_event(TorrentImported(1, IH, True, 1, "é"))[:-1],  # actor shorter than its length
    ],
    ids=[
        "event-4",
        "event-255",
        "refused-ip-length",
        "refused-reason-0",
        "refused-reason-unknown",
        "actor-not-utf8",
        "actor-short",
    ],
)
def test_damaged_fields_are_decode_errors(record: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(record)


def _decode_or_refuse(data: bytes) -> None:
    """Only two outcomes are allowed: a DecodeError, or an event that can be written again."""
    try:
        event = decode_event(data)
    except DecodeError:
        return
    assert decode_event(encode_event(event)) == event


@settings(max_examples=150)
@given(st.binary(max_size=120))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decode_or_refuse(data)


@settings(max_examples=150)
@given(st.sampled_from(sorted(KNOWN_TAGS)), st.binary(max_size=120))
def test_random_bodies_after_a_known_tag_decode_or_raise_decode_error(
    tag: int, body: bytes
) -> None:
    _decode_or_refuse(bytes([tag]) + body)


@settings(max_examples=150)
@given(events(), st.integers(0, 1 << 16), st.integers(0, 255), st.integers(0, 1 << 16))
def test_damaged_records_decode_or_raise_decode_error(
    event: Event, where: int, value: int, cut: int
) -> None:
    record = encode_event(event)
    damaged = _with_byte(record, where % len(record), value)
    _decode_or_refuse(damaged)
    _decode_or_refuse(damaged[: cut % (len(record) + 1)])


@settings(max_examples=50)
@given(events())
def test_records_read_from_buffers_decode_alike(event: Event) -> None:
    """LMDB may hand out memoryviews or bytearrays instead of bytes."""
    record = encode_event(event)
    assert decode_event(memoryview(record)) == event
    assert decode_event(bytearray(record)) == event
