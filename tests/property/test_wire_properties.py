"""Property tests for udpt.wire: round trips per message and never-raises sweeps.

Requests are built and responses read with tests.support.bep15, an independent
struct-based client codec. docs/PROTOCOL.md §1.9 and §11.7: parsing must never raise,
and random data must never parse as anything but a valid connect (A11).
"""

from __future__ import annotations

import random
import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import bep15
from udpt.wire import (
    MAX_SCRAPE_HASHES,
    MAX_URL_DATA,
    PROTOCOL_ID,
    AnnounceRequest,
    ConnectRequest,
    InvalidRequest,
    ScrapeRequest,
    build_announce_response,
    build_connect_response,
    build_error_response,
    build_scrape_response,
    may_be_request,
    parse_request,
)

EXAMPLES = settings(max_examples=200, deadline=None)
MAGIC = PROTOCOL_ID.to_bytes(8, "big")
REQUEST_TYPES = (ConnectRequest, AnnounceRequest, ScrapeRequest, InvalidRequest)

four_bytes = st.binary(min_size=4, max_size=4)
eight_bytes = st.binary(min_size=8, max_size=8)
twenty_bytes = st.binary(min_size=20, max_size=20)
i64 = st.integers(-(2**63), 2**63 - 1)
u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
count = st.integers(0, 2**31 - 1)
url_pieces = st.lists(st.binary(max_size=255), max_size=6)


def is_valid_connect(data: bytes) -> bool:
    return len(data) >= 16 and data[:8] == MAGIC and data[8:12] == bytes(4)


# Round trips: requests ----------------------------------------------------------------


@EXAMPLES
@given(tid=four_bytes, extra=st.binary(max_size=64))
def test_connect_round_trip(tid: bytes, extra: bytes) -> None:
    assert parse_request(bep15.connect_request(tid) + extra) == ConnectRequest(tid)


@EXAMPLES
@given(
    cid=eight_bytes,
    tid=four_bytes,
    info_hash=twenty_bytes,
    peer_id=twenty_bytes,
    downloaded=i64,
    left=i64,
    uploaded=i64,
    event=u32,
    ip=four_bytes,
    key=u32,
    num_want=i32,
    port=st.integers(1, 65535),
    pieces=url_pieces,
    end_of_options=st.booleans(),
    after_end=st.binary(max_size=32),
)
def test_announce_round_trip(
    cid: bytes,
    tid: bytes,
    info_hash: bytes,
    peer_id: bytes,
    downloaded: int,
    left: int,
    uploaded: int,
    event: int,
    ip: bytes,
    key: int,
    num_want: int,
    port: int,
    pieces: list[bytes],
    end_of_options: bool,
    after_end: bytes,
) -> None:
    options = b"".join(bep15.url_data_option(piece) for piece in pieces)
    if end_of_options:
        options += b"\x00" + after_end
    datagram = bep15.announce_request(
        cid, tid, info_hash, peer_id, downloaded, left, uploaded, event, ip, key, num_want, port,
        options,
    )  # fmt: skip
    assert parse_request(datagram) == AnnounceRequest(
        cid, tid, info_hash, peer_id, downloaded, left, uploaded,
        event if event <= 3 else 0,
        ip, key, num_want, port,
        b"".join(pieces)[:MAX_URL_DATA],
    )  # fmt: skip


@EXAMPLES
@given(cid=eight_bytes, tid=four_bytes, options=st.binary(max_size=600))
def test_announce_with_any_options_keeps_its_fixed_fields(
    cid: bytes, tid: bytes, options: bytes
) -> None:
    datagram = bep15.announce_request(cid, tid, bytes(20), bytes(20), options=options)
    request = parse_request(datagram)
    assert isinstance(request, AnnounceRequest)
    assert (request.connection_id, request.transaction_id, request.port) == (cid, tid, 6881)
    assert len(request.url_data) <= MAX_URL_DATA


@EXAMPLES
@given(
    cid=eight_bytes,
    tid=four_bytes,
    hashes=st.lists(twenty_bytes, min_size=1, max_size=100),
    tail=st.binary(max_size=19),
    cap=st.integers(1, 100),
)
def test_scrape_round_trip(
    cid: bytes, tid: bytes, hashes: list[bytes], tail: bytes, cap: int
) -> None:
    datagram = bep15.scrape_request(cid, tid, *hashes) + tail
    assert parse_request(datagram, cap) == ScrapeRequest(cid, tid, tuple(hashes[:cap]))
    assert parse_request(datagram) == ScrapeRequest(cid, tid, tuple(hashes[:MAX_SCRAPE_HASHES]))


@EXAMPLES
@given(cid=eight_bytes, tid=four_bytes, tail=st.binary(max_size=19))
def test_scrape_without_a_whole_hash_is_invalid(cid: bytes, tid: bytes, tail: bytes) -> None:
    datagram = bep15.scrape_request(cid, tid) + tail
    assert parse_request(datagram) == InvalidRequest(cid, tid, "no info hashes")


# Round trips: responses ---------------------------------------------------------------


@EXAMPLES
@given(tid=four_bytes, cid=eight_bytes)
def test_connect_response_round_trip(tid: bytes, cid: bytes) -> None:
    reply = bep15.parse_connect_response(build_connect_response(tid, cid))
    assert reply == bep15.ConnectResponse(tid, cid)


