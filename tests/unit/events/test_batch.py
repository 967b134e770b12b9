"""The batch codec: round trips for any events, both hash modes, and damage detection."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import accepted_announces, events, tracker_histories
from udpt.events.batch import batch_count, batch_last_ms, decode_batch, encode_batch
from udpt.events.codec import DecodeError
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event, TorrentAdded

batches = st.lists(events(), min_size=1, max_size=30)


def round_trip_with_dictionary(batch: list[Event]) -> list[Event]:
    numbers: dict[bytes, int] = {}
    value = encode_batch(batch, lambda h: numbers.setdefault(h, len(numbers)))
    return decode_batch(value, list(numbers))


@given(batches)
def test_any_batch_round_trips_standing_alone(batch: list[Event]) -> None:
    value = encode_batch(batch)
    decoded = decode_batch(value)
    assert decoded == batch
    assert [type(e) for e in decoded] == [type(e) for e in batch]
    assert (batch_count(value), batch_last_ms(value)) == (len(batch), batch[-1].at_ms)


@given(batches)
def test_any_batch_round_trips_with_the_hash_dictionary(batch: list[Event]) -> None:
    assert round_trip_with_dictionary(batch) == batch


@given(tracker_histories())
def test_realistic_histories_round_trip(history: list[Event]) -> None:
    if history:
        assert decode_batch(encode_batch(history)) == history
        assert round_trip_with_dictionary(history) == history


@given(st.lists(accepted_announces(), min_size=1, max_size=20))
def test_decoded_announce_events_are_enum_members(batch: list[AnnounceAccepted]) -> None:
    for event in decode_batch(encode_batch(batch)):
        assert type(event.event) is AnnounceEvent


def announce(n: int, info_hash: bytes = b"\x01" * 20) -> AnnounceAccepted:
    return AnnounceAccepted(
        1_700_000_000_000 + n,
        info_hash,
        bytes((10, 0, n >> 8 & 255, n & 255)),
        6881,
        b"-qB4630-" + b"%012d" % n,
        n,
        AnnounceEvent.NONE,
        n * 16384,
        0,
        1 << 20,
    )


def test_a_realistic_batch_costs_a_fraction_of_the_per_event_records() -> None:
    batch = [announce(n, bytes([n % 7]) * 20) for n in range(300)]
    numbers: dict[bytes, int] = {}
    value = encode_batch(batch, lambda h: numbers.setdefault(h, len(numbers)))
    assert len(value) / len(batch) < 20  # 72 bytes each as records


def test_events_the_record_layout_cannot_hold_are_refused() -> None:
    good = announce(1)
    for bad in (
        good._replace(info_hash=b"short"),
        good._replace(ip=b"\x01\x02\x03"),
        good._replace(port=65536),
        good._replace(key=-1),
        good._replace(uploaded=1 << 63),
        good._replace(at_ms=1 << 63),
    ):
        with pytest.raises(ValueError):
            encode_batch([good, bad])
    with pytest.raises(ValueError):
        encode_batch([])


def test_a_damaged_batch_is_a_decode_error_never_another_exception() -> None:
    value = encode_batch([announce(n) for n in range(50)] + [TorrentAdded(5, bytes(20), "a")])
    body = zlib.decompress(value[13:])
    damaged = [
        value[:5],
        value[:-3],
        value[:13] + b"not zlib",
        value[:13] + zlib.compress(body[:-1]),
        value[:13] + zlib.compress(body + b"\x00"),
        b"\xb0" + value[1:13] + body[:40],
    ]
    for bad in damaged:
        with pytest.raises(DecodeError):
            decode_batch(bad)


def test_a_batch_referring_to_an_unknown_hash_number_is_a_decode_error() -> None:
    value = encode_batch([announce(1)], lambda h: 5)
    with pytest.raises(DecodeError, match="info hash"):
        decode_batch(value, [bytes(20)])


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    for value in (data, b"\xb0" + data, b"\xb1" + data[:12] + zlib.compress(data)):
        with contextlib.suppress(DecodeError):
            decode_batch(value)
