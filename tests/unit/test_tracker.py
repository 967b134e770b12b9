"""Decisions without sockets: (state, mode, datagram) -> decision, row by row."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from random import Random

import pytest

from tests.support.bep15 import (
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
    parse_error_response,
    parse_scrape_response,
    scrape_request,
)
from udpt.config import Mode, load_config
from udpt.connection_ids import ConnectionIds
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentUnflagged,
)
from udpt.projections import TrackerState
from udpt.tracker import Change, Commit, Policy, Tracker
from udpt.wire import parse_request

IP = bytes([127, 0, 0, 1])
NOW_MS = 1_000_000_000
IH = b"\x11" * 20
OTHER = b"\x22" * 20
PEER_ID = b"-XX0001-abcdefghijkl"
IDS = ConnectionIds(b"k" * 32)
CID = IDS.issue(IP, NOW_MS / 1000)


def policy(mode: str = "dynamic", **changes: int) -> Policy:
    config = dataclasses.replace(load_config(None), mode=Mode(mode))
    return dataclasses.replace(Policy.from_config(config), **changes)


def tracker_with(*events: object, mode: str = "dynamic", **changes: int) -> Tracker:
    state = TrackerState()
    for seq, event in enumerate(events, 1):
        state.apply(seq, event)  # type: ignore[arg-type]
    return Tracker(state, IDS, policy(mode, **changes), Random(0))


def decide(tracker: Tracker, datagram: bytes) -> object:
    request = parse_request(datagram)
    assert request is not None
    return tracker.decide(request, IP, NOW_MS)


ADDED = TorrentAdded(1, IH, "admin")
FLAGGED = TorrentFlagged(1, IH, "admin")


def announce(info_hash: bytes = IH, event: int = 2, connection_id: bytes = CID) -> bytes:
    return announce_request(connection_id, b"tid1", info_hash, PEER_ID, event=event)


def refused_with(reason: RefusalReason, message: str) -> Callable[[object], None]:
    def check(decision: object) -> None:
        assert type(decision) is Commit and type(decision.event) is AnnounceRefused
        assert decision.event.reason is reason
        assert parse_error_response(decision.answer(decision.context)).message == message

    return check


def accepted(decision: object) -> None:
    assert type(decision) is Commit and type(decision.event) is AnnounceAccepted
    assert decision.event == AnnounceAccepted(
        NOW_MS, IH, IP, 6881, PEER_ID, 0x01020304, AnnounceEvent.STARTED, 0, 0, 1000
    )


def silence(decision: object) -> None:
    assert decision is None


def connect_reply(decision: object) -> None:
    assert type(decision) is bytes
    assert parse_connect_response(decision).connection_id == CID


def scrape_reply(decision: object) -> None:
    assert type(decision) is bytes
    assert parse_scrape_response(decision).entries == ((0, 0, 0),)


def error_reply(decision: object) -> None:
    assert type(decision) is bytes
    assert parse_error_response(decision).transaction_id == b"tid1"


NOT_REGISTERED = refused_with(RefusalReason.NOT_REGISTERED, "torrent not registered.")
IS_FLAGGED = refused_with(RefusalReason.FLAGGED, "torrent flagged.")
NOT_ALLOWED = refused_with(RefusalReason.TORRENT_LIMIT, "torrent not allowed.")

ROWS = [
    # (name, events already folded, mode, policy changes, datagram, check)
    ("connect", (), "dynamic", {}, connect_request(b"tid1"), connect_reply),
    ("bad connection id", (), "dynamic", {}, announce(connection_id=b"\0" * 8), silence),
    ("dynamic: new torrent", (), "dynamic", {}, announce(), accepted),
    ("static: unknown torrent", (), "static", {}, announce(), NOT_REGISTERED),
    ("private: unknown torrent", (), "private", {}, announce(), NOT_REGISTERED),
    ("static: added torrent", (ADDED,), "static", {}, announce(), accepted),
    ("dynamic: flagged", (FLAGGED,), "dynamic", {}, announce(), IS_FLAGGED),
    ("static: flagged", (FLAGGED,), "static", {}, announce(), IS_FLAGGED),
    ("limit reached", (TorrentAdded(1, OTHER, "a"),), "dynamic", {"max_torrents": 1},
     announce(), NOT_ALLOWED),
    ("limit spares stopped", (TorrentAdded(1, OTHER, "a"),), "dynamic", {"max_torrents": 1},
     announce(event=3), lambda d: type(d) is Commit and type(d.event) is AnnounceAccepted),
    ("scrape", (), "dynamic", {}, scrape_request(CID, b"tid1", IH), scrape_reply),
    ("scrape, bad id", (), "dynamic", {}, scrape_request(b"\0" * 8, b"tid1", IH), silence),
    ("invalid request", (), "dynamic", {}, scrape_request(CID, b"tid1"), error_reply),
]  # fmt: skip


@pytest.mark.parametrize(
    ("events", "mode", "changes", "datagram", "check"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_decision_table(
    events: tuple[object, ...],
    mode: str,
    changes: dict[str, int],
    datagram: bytes,
    check: Callable[[object], object],
) -> None:
    tracker = tracker_with(*events, mode=mode, **changes)
    before = tracker.state.snapshot()
    result = check(decide(tracker, datagram))
    assert result is None or result is True
    assert tracker.state.snapshot() == before  # deciding changes nothing


def test_an_accepted_announce_is_answered_from_the_state_after_its_fold() -> None:
    tracker = tracker_with()
    commit = decide(tracker, announce())
    assert type(commit) is Commit
    tracker.state.apply(1, commit.event)
    reply = parse_announce_response(commit.answer(commit.context))
    assert (reply.transaction_id, reply.leechers, reply.seeders) == (b"tid1", 1, 0)


def test_announce_overtaken_by_a_flag_before_its_commit_is_told_the_torrent_is_flagged() -> None:
    # Regression: the announce was decided before the flag was applied, so the fold
    # ignored it, yet the client got a normal reply with zero counts.
    tracker = tracker_with()
    commit = decide(tracker, announce())
    assert type(commit) is Commit and type(commit.event) is AnnounceAccepted
    tracker.state.apply(1, TorrentFlagged(NOW_MS, IH, "alice"))  # committed first
    tracker.state.apply(2, commit.event)
    assert parse_error_response(commit.answer(commit.context)).message == "torrent flagged."
    assert len(tracker.state.torrents[IH].swarm) == 0


CHANGES = [
    (Change.ADD, (), TorrentAdded),
    (Change.ADD, (FLAGGED,), TorrentAdded),  # adding keeps the flag (the fold does)
    (Change.FLAG, (), TorrentFlagged),
    (Change.UNFLAG, (FLAGGED,), TorrentUnflagged),
    (Change.UNFLAG, (), TorrentUnflagged),
    (Change.DROP, (ADDED,), TorrentDropped),
    (Change.DROP, (), None),  # nothing to drop
]


@pytest.mark.parametrize(("change", "events", "recorded"), CHANGES)
def test_admin_change_table(
    change: Change, events: tuple[object, ...], recorded: type | None
) -> None:
    tracker = tracker_with(*events)
    commit = tracker.decide_change(change, IH, "alice", NOW_MS, lambda key: key.hex())
    if recorded is None:
        assert commit is None
        return
    assert commit is not None
    assert commit.event == recorded(NOW_MS, IH, "alice")
    assert commit.answer(commit.context) == IH.hex()


def test_adding_a_flagged_torrent_keeps_it_flagged() -> None:
    tracker = tracker_with(FLAGGED)
    commit = tracker.decide_change(Change.ADD, IH, "bob", NOW_MS, lambda key: None)
    assert commit is not None
    tracker.state.apply(2, commit.event)
    assert tracker.state.torrents[IH].flagged


def test_a_sweep_is_decided_only_when_it_would_change_something() -> None:
    timeout_ms = 60_000
    tracker = tracker_with(peer_timeout_ms=timeout_ms)
    assert tracker.sweep(NOW_MS) is None  # nothing to expire: not worth an event
    commit = decide(tracker, announce())
    assert type(commit) is Commit
    tracker.state.apply(1, commit.event)
    assert tracker.sweep(NOW_MS + timeout_ms - 1) is None
    sweep = tracker.sweep(NOW_MS + timeout_ms + 1)
    assert type(sweep) is PeersExpired
    assert sweep.peer_cutoff_ms == NOW_MS + 1