ipv4_peers = st.lists(st.tuples(st.ip_addresses(v=4), st.integers(0, 65535)), max_size=200)
ipv6_peers = st.lists(st.tuples(st.ip_addresses(v=6), st.integers(0, 65535)), max_size=66)


@settings(max_examples=100, deadline=None)  # each example builds up to 200 addresses
@given(
    tid=four_bytes,
    interval=st.integers(1, 2**31 - 1),
    leechers=count,
    seeders=count,
    family=st.sampled_from(["ipv4", "ipv6"]),
    data=st.data(),
)
def test_announce_response_round_trip(
    tid: bytes, interval: int, leechers: int, seeders: int, family: str, data: st.DataObject
) -> None:
    stride = 6 if family == "ipv4" else 18
    peers = data.draw(ipv4_peers if family == "ipv4" else ipv6_peers)
    entries = b"".join(address.packed + struct.pack("!H", port) for address, port in peers)
    reply = build_announce_response(tid, interval, leechers, seeders, entries)
    parsed = bep15.parse_announce_response(reply, stride)
    assert (parsed.transaction_id, parsed.interval) == (tid, interval)
    assert (parsed.leechers, parsed.seeders) == (leechers, seeders)
    assert parsed.peers == {
        (socket.inet_ntop(_family(stride), address.packed), port) for address, port in peers
    }
    assert parsed.size == 20 + stride * len(peers)


def _family(stride: int) -> int:
    return socket.AF_INET if stride == 6 else socket.AF_INET6


@EXAMPLES
@given(tid=four_bytes, entries=st.lists(st.tuples(count, count, count), min_size=1, max_size=74))
def test_scrape_response_round_trip(tid: bytes, entries: list[tuple[int, int, int]]) -> None:
    reply = build_scrape_response(tid, entries)
    assert len(reply) == 8 + 12 * len(entries)
    assert bep15.parse_scrape_response(reply) == bep15.ScrapeResponse(tid, tuple(entries))


@EXAMPLES
@given(tid=four_bytes, message=st.text(min_size=1))
def test_error_response_round_trip(tid: bytes, message: str) -> None:
    reply = build_error_response(tid, message)
    parsed = bep15.parse_error_response(reply)  # raises unless the text is valid UTF-8
    assert parsed.transaction_id == tid
    assert message.startswith(parsed.message)
    assert len(reply) <= 72
    if len(message.encode("utf-8")) <= 64:
        assert parsed.message == message


# Never raises ---------------------------------------------------------------------------

ACTIONS = [0, 1, 2, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
FILLERS = [b"\x00", b"\x01", b"\x02", b"\xff"]


def test_every_action_at_every_length_parses_without_raising() -> None:
    rng = random.Random(1)
    for action in ACTIONS:
        for connection_id in (MAGIC, bytes(8), rng.randbytes(8)):
            head = connection_id + action.to_bytes(4, "big") + b"TXID"
            for filler in [*FILLERS, rng.randbytes(200)]:
                full = head + (filler * 200)[:200]
                for length in range(201):
                    datagram = full[:length]
                    result = parse_request(datagram)
                    assert result is None or isinstance(result, REQUEST_TYPES)
                    assert result is None or may_be_request(datagram)  # the edge's pre-filter
                    assert isinstance(result, ConnectRequest) == is_valid_connect(datagram)


@settings(max_examples=300, deadline=None)
@given(
    action=st.one_of(st.sampled_from(ACTIONS), u32),
    connection_id=st.one_of(st.just(MAGIC), eight_bytes),
    tail=st.binary(max_size=2048 - 16),
    cap=st.integers(1, 200),
)
def test_any_request_shaped_datagram_parses_without_raising(
    action: int, connection_id: bytes, tail: bytes, cap: int
) -> None:
    datagram = connection_id + action.to_bytes(4, "big") + b"TXID" + tail
    result = parse_request(datagram, cap)
    assert result is None or isinstance(result, REQUEST_TYPES)
    assert result is None or may_be_request(datagram)  # the edge's pre-filter
    assert isinstance(result, ConnectRequest) == is_valid_connect(datagram)


@settings(max_examples=300, deadline=None)
@given(datagram=st.binary(max_size=2048))
def test_a11_random_bytes_only_ever_parse_as_valid_connects(datagram: bytes) -> None:
    result = parse_request(datagram)
    assert result is None or isinstance(result, REQUEST_TYPES)
    assert result is None or may_be_request(datagram)  # the edge's pre-filter
    assert isinstance(result, ConnectRequest) == is_valid_connect(datagram)


def test_a11_ten_thousand_seeded_random_datagrams() -> None:
    rng = random.Random(11)
    for _ in range(10_000):
        datagram = rng.randbytes(rng.randint(0, 2048))
        result = parse_request(datagram)
        assert result is None or isinstance(result, REQUEST_TYPES)
        assert result is None or may_be_request(datagram)  # the edge's pre-filter
        assert isinstance(result, ConnectRequest) == is_valid_connect(datagram)


def test_bytearray_and_memoryview_input_do_not_raise() -> None:
    announce = bep15.announce_request(bytes(8), b"TXID", bytes(20), bytes(20), options=b"\x02\x01/")
    for datagram in (bytearray(announce), memoryview(announce)):
        assert isinstance(parse_request(datagram), AnnounceRequest)
