"""Announce and admin semantics of the projections (docs/PROTOCOL.md §6, cases D14-D26)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings

from tests.strategies import tracker_histories
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
from udpt.projections import SnapshotError, TrackerState
from udpt.projections.state import _HEADER, _TORRENT, SWEEP_CHECK_LIMIT
from udpt.projections.swarms import find_peer, peer_views
from udpt.projections.time_index import BUCKET_MS

NONE, COMPLETED, STARTED, STOPPED = AnnounceEvent
IH1, IH2 = b"\x11" * 20, b"\x22" * 20
PEER_A, PEER_B = b"-qB4630-" + b"A" * 12, b"-TR4050-" + b"B" * 12
IP1, IP2 = bytes([127, 0, 0, 1]), bytes([10, 0, 0, 2])
IP6 = bytes(15) + b"\x01"
P1, P2, P3, P6 = (IP1, 6881), (IP1, 6882), (IP2, 6881), (IP6, 6881)
T0 = 1_700_000_000_000
PEER_TIMEOUT_MS = 2_700_000


def announce(
    peer: tuple[bytes, int] = P1,
    event: AnnounceEvent = NONE,
    left: int = 1000,
    *,
    at: int = T0,
    ih: bytes = IH1,
    peer_id: bytes = PEER_A,
) -> AnnounceAccepted:
    ip, port = peer
    return AnnounceAccepted(at, ih, ip, port, peer_id, 0x0BADCAFE, event, 10, 20, left)


def fold(*events: Event) -> TrackerState:
    state = TrackerState()
    for seq, event in enumerate(events, 1):
        state.apply(seq, event)
    return state


def counts(state: TrackerState, ih: bytes = IH1) -> tuple[int, int, int] | None:
    """(seeders, leechers, completed) as a scrape would report them; None for an unknown hash."""
    torrent = state.torrents.get(ih)
    if torrent is None:
        return None
    return torrent.swarm.seeders, torrent.swarm.leechers, torrent.completed


def peers(state: TrackerState, ih: bytes = IH1) -> set[tuple[bytes, int]]:
    torrent = state.torrents[ih]
    return {
        (compact[:-2], int.from_bytes(compact[-2:], "big"))
        for compact, _, _ in torrent.swarm.items()
    }


def record(state: TrackerState, peer: tuple[bytes, int], ih: bytes = IH1) -> tuple:
    """(peer_id, key, last_seen_ms, uploaded, downloaded, left, event, completed_flag)."""
    ip, port = peer
    found = find_peer(state.torrents[ih].swarm, ip + port.to_bytes(2, "big"))
    assert found is not None, f"{peer} is not in the swarm"
    return tuple(found)[2:]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([announce(P1, STARTED)], (0, 1, 0), id="D1-first-leecher"),
        pytest.param([announce(P1, STARTED), announce(P2, STARTED)], (0, 2, 0), id="D2"),
        pytest.param([announce(P1), announce(P1)], (0, 1, 0), id="D3-reannounce"),
        pytest.param([announce(P1), announce(P2), announce(P1, STOPPED)], (0, 1, 0), id="D14"),
        pytest.param(
            [announce(P1, STARTED, 1000), announce(P1, COMPLETED, 0)], (1, 0, 1), id="D16"
        ),
        pytest.param(
            [announce(P1, STARTED, 1000), *[announce(P1, COMPLETED, 0)] * 3],
            (1, 0, 1),
            id="D17-repeated-completed-counts-once",
        ),
        pytest.param(
            [announce(P1, STARTED, 1000), announce(P1, COMPLETED, 500)],
            (0, 1, 0),
            id="D18-completed-with-left-is-not-counted",
        ),
        pytest.param(
            [announce(P1, STARTED, 0), announce(P1, NONE, 0)],
            (1, 0, 0),
            id="D19-started-as-seeder-is-not-counted",
        ),
        pytest.param([announce(P1, COMPLETED, 0)], (1, 0, 1), id="D20-unknown-peer-counts"),
        pytest.param(
            [
                announce(P1, STARTED, 1000),
                announce(P1, COMPLETED, 0),
                announce(P1, STOPPED, 0),
                announce(P1, STARTED, 1000),
                announce(P1, COMPLETED, 0),
            ],
            (1, 0, 2),
            id="D21-counts-again-after-stopped",
        ),
        pytest.param([announce(P1, left=0), announce(P1, left=1000)], (0, 1, 0), id="D22"),
        pytest.param(
            [announce(P1, peer_id=PEER_A), announce(P2, peer_id=PEER_A)],
            (0, 2, 0),
            id="D23-same-peer-id-other-port",
        ),
        pytest.param(
            [announce(P1, peer_id=PEER_A), announce(P1, peer_id=PEER_B)],
            (0, 1, 0),
            id="D24-same-ip-port-new-peer-id",
        ),
        pytest.param([announce(P1), announce(P3)], (0, 2, 0), id="same-port-other-ip"),
        pytest.param([announce(P1), announce(P6)], (0, 2, 0), id="ipv4-and-ipv6-are-two"),
        pytest.param([announce(P1, left=-1)], (0, 1, 0), id="left-negative-is-leecher"),
        pytest.param([announce(P1, left=16384)], (0, 1, 0), id="left-no-metadata-is-leecher"),
        pytest.param(
            [announce(P1, COMPLETED, 0), announce(P2, COMPLETED, 0), announce(P6, COMPLETED, 0)],
            (3, 0, 3),
            id="each-entry-counts-once",
        ),
        pytest.param(
            [
                announce(P1, STARTED, 1000),
                announce(P1, COMPLETED, 0),
                announce(P1, NONE, 1000),  # failed recheck: a leecher again
                announce(P1, COMPLETED, 0),
            ],
            (1, 0, 1),
            id="the-entry-keeps-its-completed-flag",
        ),
        pytest.param(
            [
                announce(P1, COMPLETED, 0, peer_id=PEER_A),
                announce(P1, COMPLETED, 0, peer_id=PEER_B),
            ],
            (1, 0, 1),
            id="client-restart-on-same-ip-port-counts-once",
        ),
        pytest.param(
            [announce(P1, STARTED, 1000), announce(P1, STOPPED, 0)],
            (0, 0, 0),
            id="stopped-with-left-0-is-not-a-completion",
        ),
        pytest.param(
            [announce(P1), announce(P2, STOPPED)], (0, 1, 0), id="stopped-from-unknown-peer"
        ),
        pytest.param(
            [announce(P1, left=0), announce(P1, STOPPED, 0), announce(P1, STOPPED, 0)],
            (0, 0, 0),
            id="stopped-twice",
        ),
    ],
)
def test_announces(events: list[Event], expected: tuple[int, int, int]) -> None:
    assert counts(fold(*events)) == expected


def test_the_entry_keeps_the_newest_announce() -> None:
    """D24: a new peer_id on the same ip:port replaces the entry and refreshes all it holds."""
    newer = AnnounceAccepted(T0 + 5, IH1, IP1, 6881, PEER_B, 77, STARTED, 300, 400, 500)
    state = fold(announce(P1, peer_id=PEER_A), newer)
    assert record(state, P1) == (PEER_B, 77, T0 + 5, 300, 400, 500, STARTED, 0)
    assert state.torrents[IH1].last_announce_ms == T0 + 5


def test_stopped_on_an_unknown_hash_does_not_create_the_torrent() -> None:
    """D15: scrape of that hash still shows nothing known."""
    state = fold(announce(P1, STOPPED, ih=IH2))
    assert counts(state, IH2) is None
    assert state.torrents == {}


def test_a_refused_announce_changes_nothing_but_is_counted() -> None:
    refused = AnnounceRefused(T0, IH2, IP1, 6881, PEER_A, RefusalReason.NOT_REGISTERED)
    state = fold(announce(P1), refused)
    assert IH2 not in state.torrents
    assert counts(state) == (0, 1, 0)
    assert state.stats.by_kind["AnnounceRefused"] == 1
    assert state.stats.by_kind["AnnounceAccepted"] == 1


def test_a_flag_clears_the_peers_keeps_the_torrent_and_ignores_later_announces() -> None:
    state = fold(
        announce(P1, COMPLETED, 0),
        announce(P2),
        TorrentFlagged(T0 + 1, IH1, "admin"),
        announce(P3, at=T0 + 2),
        announce(P1, STOPPED, at=T0 + 3),
    )
    torrent = state.torrents[IH1]
    assert (torrent.flagged, torrent.registered) == (True, True)
    assert counts(state) == (0, 0, 1)
    assert torrent.last_announce_ms == T0


def test_flagging_an_unknown_hash_remembers_the_flag() -> None:
    state = fold(TorrentFlagged(T0, IH2, "admin"), announce(P1, ih=IH2))
    assert state.torrents[IH2].flagged
    assert counts(state, IH2) == (0, 0, 0)


def test_unflag_registers_the_torrent_and_announces_are_taken_again() -> None:
    state = fold(
        TorrentFlagged(T0, IH1, "admin"),
        TorrentUnflagged(T0 + 1, IH1, "admin"),
        TorrentUnflagged(T0 + 2, IH2, "admin"),
        announce(P1, at=T0 + 3),
    )
    assert (state.torrents[IH1].flagged, state.torrents[IH1].registered) == (False, True)
    assert (state.torrents[IH2].flagged, state.torrents[IH2].registered) == (False, True)
    assert counts(state) == (0, 1, 0)


def test_add_registers_and_keeps_what_was_known() -> None:
    state = fold(announce(P1, COMPLETED, 0), TorrentAdded(T0 + 1, IH1, "admin"))
    assert state.torrents[IH1].registered
    assert not state.torrents[IH1].flagged
    assert counts(state) == (1, 0, 1)


def test_drop_forgets_peers_counter_flag_and_registration() -> None:
    state = fold(
        announce(P1, COMPLETED, 0),
        TorrentFlagged(T0 + 1, IH1, "admin"),
        TorrentDropped(T0 + 2, IH1, "admin"),
    )
    assert counts(state) is None
    state.apply(4, announce(P1, COMPLETED, 0, at=T0 + 3))
    torrent = state.torrents[IH1]
    assert (torrent.flagged, torrent.registered) == (False, False)
    assert counts(state) == (1, 0, 1)


def test_dropping_an_unknown_hash_is_harmless() -> None:
    state = fold(announce(P1), TorrentDropped(T0, IH2, "admin"))
    assert list(state.torrents) == [IH1]


@pytest.mark.parametrize("flagged", [False, True])
def test_import_sets_flag_and_completed_and_registers(flagged: bool) -> None:
    state = fold(
        announce(P1, COMPLETED, 0),
        announce(P2),
        TorrentImported(T0 + 1, IH1, flagged, 41, "import"),
    )
    torrent = state.torrents[IH1]
    assert (torrent.flagged, torrent.registered, torrent.completed) == (flagged, True, 41)
    assert len(torrent.swarm) == (0 if flagged else 2)


def test_a_completion_after_an_import_adds_to_the_imported_count() -> None:
    state = fold(
        TorrentImported(T0, IH1, False, 41, "import"), announce(P1, COMPLETED, 0, at=T0 + 1)
    )
    assert counts(state) == (1, 0, 42)


def expiry(now: int, torrent_cutoff_ms: int = 0) -> PeersExpired:
    return PeersExpired(now, now - PEER_TIMEOUT_MS, torrent_cutoff_ms)


def test_d25_a_peer_silent_longer_than_the_timeout_is_gone() -> None:
    now = T0 + 2_701_000
    state = fold(announce(P1), expiry(now), announce(P2, at=now))
    assert peers(state) == {P2}
    assert counts(state) == (0, 1, 0)
    assert state.stats.peers_expired == 1


def test_d26_a_peer_within_the_timeout_stays() -> None:
    now = T0 + 2_600_000
    state = fold(announce(P1), expiry(now), announce(P2, at=now))
    assert peers(state) == {P1, P2}


@pytest.mark.parametrize(("cutoff", "kept"), [(T0 - 1, True), (T0, True), (T0 + 1, False)])
def test_expiry_removes_peers_last_seen_strictly_before_the_cutoff(cutoff: int, kept: bool) -> None:
    state = fold(announce(P1, at=T0), PeersExpired(T0 + 10, cutoff, 0))
    assert peers(state) == ({P1} if kept else set())


def test_expiry_goes_by_the_last_announce_of_each_peer() -> None:
    """Every table of both families, seeders and leechers: a re-announce refreshes a peer."""
    state = fold(
        announce(P1, at=T0),
        announce(P2, left=0, at=T0 + 10),
        announce(P6, at=T0 + 10),
        announce(P3, left=0, at=T0 + 20),
        announce(P1, at=T0 + 30),
        announce((IP6, 1), left=0, at=T0 + 40),
        PeersExpired(T0 + 50, T0 + 25, 0),
    )
    assert peers(state) == {P1, (IP6, 1)}
    assert counts(state) == (1, 1, 0)
    assert state.stats.peers_expired == 3


def test_the_completed_counter_outlives_an_empty_swarm() -> None:
    """§6.3: without a torrent cutoff, an emptied torrent keeps its counter."""
    state = fold(announce(P1, COMPLETED, 0), expiry(T0 + PEER_TIMEOUT_MS + 1))
    assert counts(state) == (0, 0, 1)


IDLE = T0 + 100  # torrent cutoff: announces before it are idle


@pytest.mark.parametrize(
    ("events", "forgotten"),
    [
        pytest.param([announce(P1, STOPPED)], True, id="empty-unregistered-idle"),
        pytest.param([announce(P1)], True, id="its-peers-expire-in-the-same-sweep"),
        pytest.param([announce(P1, at=IDLE), announce(P1, STOPPED, at=IDLE)], False, id="not-idle"),
        pytest.param([announce(P1, at=IDLE - 1), announce(P1, STOPPED, at=IDLE)], True, id="idle"),
        pytest.param([TorrentAdded(T0, IH1, "admin")], False, id="registered"),
        pytest.param([TorrentFlagged(T0, IH1, "admin")], False, id="flagged"),
        pytest.param([TorrentUnflagged(T0, IH1, "admin")], False, id="unflagged"),
        pytest.param([TorrentImported(T0, IH1, False, 3, "import")], False, id="imported"),
    ],
)
def test_expiry_forgets_only_empty_unregistered_unflagged_idle_torrents(
    events: list[Event], forgotten: bool
) -> None:
    now = IDLE + PEER_TIMEOUT_MS + 1
    state = fold(*events, announce(P1, at=now, ih=IH2), PeersExpired(now, IDLE + 1, IDLE))
    assert (IH1 not in state.torrents) is forgotten
    assert IH2 in state.torrents


MANY = SWEEP_CHECK_LIMIT + 1  # more due than sweep_would_change looks at before it says yes


def many_hashes() -> list[bytes]:
    return [n.to_bytes(20, "big") for n in range(MANY)]


def test_a_tracker_whose_torrents_were_all_dropped_has_no_sweep_to_log() -> None:
    """An unneeded sweep is an event logged at every cleanup interval: torrents that are
    gone must not stay due in the indexes."""
    events: list[Event] = [announce(P1, ih=ih) for ih in many_hashes()]
    events += [TorrentDropped(T0 + 1, ih, "admin") for ih in many_hashes()]
    state = fold(*events)
    assert not state.torrents
    assert not state.sweep_would_change(expiry(T0 + 10 * PEER_TIMEOUT_MS, T0 + 5))


def test_a_tracker_whose_idle_torrents_were_forgotten_has_no_sweep_to_log() -> None:
    """Forgotten by the idle pass while still filed by their oldest peer, early."""
    events: list[Event] = [announce(P1, ih=ih) for ih in many_hashes()]
    events += [announce(P1, STOPPED, ih=ih) for ih in many_hashes()]
    state = fold(*events, PeersExpired(T0 + 10, T0 - BUCKET_MS, T0 + 1))
    assert not state.torrents
    assert not state.sweep_would_change(expiry(T0 + 10 * PEER_TIMEOUT_MS, T0 + 5))


def test_expiry_without_a_torrent_cutoff_forgets_no_torrent() -> None:
    state = fold(announce(P1), announce(P1, STOPPED), expiry(T0 + 10 * PEER_TIMEOUT_MS))
    assert counts(state) == (0, 0, 0)


def test_counts_never_go_negative_whatever_the_order() -> None:
    state = TrackerState()
    events = [
        announce(P1, STOPPED),
        announce(P1, left=0),
        announce(P1, STOPPED),
        announce(P1, STOPPED),
        announce(P2),
        TorrentFlagged(T0, IH1, "admin"),
        announce(P2, STOPPED),
        TorrentUnflagged(T0, IH1, "admin"),
        announce(P2, STOPPED),
        announce(P3, COMPLETED, 0),
        expiry(T0 + PEER_TIMEOUT_MS + 1),
        announce(P3, STOPPED),
        TorrentDropped(T0, IH1, "admin"),
        announce(P3, STOPPED),
    ]
    for seq, event in enumerate(events, 1):
        state.apply(seq, event)
        seeders, leechers, _ = counts(state) or (0, 0, 0)
        assert seeders >= 0 and leechers >= 0
    assert state.totals() == (0, 0, 0)


@settings(max_examples=50)
@given(tracker_histories())
def test_counts_always_match_the_live_peers(events: list[Event]) -> None:
    state = TrackerState()
    for seq, event in enumerate(events, 1):
        state.apply(seq, event)
        for torrent in state.torrents.values():
            swarm = torrent.swarm
            seeders = sum(peer.left == 0 for peer in peer_views(swarm))
            assert swarm.seeders == seeders >= 0
            assert swarm.leechers == len(swarm) - seeders >= 0
    assert state.peer_count() == sum(state.totals()[:2])


def test_stats_count_events_by_kind() -> None:
    state = fold(
        announce(P1),
        announce(P2),
        TorrentAdded(T0, IH2, "admin"),
        PeersExpired(T0, 0, 0),
    )
    kinds = {kind: n for kind, n in state.stats.by_kind.items() if n}
    assert kinds == {"AnnounceAccepted": 2, "TorrentAdded": 1, "PeersExpired": 1}
    assert state.last_seq == 4


@pytest.mark.parametrize("seq", [3, 2])
def test_an_event_applied_out_of_order_is_refused_and_changes_nothing(seq: int) -> None:
    state = fold(announce(P1), announce(P2), announce(P3))
    before = state.snapshot()
    with pytest.raises(ValueError):
        state.apply(seq, announce(P6))
    assert state.snapshot() == before


def test_a_restored_snapshot_answers_like_the_original() -> None:
    state = fold(
        announce(P1, COMPLETED, 0),
        announce(P6, at=T0 + 1),
        TorrentImported(T0 + 2, IH2, True, 9, "import"),
        expiry(T0 + 3),
    )
    restored = TrackerState.restore(state.snapshot())
    assert (counts(restored), counts(restored, IH2)) == ((1, 1, 1), (0, 0, 9))
    assert record(restored, P6) == record(state, P6)
    assert restored.stats.by_kind == state.stats.by_kind
    assert restored.last_seq == 4


def test_a_restored_state_folds_later_events_like_the_original() -> None:
    """Every field a later event reads survives the snapshot: an entry's completed flag, the
    order of peers by last announce (expiry), last announce time, registration and flag."""
    ih_recent, ih_registered, ih_flagged = b"\x33" * 20, b"\x44" * 20, b"\x55" * 20
    before: list[Event] = [
        announce(P1, COMPLETED, 0, at=T0),
        announce(P2, at=T0 + 1),
        announce(P3, at=T0 + 2),
        announce(P2, at=T0 + 3),  # P2 is now the newest leecher
        announce(P1, at=T0 + 4, ih=IH2),
        announce(P1, STOPPED, at=T0 + 5, ih=IH2),  # IH2: empty, idle since T0 + 4
        announce(P1, at=T0 + 6, ih=ih_recent),
        announce(P1, STOPPED, at=T0 + 7, ih=ih_recent),  # empty, idle since T0 + 6
        TorrentAdded(T0 + 7, ih_registered, "admin"),
        TorrentFlagged(T0 + 7, ih_flagged, "admin"),
    ]
    after: list[Event] = [
        announce(P1, COMPLETED, 0, at=T0 + 10),  # completed once already: not counted again
        announce(P1, at=T0 + 10, ih=ih_flagged),  # ignored
        PeersExpired(T0 + 11, T0 + 3, T0 + 5),  # P3 goes, P2 stays; only IH2 is forgotten
    ]
    live = fold(*before, *after)
    restored = TrackerState.restore(fold(*before).snapshot())
    for seq, event in enumerate(after, len(before) + 1):
        restored.apply(seq, event)
    assert restored.snapshot() == live.snapshot()
    assert counts(restored) == (1, 1, 1)
    assert peers(restored) == {P1, P2}
    assert sorted(restored.torrents) == sorted([IH1, ih_recent, ih_registered, ih_flagged])
    assert counts(restored, ih_flagged) == (0, 0, 0)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: b"NOTASNAP" + data[8:],
        lambda data: data[:8] + b"\x02" + data[9:],  # a future snapshot version
        lambda data: data[:-1],
        lambda data: data[: len(data) // 2],
        lambda data: data + b"\x00",
    ],
    ids=["empty", "magic", "version", "cut-1", "cut-half", "trailing"],
)
def test_damaged_snapshots_raise_snapshot_error(damage: Callable[[bytes], bytes]) -> None:
    data = fold(announce(P1), announce(P6), TorrentAdded(T0, IH2, "admin")).snapshot()
    with pytest.raises(SnapshotError):
        TrackerState.restore(damage(data))


def test_a_snapshot_that_holds_a_torrent_twice_raises_snapshot_error() -> None:
    """Restored torrent by torrent, the second of one hash is refused, not a replacement."""
    data = fold(TorrentAdded(T0, IH2, "admin")).snapshot()
    torrent = data[-_TORRENT.size :]  # registered, no peers: its head is all of it
    magic, version, last_seq, count = _HEADER.unpack_from(data)
    twice = _HEADER.pack(magic, version, last_seq, count + 1) + data[_HEADER.size :] + torrent
    with pytest.raises(SnapshotError, match="twice"):
        TrackerState.restore(twice)
