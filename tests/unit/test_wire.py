"""udpt.wire against docs/PROTOCOL.md: case tables read in both directions, then §15 at codec level.

Request bytes are built by hand or with tests.support.bep15 (plain struct, no udpt
code); response bytes are checked against hex from docs/PROTOCOL.md and read back with
the support parsers, so the codec is never tested with itself.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests.support import bep15
from udpt.wire import (
    EVENT_NONE,
    MAX_SCRAPE_HASHES,
    MAX_URL_DATA,
    PROTOCOL_ID,
    AnnounceRequest,
    ConnectRequest,
    InvalidRequest,
    Request,
    ScrapeRequest,
    build_announce_response,
    build_connect_response,
    build_error_response,
    build_scrape_response,
    parse_request,
)

CID = bytes.fromhex("a1a2a3a4a5a6a7a8")
TID = bytes.fromhex("01020304")
IH1 = bytes(range(1, 21))
IH2 = bytes(range(101, 121))
PEER_ID = b"-XX0001-000000000001"

# One announce, built field by field (docs/PROTOCOL.md §5.1).
HAND_BUILT_ANNOUNCE = b"".join(
    [
        bytes.fromhex("a1a2a3a4a5a6a7a8"),  # connection_id: from a connect reply
        bytes.fromhex("00000001"),  # action: 1 = announce
        bytes.fromhex("01020304"),  # transaction_id: echoed in the reply
        bytes(range(1, 21)),  # info_hash: 20 opaque bytes
        b"-XX0001-000000000001",  # peer_id: 20 opaque bytes
        bytes.fromhex("0000000000000400"),  # downloaded: 1024 (i64)
        bytes.fromhex("00000000000003e8"),  # left: 1000, so a leecher (i64)
        bytes.fromhex("0000000000000200"),  # uploaded: 512 (i64)
        bytes.fromhex("00000002"),  # event: 2 = started
        bytes.fromhex("0a000001"),  # ip: 10.0.0.1, ignored by the tracker
        bytes.fromhex("01020304"),  # key: opaque u32
        bytes.fromhex("ffffffff"),  # num_want: -1 = server default (i32)
        bytes.fromhex("1ae1"),  # port: 6881
    ]
)
HAND_BUILT_ANNOUNCE_VALUE = AnnounceRequest(
    connection_id=CID,
    transaction_id=TID,
    info_hash=IH1,
    peer_id=PEER_ID,
    downloaded=1024,
    left=1000,
    uploaded=512,
    event=2,
    ip=bytes.fromhex("0a000001"),
    key=0x01020304,
    num_want=-1,
    port=6881,
    url_data=b"",
)


def support_bytes(request: Request) -> bytes:
    """The datagram tests.support.bep15 builds for ``request`` (the other direction)."""
    match request:
        case ConnectRequest(transaction_id=tid):
            return bep15.connect_request(tid)
        case AnnounceRequest():
            return bep15.announce_request(
                request.connection_id,
                request.transaction_id,
                request.info_hash,
                request.peer_id,
                downloaded=request.downloaded,
                left=request.left,
                uploaded=request.uploaded,
                event=request.event,
                ip=request.ip,
                key=request.key,
                num_want=request.num_want,
                port=request.port,
                options=bep15.url_data_option(request.url_data) if request.url_data else b"",
            )
        case ScrapeRequest(connection_id=cid, transaction_id=tid, info_hashes=hashes):
            return bep15.scrape_request(cid, tid, *hashes)
    raise AssertionError(f"no builder for {request!r}")


# Each row: a request value and its datagram. Parsing the datagram must give the
# value; the support builders must give the datagram back from the value.
REQUEST_CASES: list[tuple[Request, bytes]] = [
    (
        ConnectRequest(TID),
        bytes.fromhex("00000417271019800000000001020304"),
    ),
    (HAND_BUILT_ANNOUNCE_VALUE, HAND_BUILT_ANNOUNCE),
    (
        # libtorrent's announce: 98 bytes + URLData "/announce" (docs/PROTOCOL.md §5.5)
        AnnounceRequest(
            CID, TID, IH1, PEER_ID, 0, 16384, 0, 0, bytes(4), 7, 200, 51413, b"/announce"
        ),
        CID
        + bytes.fromhex("00000001")
        + TID
        + IH1
        + PEER_ID
        + struct.pack("!qqqI4sIiH", 0, 16384, 0, 0, bytes(4), 7, 200, 51413)
        + bytes.fromhex("0209")
        + b"/announce",
    ),
    (
        ScrapeRequest(CID, TID, (IH1, IH2)),
        CID + bytes.fromhex("00000002") + TID + IH1 + IH2,
    ),
    (
        ScrapeRequest(CID, TID, (IH1,)),
        CID + bytes.fromhex("00000002") + TID + IH1,
    ),
]


@pytest.mark.parametrize(("value", "datagram"), REQUEST_CASES)
def test_request_case_parses_to_its_value(value: Request, datagram: bytes) -> None:
    assert parse_request(datagram) == value


@pytest.mark.parametrize(("value", "datagram"), REQUEST_CASES)
def test_request_case_is_what_a_client_sends(value: Request, datagram: bytes) -> None:
    assert support_bytes(value) == datagram


# Each row: a builder call and the exact reply bytes; the support parser must read
# the bytes back to the values that went in.
RESPONSE_CASES: list[tuple[bytes, bytes, object]] = [
    (
        build_connect_response(TID, CID),
        bytes.fromhex("0000000001020304a1a2a3a4a5a6a7a8"),
        bep15.ConnectResponse(TID, CID),
    ),
    (
        # docs/PROTOCOL.md §7.1 example: leechers before seeders
        build_announce_response(
            bytes.fromhex("aabbccdd"),
            1800,
            2,
            1,
            bytes.fromhex("c00002071ae1") + bytes.fromhex("c6336409c8d5"),
        ),
        bytes.fromhex("00000001 aabbccdd 00000708 00000002 00000001 c0000207 1ae1 c6336409 c8d5"),
        bep15.AnnounceResponse(
            bytes.fromhex("aabbccdd"),
            1800,
            2,
            1,
            frozenset({("192.0.2.7", 6881), ("198.51.100.9", 51413)}),
            2,
            32,
        ),
    ),
    (
        # E1: unknown hash, all zeros, 20 bytes; seeders first in a scrape
        build_scrape_response(TID, [(0, 0, 0)]),
        bytes.fromhex("00000002 01020304 00000000 00000000 00000000"),
        bep15.ScrapeResponse(TID, ((0, 0, 0),)),
    ),
    (
        build_scrape_response(TID, [(2, 1, 1), (0, 0, 0)]),
        bytes.fromhex("00000002 01020304 00000002 00000001 00000001 000000000000000000000000"),
        bep15.ScrapeResponse(TID, ((2, 1, 1), (0, 0, 0))),
    ),
    (
        build_error_response(TID, "invalid port"),
        bytes.fromhex("00000003 01020304") + b"invalid port",
        bep15.ErrorResponse(TID, "invalid port"),
    ),
]


@pytest.mark.parametrize(("built", "expected", "value"), RESPONSE_CASES)
def test_response_case_builds_the_exact_bytes(built: bytes, expected: bytes, value: object) -> None:
    assert built == expected


@pytest.mark.parametrize(("built", "expected", "value"), RESPONSE_CASES)
def test_response_case_reads_back_as_a_client_sees_it(
    built: bytes, expected: bytes, value: object
) -> None:
    parsers = {
        bep15.ConnectResponse: bep15.parse_connect_response,
        bep15.AnnounceResponse: bep15.parse_announce_response,
        bep15.ScrapeResponse: bep15.parse_scrape_response,
        bep15.ErrorResponse: bep15.parse_error_response,
    }
    assert parsers[type(value)](expected) == value


# A. Framing and dispatch ------------------------------------------------------------

CONNECT = bytes.fromhex("0000041727101980 00000000")


def header(connection_id: bytes, action: int, transaction_id: bytes = TID) -> bytes:
    return connection_id + struct.pack("!I", action) + transaction_id


def announce(**fields: Any) -> bytes:
    """docs/PROTOCOL.md §15 ``ANN(...)``: 98 bytes with the listed fields changed."""
    return bep15.announce_request(CID, TID, IH1, PEER_ID, **fields)


@pytest.mark.parametrize(
    ("case", "datagram"),
    [
        ("A1 empty", b""),
        ("A2 15 bytes", bytes.fromhex("0000041727101980 00000000 010203")),
        ("A5 magic + 1", header((PROTOCOL_ID + 1).to_bytes(8, "big"), 0)),
        ("A6 protocol id 0", header(bytes(8), 0)),
        ("A7 action 3 (error)", header(PROTOCOL_ID.to_bytes(8, "big"), 3)),
        ("A8 legacy IPv6 announce", header(CID, 4) + bytes(100)),
        ("A9 action 0xffffffff", header(CID, 0xFFFFFFFF)),
        ("R3 action 3 after a valid id", header(CID, 3) + b"invalid port"),
        ("C2 announce of 97 bytes", announce()[:97]),
        ("C2 announce of 16 bytes", header(CID, 1)),
    ],
)
def test_datagram_is_dropped(case: str, datagram: bytes) -> None:
    assert parse_request(datagram) is None


def test_a3_connect_gives_transaction_id() -> None:
    assert parse_request(CONNECT + TID) == ConnectRequest(TID)


def test_a4_connect_with_extra_bytes_is_still_a_connect() -> None:
    assert parse_request(CONNECT + TID + bytes.fromhex("deadbeef")) == ConnectRequest(TID)


@pytest.mark.parametrize("tid", ["00000000", "ffffffff", "80000000"])
def test_a10_transaction_id_is_echoed_byte_for_byte(tid: str) -> None:
    request = parse_request(CONNECT + bytes.fromhex(tid))
    assert isinstance(request, ConnectRequest)
    reply = build_connect_response(request.transaction_id, CID)
    assert reply[4:8] == bytes.fromhex(tid)


def test_connect_response_is_exactly_16_bytes() -> None:
    assert len(build_connect_response(TID, CID)) == 16


# C. Announce parsing ----------------------------------------------------------------


def test_c1_announce_of_exactly_98_bytes() -> None:
    datagram = announce()
    assert len(datagram) == 98
    request = parse_request(datagram)
    assert isinstance(request, AnnounceRequest)
    assert (request.connection_id, request.transaction_id) == (CID, TID)
    assert (request.info_hash, request.peer_id, request.port) == (IH1, PEER_ID, 6881)
    assert request.url_data == b""


@pytest.mark.parametrize(
    ("case", "options", "url_data"),
    [
        ("C3 libtorrent", bytes.fromhex("0209") + b"/announce", b"/announce"),
        ("C4 old extensions field", bytes.fromhex("0000"), b""),
        ("C5 then NOPs and end", bytes.fromhex("020c") + b"/dir?a=b&c=d" + bytes.fromhex("010100"),
         b"/dir?a=b&c=d"),
        ("C6 concatenated", bytes.fromhex("0204") + b"/dir" + bytes.fromhex("0208") + b"?a=b&c=d",
         b"/dir?a=b&c=d"),
        ("C7 empty URLData", bytes.fromhex("0200"), b""),
        ("C8 unknown option skipped", bytes.fromhex("0503") + b"abc" + bytes.fromhex("0201") + b"/",
         b"/"),
        ("C9 length past end", bytes.fromhex("0210") + b"/ab", b""),
        ("C10 type without length", bytes.fromhex("02"), b""),
        ("C11 stops at EndOfOptions", bytes.fromhex("0002") + b"\x01x", b""),
        ("C12 300 NOPs", b"\x01" * 300, b""),
        ("malformed tail keeps earlier data", bytes.fromhex("0201") + b"/" + bytes.fromhex("0210"),
         b"/"),
        ("unknown option with length 0", bytes.fromhex("ff00 0201") + b"/", b"/"),
    ],
)  # fmt: skip
def test_bep41_options_are_read_leniently(case: str, options: bytes, url_data: bytes) -> None:
    request = parse_request(announce(options=options))
    assert isinstance(request, AnnounceRequest)
    assert request.url_data == url_data
    assert request.port == 6881


def test_url_data_is_capped() -> None:
    options = b"".join(bep15.url_data_option(bytes([65 + i]) * 255) for i in range(6))
    request = parse_request(announce(options=options))
    assert isinstance(request, AnnounceRequest)
    assert len(request.url_data) == MAX_URL_DATA
    assert request.url_data.startswith(b"A" * 255 + b"B" * 255)


def test_url_data_after_many_nops_is_ignored_but_the_announce_stands() -> None:
    request = parse_request(announce(options=b"\x01" * 5000 + bep15.url_data_option(b"/late")))
    assert isinstance(request, AnnounceRequest)
    assert request.url_data == b""


def test_c13_port_0_is_an_invalid_request_carrying_its_ids() -> None:
    assert parse_request(announce(port=0)) == InvalidRequest(CID, TID, "invalid port")


def test_announce_shorter_than_98_bytes_with_port_0_is_dropped_not_answered() -> None:
    assert parse_request(announce(port=0)[:97]) is None  # R7 comes before R8


@pytest.mark.parametrize(("sent", "normalised"), [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_bep15_events_are_kept(sent: int, normalised: int) -> None:
    request = parse_request(announce(event=sent))
    assert isinstance(request, AnnounceRequest)
    assert request.event == normalised


def test_c15_libtorrent_paused_event_4_is_a_plain_leecher_update() -> None:
    request = parse_request(announce(event=4, left=1000))
    assert isinstance(request, AnnounceRequest)
    assert (request.event, request.left) == (EVENT_NONE, 1000)


@pytest.mark.parametrize("event", [99, 5, 0xFFFFFFFF])
def test_c16_unknown_event_is_treated_as_none(event: int) -> None:
    request = parse_request(announce(event=event, left=0))
    assert isinstance(request, AnnounceRequest)
    assert (request.event, request.left) == (EVENT_NONE, 0)


def test_c18_left_minus_one_is_read_signed() -> None:
    request = parse_request(announce(left=-1))
    assert isinstance(request, AnnounceRequest)
    assert request.left == -1


def test_signed_and_unsigned_fields_keep_their_extremes() -> None:
    request = parse_request(
        announce(
            downloaded=-(2**63), uploaded=2**63 - 1, key=0xFFFFFFFF, num_want=2**31 - 1, port=65535
        )
    )
    assert isinstance(request, AnnounceRequest)
    assert (request.downloaded, request.uploaded) == (-(2**63), 2**63 - 1)
    assert (request.key, request.num_want, request.port) == (0xFFFFFFFF, 2**31 - 1, 65535)


# E. Scrape parsing ------------------------------------------------------------------


def scrape(*hashes: bytes) -> bytes:
    return bep15.scrape_request(CID, TID, *hashes)


def test_e5_scrape_without_hashes_is_an_invalid_request() -> None:
    assert parse_request(scrape()) == InvalidRequest(CID, TID, "no info hashes")


def test_e12_scrape_with_19_bytes_of_hash_is_an_invalid_request() -> None:
    datagram = scrape() + IH1[:19]
    assert len(datagram) == 35
    assert parse_request(datagram) == InvalidRequest(CID, TID, "no info hashes")


def test_e7_scrape_with_74_hashes_reads_all() -> None:
    hashes = tuple(i.to_bytes(20, "big") for i in range(74))
    assert parse_request(scrape(*hashes)) == ScrapeRequest(CID, TID, hashes)


def test_e8_scrape_with_100_hashes_reads_the_first_74() -> None:
    hashes = tuple(i.to_bytes(20, "big") for i in range(100))
    assert parse_request(scrape(*hashes)) == ScrapeRequest(CID, TID, hashes[:MAX_SCRAPE_HASHES])


def test_scrape_cap_is_an_argument() -> None:
    assert parse_request(scrape(IH1, IH2, IH1), max_scrape_hashes=2) == ScrapeRequest(
        CID, TID, (IH1, IH2)
    )


def test_e9_partial_trailing_hash_is_ignored() -> None:
    assert parse_request(scrape(IH1, IH2) + b"12345") == ScrapeRequest(CID, TID, (IH1, IH2))


def test_e4_repeated_hash_is_kept_twice_in_order() -> None:
    assert parse_request(scrape(IH2, IH1, IH2)) == ScrapeRequest(CID, TID, (IH2, IH1, IH2))


# Response builders ------------------------------------------------------------------


def test_announce_response_without_peers_is_20_bytes() -> None:
    reply = build_announce_response(TID, 1800, 1, 0, b"")
    assert reply == bytes.fromhex("00000001 01020304 00000708 00000001 00000000")


def test_announce_response_carries_ipv6_entries() -> None:
    peer = bytes(15) + b"\x01" + (6881).to_bytes(2, "big")
    reply = build_announce_response(TID, 1800, 2, 0, peer)
    parsed = bep15.parse_announce_response(reply, stride=18)
    assert parsed.peers == {("::1", 6881)}
    assert len(reply) == 38


def test_counts_saturate_at_i32_max() -> None:
    announce_reply = bep15.parse_announce_response(
        build_announce_response(TID, 2**40, 2**31, 2**33, b"")
    )
    assert (announce_reply.interval, announce_reply.leechers, announce_reply.seeders) == (
        2**31 - 1,
        2**31 - 1,
        2**31 - 1,
    )
    scrape_reply = bep15.parse_scrape_response(build_scrape_response(TID, [(2**31, 2**32, 5)]))
    assert scrape_reply.entries == ((2**31 - 1, 2**31 - 1, 5),)


def test_e7_scrape_response_for_74_hashes_is_896_bytes() -> None:
    assert len(build_scrape_response(TID, [(1, 2, 3)] * 74)) == 896


def test_scrape_response_accepts_any_iterable() -> None:
    reply = build_scrape_response(TID, ((i, i, i) for i in range(3)))
    assert bep15.parse_scrape_response(reply).entries == ((0, 0, 0), (1, 1, 1), (2, 2, 2))


def test_f1_error_response_is_utf8_without_nul() -> None:
    reply = build_error_response(TID, "torrent not registered.")
    assert reply[:8] == bytes.fromhex("00000003 01020304")
    assert reply[8:] == b"torrent not registered."
    assert b"\0" not in reply[8:]


def test_long_error_message_is_cut_on_a_character_boundary() -> None:
    reply = build_error_response(TID, "é" * 100)  # 2 bytes per character in UTF-8
    assert len(reply) == 8 + 64
    assert bep15.parse_error_response(reply).message == "é" * 32
    odd = build_error_response(TID, "a" + "é" * 100)  # the 64th byte would split a character
    assert bep15.parse_error_response(odd).message == "a" + "é" * 31
