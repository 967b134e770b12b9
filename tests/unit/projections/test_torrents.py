"""A torrent's fields, read and set as the fold, the API and snapshots do, in both cores.

``udpt._core.Torrent`` (the compiled core's: one object that is its own swarm) must
behave as the reference ``TorrentPy`` wherever it is used in its place.
"""

from __future__ import annotations

import importlib

import pytest

from udpt.core import COMPILED
from udpt.events.types import AnnounceAccepted
from udpt.projections.torrents import TorrentPy

KINDS = [TorrentPy]
if COMPILED:
    KINDS.append(importlib.import_module("udpt._core").Torrent)

PEER = bytes([10, 0, 0, 1, 0x1A, 0xE1])


def announce(at_ms: int) -> AnnounceAccepted:
    return AnnounceAccepted(at_ms, bytes(20), PEER[:4], 6881, bytes(20), 0, 2, 0, 0, 100)


@pytest.fixture(params=KINDS, ids=lambda kind: kind.__module__)
def kind(request: pytest.FixtureRequest) -> type[TorrentPy]:
    made: type[TorrentPy] = request.param
    return made


def test_a_new_torrent_knows_nothing_and_may_be_forgotten(kind: type[TorrentPy]) -> None:
    torrent = kind()
    assert (torrent.flagged, torrent.registered, torrent.completed) == (False, False, 0)
    assert torrent.last_announce_ms == 0 and len(torrent.swarm) == 0
    assert torrent.is_forgettable(1)
    assert not torrent.is_forgettable(0)  # announced at the cutoff: kept


def test_fields_given_and_set_are_read_back(kind: type[TorrentPy]) -> None:
    biggest = (1 << 64) - 1  # what a snapshot holds
    torrent = kind(flagged=True, registered=False, completed=biggest, last_announce_ms=-5)
    assert (torrent.flagged, torrent.registered, torrent.completed) == (True, False, biggest)
    assert torrent.last_announce_ms == -5
    torrent.flagged, torrent.registered = False, True
    torrent.completed = 7
    torrent.last_announce_ms = 1_764_720_000_000
    assert (torrent.flagged, torrent.registered, torrent.completed) == (False, True, 7)
    assert torrent.last_announce_ms == 1_764_720_000_000
    assert torrent.flagged is False and torrent.registered is True


@pytest.mark.parametrize("field", ["flagged", "registered"])
def test_a_flag_or_a_registration_keeps_a_torrent_with_no_peers(
    kind: type[TorrentPy], field: str
) -> None:
    torrent = kind()
    setattr(torrent, field, True)
    assert not torrent.is_forgettable(1)


def test_a_torrent_with_peers_is_kept_and_its_swarm_is_its_own(kind: type[TorrentPy]) -> None:
    torrent, other = kind(), kind()
    torrent.swarm.announce(PEER, announce(10))
    assert PEER in torrent.swarm and torrent.swarm.leechers == 1
    assert len(other.swarm) == 0
    assert not torrent.is_forgettable(1 << 40)
    assert torrent.swarm is torrent.swarm
