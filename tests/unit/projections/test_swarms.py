"""The peer record's owner: the seeder rule, upserts through ``Swarm.announce``, views."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpt.events.types import AnnounceAccepted, AnnounceEvent
from udpt.projections import TrackerState
from udpt.projections.swarms import (
    INDEXED_SWARM,
    PeerStatus,
    PeerView,
    Swarm,
    SwarmPy,
    find_peer,
    peer_status,
    peer_views,
)

NONE, COMPLETED, STARTED, STOPPED = AnnounceEvent
IH = bytes(range(20))
PEER_ID = b"-TR4050-abcdefghijkl"

# (event, left) -> status: docs/PROTOCOL.md §6.2 (left == 0 seeds, anything else leeches) and §6.4.
STATUS_CASES = [
    (NONE, 0, PeerStatus.SEEDER),
    (NONE, 1, PeerStatus.LEECHER),
    (NONE, -1, PeerStatus.LEECHER),
    (STARTED, 0, PeerStatus.SEEDER),
    (STARTED, 16384, PeerStatus.LEECHER),
    (COMPLETED, 0, PeerStatus.SEEDER),
    (COMPLETED, 5, PeerStatus.LEECHER),
    (STOPPED, 0, PeerStatus.STOPPED),
    (STOPPED, 5, PeerStatus.STOPPED),
]


@pytest.mark.parametrize(("event", "left", "expected"), STATUS_CASES)
def test_peer_status_from_event_and_left(
    event: AnnounceEvent, left: int, expected: PeerStatus
) -> None:
    assert peer_status(event, left) is expected


@pytest.mark.parametrize(("event", "left", "expected"), STATUS_CASES)
def test_the_fold_files_a_peer_where_peer_status_says(
    event: AnnounceEvent, left: int, expected: PeerStatus
) -> None:
    """The fold inlines the rule for speed; this keeps the two from drifting apart."""
    state = TrackerState()
    ip, port = bytes([192, 0, 2, 1]), 6881
    state.apply(1, AnnounceAccepted(1_000, IH, ip, port, PEER_ID, 7, STARTED, 0, 0, 9))
    state.apply(2, AnnounceAccepted(2_000, IH, ip, port, PEER_ID, 7, event, 0, 0, left))
    found = find_peer(state.torrents[IH].swarm, ip + port.to_bytes(2, "big"))
    if expected is PeerStatus.STOPPED:
        assert found is None
    else:
        assert found is not None
        assert found.seeder is (expected is PeerStatus.SEEDER)


def test_announce_counts_a_completion_once_per_entry() -> None:
    swarm = Swarm()
    peer = bytes([10, 0, 0, 1, 0x1A, 0xE1])

    def announce(at_ms: int, event: AnnounceEvent, left: int) -> bool:
        e = AnnounceAccepted(at_ms, IH, peer[:4], 6881, PEER_ID, 7, event, 1, 2, left)
        return swarm.announce(peer, e)

    assert announce(1, STARTED, 10) is False
    assert announce(2, COMPLETED, 5) is False  # left > 0: a plain update
    assert announce(3, COMPLETED, 0) is True
    assert announce(4, COMPLETED, 0) is False  # a repeated completion counts once
    assert find_peer(swarm, peer) == PeerView(peer, True, PEER_ID, 7, 4, 1, 2, 0, COMPLETED, True)


def test_peer_views_name_every_field_in_table_order() -> None:
    swarm = Swarm()
    v4 = bytes([10, 0, 0, 1, 0, 80])
    v6 = bytes(15) + b"\x01" + b"\x00\x51"
    for at_ms, peer, left in ((1, v6, 0), (2, v4, 9), (3, v4, 9)):
        ip = peer[:-2]
        swarm.announce(peer, AnnounceAccepted(at_ms, IH, ip, 0, PEER_ID, 3, NONE, 4, 5, left))
    views = list(peer_views(swarm))
    assert [(view.ip, view.port, view.seeder) for view in views] == [
        (v4[:4], 80, False),
        (v6[:16], 81, True),
    ]
    assert views[0] == PeerView(v4, False, PEER_ID, 3, 3, 4, 5, 9, NONE, False)


# A few sources, each with up to 40 ports, in both families (so a swarm grows past
# INDEXED_SWARM); two of the IPv6 ones share their first 8 bytes.
SOURCES = (
    [bytes([10, 0, 0, n]) for n in range(3)]
    + [bytes([0x20, 1, 0xD, 0xB8] + [0] * 4) + bytes([0] * 7 + [n]) for n in range(2)]
    + [bytes([0x20, 1, 0xD, 0xB8, 0, 0, 0, 1] + [0] * 8)]
)
CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["announce"] * 8 + ["remove", "expire"]),
        st.sampled_from(SOURCES),
        st.integers(1, 40),
    ),
    min_size=100,
    max_size=300,
)


def _counted(swarm: Swarm, ip: bytes, prefix: int) -> int:
    return sum(
        1
        for view in peer_views(swarm)
        if len(view.ip) == len(ip) and view.ip[:prefix] == ip[:prefix]
    )


@settings(max_examples=60, deadline=None)
@given(CHANGES, st.sampled_from([(4, 8), (3, 16)]))
def test_peers_from_a_source_agree_with_a_count_of_the_swarm(
    changes: list[tuple[str, bytes, int]], prefixes: tuple[int, int]
) -> None:
    """Small swarms are scanned, big ones keep counts per source: both must give the truth."""
    swarm = Swarm()
    for now, (change, ip, port) in enumerate(changes, start=1):
        peer = ip + port.to_bytes(2, "big")
        if change == "announce":
            swarm.announce(peer, AnnounceAccepted(now, IH, ip, port, PEER_ID, 0, NONE, 0, 0, 1))
        elif change == "remove":
            swarm.remove(peer)
        elif change == "expire":
            swarm.expire(now - 5 * port)
        prefix = prefixes[len(ip) != 4]
        assert swarm.peers_from(ip, *prefixes) == _counted(swarm, ip, prefix)


def test_a_big_reference_swarm_counts_its_sources_without_scanning_them() -> None:
    swarm = SwarmPy()
    ip = bytes([10, 0, 0, 1])
    for port in range(1, INDEXED_SWARM + 1):
        swarm.announce(
            ip + port.to_bytes(2, "big"),
            AnnounceAccepted(port, IH, ip, port, PEER_ID, 0, NONE, 0, 0, 1),
        )
    assert swarm.peers_from(ip, 4, 8) == INDEXED_SWARM
    swarm.leechers4.clear()  # behind the fold's back: a count that scanned would see 0
    assert swarm.peers_from(ip, 4, 8) == INDEXED_SWARM
    assert swarm.peers_from(ip, 3, 8) == 0  # other prefixes: counted again, from the tables
