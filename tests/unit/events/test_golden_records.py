"""Records written by earlier versions must decode to the same events forever.

``tests/data/records-v*.hex`` were generated once and are NEVER edited once
committed; the values below are written out by hand for the same reason (they
must not be recomputed by today's code). A new record layout gets a new tag,
new golden lines and new expectations here; old ones stay as they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from udpt.events.codec import RECORD_TAGS, decode_event
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

DATA = Path(__file__).resolve().parents[2] / "data"
IH = bytes(range(1, 21))
PEER_ID = b"-qB4630-0123456789ab"

EXPECTED: dict[str, Event] = {
    "announce-ipv4": AnnounceAccepted(
        1_700_000_000_123,
        IH,
        bytes([192, 0, 2, 1]),
        6881,
        PEER_ID,
        0xDEADBEEF,
        AnnounceEvent.COMPLETED,
        1,
        2,
        0,
    ),
    "announce-ipv6": AnnounceAccepted(
        1_700_000_000_124,
        IH,
        bytes.fromhex("20010db8000000000000000000000001"),
        51413,
        PEER_ID,
        7,
        AnnounceEvent.STARTED,
        0,
        3,
        734_003_200,
    ),
    "announce-ipv4-wide": AnnounceAccepted(
        1_700_000_000_125,
        IH,
        bytes([198, 51, 100, 7]),
        65535,
        PEER_ID,
        0,
        AnnounceEvent.NONE,
        1 << 40,
        5,
        -1,
    ),
    "announce-ipv6-wide": AnnounceAccepted(
        1_700_000_000_126,
        IH,
        bytes.fromhex("fe800000000000000000000000000abc"),
        1,
        PEER_ID,
        1,
        AnnounceEvent.STOPPED,
        -(1 << 63),
        (1 << 63) - 1,
        1 << 32,
    ),
    "refused-ipv4": AnnounceRefused(
        1_700_000_000_127,
        IH,
        bytes([203, 0, 113, 9]),
        6882,
        PEER_ID,
        RefusalReason.NOT_REGISTERED,
    ),
    "refused-ipv6": AnnounceRefused(
        1_700_000_000_128,
        IH,
        bytes.fromhex("20010db80000000000000000000000ff"),
        6883,
        PEER_ID,
        RefusalReason.FLAGGED,
    ),
    "torrent-added": TorrentAdded(1_700_000_000_129, IH, "admin"),
    "torrent-flagged": TorrentFlagged(1_700_000_000_130, IH, "ops-é"),
    "torrent-unflagged": TorrentUnflagged(1_700_000_000_131, IH, ""),
    "torrent-dropped": TorrentDropped(1_700_000_000_132, IH, "admin"),
    "torrent-imported": TorrentImported(1_700_000_000_133, IH, True, 12345, "import"),
    "peers-expired": PeersExpired(1_700_000_000_134, 1_699_999_997_434, 1_699_913_600_134),
}


def golden_records() -> dict[str, bytes]:
    """name -> record bytes, from every ``records-v*.hex`` file ("<hex>  # <name>" lines)."""
    records = {}
    for path in sorted(DATA.glob("records-v*.hex")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                hex_record, name = (part.strip() for part in line.split("#", 1))
                assert name not in records, f"{path.name}: {name} appears twice"
                records[name] = bytes.fromhex(hex_record)
    return records


def test_every_golden_record_has_expected_values_and_every_expectation_a_record() -> None:
    assert sorted(golden_records()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_golden_record_decodes_to_the_same_event_forever(name: str) -> None:
    decoded = decode_event(golden_records()[name])
    assert type(decoded) is type(EXPECTED[name])
    assert decoded == EXPECTED[name]


def test_every_tag_read_today_has_a_golden_record() -> None:
    """A new layout cannot slip in without a golden record to keep it readable."""
    assert {record[0] for record in golden_records().values()} == RECORD_TAGS
