"""Batch values written by earlier versions must decode to the same events forever.

``tests/data/batch-v*.hex`` were generated once and are NEVER edited once
committed; the events below are written out by hand for the same reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from udpt.events.batch import batch_count, batch_last_ms, decode_batch
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentFlagged,
)

DATA = Path(__file__).resolve().parents[2] / "data"
IH = bytes(range(1, 21))
IH2 = bytes(range(21, 41))
PID = b"-qB4630-0123456789ab"
PID2 = b"-TR4050-abcdefghijkl"
V4 = bytes([192, 0, 2, 1])
V6 = bytes.fromhex("20010db8000000000000000000000001")
T = 1_700_000_000_000
DICTIONARY = [IH, IH2]

ANNOUNCES: list[Event] = [
    AnnounceAccepted(
        T + 1, IH, V4, 6881, PID, 0xDEADBEEF, AnnounceEvent.STARTED, 0, 0, 734_003_200
    ),
    AnnounceAccepted(T + 3, IH2, V6, 51413, PID2, 7, AnnounceEvent.NONE, 16384, 32768, 1 << 40),
    AnnounceAccepted(
        T + 3, IH, V4, 6881, PID, 0xDEADBEEF, AnnounceEvent.COMPLETED, 5, 734_003_200, 0
    ),
]
EXPECTED: dict[str, list[Event]] = {
    "announces-dictionary": ANNOUNCES,
    "announces-local": ANNOUNCES,
    "mixed-local": [
        TorrentAdded(T + 10, IH, "alice"),
        AnnounceAccepted(T + 11, IH, V4, 6881, PID, 1, AnnounceEvent.STOPPED, 1, 2, 3),
        AnnounceRefused(T + 12, IH2, V6, 51413, PID2, RefusalReason.FLAGGED),
        AnnounceAccepted(T + 9, IH2, V6, 1, PID2, 2, AnnounceEvent.NONE, -1, 0, 0),
        PeersExpired(T + 13, T - 2_700_000, 0),
    ],
    "one-admin-event": [TorrentFlagged(T + 20, IH2, "bob")],
}


def golden_values() -> dict[str, bytes]:
    values = {}
    for line in (DATA / "batch-v1.hex").read_text().splitlines():
        if line and not line.startswith("#"):
            hex_value, name = line.split("  # ")
            values[name] = bytes.fromhex(hex_value)
    return values


def test_every_golden_batch_has_its_expectation() -> None:
    assert golden_values().keys() == EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_batch_decodes_to_the_same_events(name: str) -> None:
    value = golden_values()[name]
    events = decode_batch(value, DICTIONARY)
    assert events == EXPECTED[name]
    assert [type(e) for e in events] == [type(e) for e in EXPECTED[name]]
    assert batch_count(value) == len(events)
    assert batch_last_ms(value) == events[-1].at_ms
