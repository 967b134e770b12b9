"""Address helpers: canonical source IPs (docs/PROTOCOL.md §1.6), peer formats, bind addresses."""

from __future__ import annotations

import pytest

from udpt.addresses import canonical_ip, compact_peer, format_peer_address, parse_bind_address


@pytest.mark.parametrize(
    ("host", "packed"),
    [
        ("127.0.0.1", "7f000001"),
        ("192.0.2.7", "c0000207"),
        ("::1", "00000000000000000000000000000001"),
        ("2001:db8::7", "20010db8000000000000000000000007"),
        # What a dual-stack socket reports for an IPv4 client: the IPv4 address.
        ("::ffff:127.0.0.1", "7f000001"),
        ("::FFFF:192.0.2.7", "c0000207"),
        # Only ::ffff:0:0/96 is mapped; NAT64 and IPv4-compatible stay IPv6.
        ("64:ff9b::c000:207", "0064ff9b0000000000000000c0000207"),
        ("::192.0.2.7", "000000000000000000000000c0000207"),
        ("::ffff:0:c000:207", "0000000000000000ffff0000c0000207"),
        ("fe80::1%lo", "fe800000000000000000000000000001"),
    ],
)
def test_canonical_ip(host: str, packed: str) -> None:
    assert canonical_ip(host) == bytes.fromhex(packed)


def test_ipv4_client_is_one_identity_on_either_socket() -> None:
    assert canonical_ip("::ffff:10.1.2.3") == canonical_ip("10.1.2.3")


@pytest.mark.parametrize("host", ["", "localhost", "1.2.3", "256.1.1.1", "::g", "1.2.3.4%lo"])
def test_canonical_ip_refuses_non_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        canonical_ip(host)


@pytest.mark.parametrize(
    ("packed", "port", "text"),
    [
        ("c0000207", 6881, "192.0.2.7:6881"),
        ("00000000000000000000000000000001", 51413, "[::1]:51413"),
        ("20010db8000000000000000000000007", 1, "[2001:db8::7]:1"),
        ("00010000000000010000000000000001", 65535, "[1:0:0:1::1]:65535"),
    ],
)
def test_format_peer_address(packed: str, port: int, text: str) -> None:
    assert format_peer_address(bytes.fromhex(packed), port) == text


def test_format_peer_address_refuses_other_lengths() -> None:
    with pytest.raises(ValueError, match="4 or 16"):
        format_peer_address(b"\x01\x02\x03", 1)


def test_compact_peer_is_the_bep23_entry() -> None:
    # docs/PROTOCOL.md §7.1 example: 192.0.2.7:6881 is c0000207 1ae1
    assert compact_peer(bytes.fromhex("c0000207"), 6881) == bytes.fromhex("c00002071ae1")
    ipv6 = compact_peer(canonical_ip("::1"), 51413)
    assert ipv6 == bytes(15) + b"\x01" + bytes.fromhex("c8d5")
    assert len(ipv6) == 18


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:6969", ("0.0.0.0", 6969)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:6969", ("::", 6969)),
        ("[::1]:1212", ("::1", 1212)),
        ("[::ffff:127.0.0.1]:65535", ("::ffff:127.0.0.1", 65535)),
    ],
)
def test_parse_bind_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_bind_address(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected host:port"),
        ("6969", "expected host:port"),
        (":6969", "expected host:port"),
        ("::6969", "in brackets"),
        ("::1:6969", "in brackets"),
        ("localhost:6969", "not an IP address"),
        ("1.2.3:6969", "not an IP address"),
        ("[1.2.3.4]:6969", "not an IP address"),
        ("[::1:6969", "in brackets"),
        ("0.0.0.0:", "port must be"),
        ("0.0.0.0:65536", "port must be"),
        ("0.0.0.0:-1", "port must be"),
        ("0.0.0.0:+1", "port must be"),
        ("0.0.0.0:http", "port must be"),
        ("0.0.0.0:６９", "port must be"),
    ],
)
def test_parse_bind_address_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_bind_address(text)
