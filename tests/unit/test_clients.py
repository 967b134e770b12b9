"""The REST API's ``client`` field: peer_id prefixes named as UDPT names them."""

from __future__ import annotations

import pytest

from udpt.clients import CLIENT_NAMES_BY_CODE, client_name


@pytest.mark.parametrize(
    ("peer_id", "name"),
    [
        (b"-qB4650-abcdefghijkl", "qBittorrent"),
        (b"-TR3000-abcdefghijkl", "Transmission"),
        (b"-LT2010-abcdefghijkl", "libtorrent"),
        (b"-lt0D80-abcdefghijkl", "libTorrent"),
        (b"-UT3550-abcdefghijkl", "\u00b5Torrent"),
        (b"-UW1000-abcdefghijkl", "\u00b5Torrent Web"),
        (b"-BG0100-abcdefghijkl", "BTG (uses Rasterbar libtorrent)"),
        (b"-BX0100-abcdefghijkl", "~Bittorrent X"),
        (b"-S~0100-abcdefghijkl", "Shareaza alpha/beta"),
        (b"-A~0100-abcdefghijkl", "Ares"),
        (b"-st0100-abcdefghijkl", "sharktorrent"),
        (b"-ST0100-abcdefghijkl", "SymTorrent"),
        (b"-UL0100-abcdefghijkl", "uLeecher!"),
        (b"-DE13F0-abcdefghijkl", "DelugeTorrent"),
        (b"M7-2-0--abcdefghijkl", "BitTorrent"),
        (b"M", "BitTorrent"),
        (b"-TRxyzw", "Transmission"),  # version digits are not checked
        (b"-TR", "Transmission"),
    ],
)
def test_known_prefixes_are_named(peer_id: bytes, name: str) -> None:
    assert client_name(peer_id) == name


@pytest.mark.parametrize(
    "peer_id",
    [
        b"-ZZ0100-abcdefghijkl",  # unknown code
        b"-tr3000-abcdefghijkl",  # codes are case-sensitive
        b"-qb4650-abcdefghijkl",
        b"-T",
        b"-",
        b"",
        b"m7-2-0--abcdefghijkl",
        b"S58B-----abcdefghijk",  # Shadow-style ids are not in UDPT's table
        b"\xb5TR3000-abcdefghijkl",
        b"-\xc2\xb5300-abcdefghijkl",
        bytes(20),
    ],
)
def test_other_peer_ids_have_no_name(peer_id: bytes) -> None:
    assert client_name(peer_id) is None


def test_micro_sign_is_u00b5_not_greek_mu() -> None:
    assert client_name(b"-UT3550-abcdefghijkl").startswith("\u00b5")
    assert "\u03bc" not in "".join(CLIENT_NAMES_BY_CODE.values())


def test_table_is_udpts_and_read_only() -> None:
    assert len(CLIENT_NAMES_BY_CODE) == 64
    assert all(len(code) == 2 for code in CLIENT_NAMES_BY_CODE)
    with pytest.raises(TypeError):
        CLIENT_NAMES_BY_CODE[b"ZZ"] = "Nope"  # type: ignore[index]
