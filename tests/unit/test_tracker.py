"""Tracker decisions without sockets: the datagram handler driven by hand."""

from __future__ import annotations

from random import Random

from tests.support.bep15 import announce_request, parse_error_response
from udpt.connection_ids import ConnectionIds
from udpt.events.types import AnnounceAccepted, Event, TorrentFlagged
from udpt.projections import TrackerState
from udpt.tracker import Policy, Tracker

IP = bytes([127, 0, 0, 1])
NOW = 1_000_000.0
IH = b"\x11" * 20


def test_announce_overtaken_by_a_flag_before_its_commit_is_told_the_torrent_is_flagged() -> None:
    # Regression: the announce was decided before the flag was applied, so the fold
    # ignored it, yet the client got a normal reply with zero counts.
    state = TrackerState()
    queued: list[tuple[Event, object]] = []
    ids = ConnectionIds(b"k" * 32)
    tracker = Tracker(
        state, ids, Policy(), lambda event, done: queued.append((event, done)) or True, Random(0)
    )
    replies: list[bytes] = []
    datagram = announce_request(ids.issue(IP, NOW), b"tid1", IH, b"-XX0001-abcdefghijkl")
    tracker.handle(datagram, IP, NOW, 1_000_000_000, replies.append)
    (announce, on_committed) = queued[-1]
    assert type(announce) is AnnounceAccepted

    state.apply(1, TorrentFlagged(1_000_000_000, IH, "alice"))  # committed first
    state.apply(2, announce)
    on_committed(2)  # type: ignore[operator]

    assert parse_error_response(replies[0]).message == "torrent flagged."
    assert len(state.torrents[IH].swarm) == 0


def test_a_sweep_that_would_remove_nothing_is_not_recorded() -> None:
    state = TrackerState()
    queued: list[Event] = []
    policy = Policy(peer_timeout_ms=1000, cleanup_interval_ms=100)
    tracker = Tracker(
        state, ConnectionIds(b"k" * 32), policy, lambda e, done: queued.append(e) or True, Random(0)
    )
    state.apply(1, AnnounceAccepted(0, b"\x01" * 20, b"\x7f\0\0\1", 6881, bytes(20), 0, 0, 0, 0, 5))
    tracker.expire_if_due(500)  # the peer is not due yet: nothing to record
    assert queued == []
    assert tracker.last_expiry_ms == 500
    tracker.expire_if_due(1500)  # now it is
    assert [type(e).__name__ for e in queued] == ["PeersExpired"]
