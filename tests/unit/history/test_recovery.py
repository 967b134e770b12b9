"""Recovery: the newest snapshot that restores, then the tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from udpt.core import COMPILED
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, TorrentAdded, TorrentFlagged
from udpt.history import recover, replay, take_snapshot
from udpt.projections import TrackerState

T0 = 1_700_000_000_000
EVENTS = [TorrentAdded(T0 + i, bytes([i]) * 20, "ops") for i in range(1, 6)] + [
    TorrentFlagged(T0 + 9, bytes([1]) * 20, "ops")
]


def full_replay(log: EventLog) -> bytes:
    state, used = recover(log, use_snapshots=False)
    assert used == 0
    return state.snapshot()


def test_a_replay_from_a_snapshot_names_the_snapshot_not_the_end(tmp_log: EventLog) -> None:
    """It used to report the seq reached (6) whenever events followed the snapshot."""
    tmp_log.append_events(EVENTS[:3])
    take_snapshot(tmp_log)
    tmp_log.append_events(EVENTS[3:])
    run = replay(tmp_log)
    assert (run.snapshot_seq, run.replayed, run.state.last_seq) == (3, 3, 6)
    assert run.state.snapshot() == full_replay(tmp_log)


def test_a_damaged_newest_snapshot_falls_back_to_the_older_one(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS[:2])
    take_snapshot(tmp_log)
    tmp_log.append_events(EVENTS[2:4])
    tmp_log.put_snapshot(4, b"not a snapshot")
    tmp_log.append_events(EVENTS[4:])
    state, used = recover(tmp_log)
    assert used == 2
    assert state.snapshot() == full_replay(tmp_log)


def test_recover_stops_at_to_seq_and_uses_no_later_snapshot(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS)
    take_snapshot(tmp_log)
    state, used = recover(tmp_log, 4)
    expected = TrackerState()
    expected.apply_all(enumerate(EVENTS[:4], 1))
    assert (used, state.snapshot()) == (0, expected.snapshot())


def announce(n: int) -> AnnounceAccepted:
    return AnnounceAccepted(
        T0 + n, bytes([n]) * 20, bytes([10, 0, 0, n]), 6881, bytes(20), 0, 0, 0, 0, 1
    )


@pytest.mark.skipif(COMPILED, reason="the compiled table and dictionary keep no key objects")
def test_a_restart_keys_each_torrent_by_the_logs_own_info_hash(tmp_path: Path) -> None:
    """One object for each info hash where a restart made three (the snapshot's, the
    dictionary's by number, the writer's numbers by hash): 64 bytes each, a million times."""
    with EventLog(tmp_path / "log") as log:
        log.append_events([announce(n) for n in range(1, 4)])
        take_snapshot(log)
        log.append_events([announce(4)])
    with EventLog(tmp_path / "log") as log:
        state, used = recover(log)
        known = log.known_hash()
        assert used == 3
        assert sorted(state.torrents) == [bytes([n]) * 20 for n in range(1, 5)]
        assert all(known(bytes(bytearray(key))) is key for key in state.torrents)
        later = announce(5)
        log.append_events([later])
        assert known(bytes(bytearray(later.info_hash))) is later.info_hash
