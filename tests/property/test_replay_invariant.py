"""The invariant everything serves: the projections are a pure fold of the log (docs/DESIGN.md §1).

For random but realistic logs (``tracker_histories``):

* folding everything equals restoring the snapshot taken after ANY prefix and
  folding the rest (decoded from its records), byte for byte
  (``TrackerState.snapshot()``), and snapshot -> restore -> snapshot is the identity;
  the states are also compared field by field, without ``snapshot()``, so a
  field the snapshot leaves out is caught even when both sides leave it out alike;
* the fold agrees, after every event, with a naive reference model written
  straight from docs/PROTOCOL.md §6, so a consistent but wrong rule (a completion
  counted twice, expiry off by one) fails here too, not only in the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings

from tests.strategies import tracker_histories
from udpt.events.codec import decode_event, encode_event
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)
from udpt.projections import TrackerState
from udpt.projections.swarms import Swarm, peer_views


def contents(value: object) -> object:
    """Everything ``value`` holds, read through its slots or public attributes, dicts in order."""
    if isinstance(value, dict):
        return [(key, contents(item)) for key, item in value.items()]
    if isinstance(value, Swarm):  # the compiled one has no slots to read: its peers, in order
        return "Swarm", value.items()
    names = getattr(type(value), "__slots__", None) or [
        name for name in getattr(value, "__dict__", {}) if not name.startswith("_")
    ]
    if names:
        return type(value).__name__, [(name, contents(getattr(value, name))) for name in names]
    return value


def everything_in(state: TrackerState) -> dict[str, object]:
    """The whole state, read without ``snapshot()``: proves the snapshot leaves nothing out.

    Peer order is part of the state (expiry reads it); the order of the torrent
    registry is not (restore rebuilds it sorted), so torrents are compared sorted.
    """
    _, fields = contents(state)  # type: ignore[misc]
    view = dict(fields)
    view["torrents"] = sorted(view["torrents"])  # type: ignore[call-overload]
    return view


@settings(max_examples=150, deadline=None)  # correctness, not speed: CI machines are shared
@given(tracker_histories())
def test_a_snapshot_at_any_prefix_plus_the_rest_equals_the_whole_fold(events: list[Event]) -> None:
    """The rest is folded from decoded records, as a restart replays the tail of the log."""
    live = TrackerState()
    snapshots, views = [live.snapshot()], [everything_in(live)]
    for seq, event in enumerate(events, 1):
        live.apply(seq, event)
        snapshots.append(live.snapshot())
        views.append(everything_in(live))
    replayed = [decode_event(encode_event(event)) for event in events]
    for taken_after, snapshot in enumerate(snapshots):
        restored = TrackerState.restore(snapshot)
        assert restored.snapshot() == snapshot, f"restore is not exact after {taken_after} events"
        assert everything_in(restored) == views[taken_after], f"snapshot {taken_after} lost state"
        for seq in range(taken_after + 1, len(events) + 1):
            restored.apply(seq, replayed[seq - 1])
        assert restored.snapshot() == snapshots[-1], f"snapshot {taken_after} + the rest differs"
        assert everything_in(restored) == views[-1], f"snapshot {taken_after} + the rest differs"


@dataclass
class ModelTorrent:
    flagged: bool = False
    registered: bool = False
    completed: int = 0
    last_announce_ms: int = 0
    # (ip, port) -> (peer_id, key, last_seen, uploaded, downloaded, left, event, completed_flag)
    peers: dict[tuple[bytes, int], tuple] = field(default_factory=dict)


@dataclass
class Model:
    """docs/PROTOCOL.md §6 and the event docstrings, as plainly as possible: no ordering tricks."""

    torrents: dict[bytes, ModelTorrent] = field(default_factory=dict)
    peers_expired: int = 0

    def apply(self, e: Event) -> None:
        if isinstance(e, AnnounceAccepted):
            self.announced(e)
        elif isinstance(e, TorrentAdded | TorrentUnflagged):
            torrent = self.torrents.setdefault(e.info_hash, ModelTorrent())
            torrent.registered = True
            torrent.flagged = False if isinstance(e, TorrentUnflagged) else torrent.flagged
        elif isinstance(e, TorrentFlagged):
            torrent = self.torrents.setdefault(e.info_hash, ModelTorrent())
            torrent.flagged = torrent.registered = True
            torrent.peers.clear()
        elif isinstance(e, TorrentDropped):
            self.torrents.pop(e.info_hash, None)
        elif isinstance(e, TorrentImported):
            torrent = self.torrents.setdefault(e.info_hash, ModelTorrent())
            torrent.registered, torrent.flagged, torrent.completed = True, e.is_flagged, e.completed
            if e.is_flagged:
                torrent.peers.clear()
        elif isinstance(e, PeersExpired):
            self.expired(e)
        else:
            assert isinstance(e, AnnounceRefused)

    def announced(self, e: AnnounceAccepted) -> None:
        torrent = self.torrents.get(e.info_hash)
        who = (e.ip, e.port)
        if e.event == AnnounceEvent.STOPPED:
            if torrent is not None:
                torrent.peers.pop(who, None)
            return
        if torrent is None:
            torrent = self.torrents[e.info_hash] = ModelTorrent()
        if torrent.flagged:
            return
        before = torrent.peers.get(who)
        completed_flag = before is not None and before[7]
        if e.event == AnnounceEvent.COMPLETED and e.left == 0 and not completed_flag:
            torrent.completed += 1
            completed_flag = True
        fields = (e.peer_id, e.key, e.at_ms, e.uploaded, e.downloaded, e.left, e.event)
        torrent.peers[who] = (*fields, completed_flag)
        torrent.last_announce_ms = e.at_ms

    def expired(self, e: PeersExpired) -> None:
        for info_hash, torrent in list(self.torrents.items()):
            live = {who: peer for who, peer in torrent.peers.items() if peer[2] >= e.peer_cutoff_ms}
            self.peers_expired += len(torrent.peers) - len(live)
            torrent.peers = live
            idle = torrent.last_announce_ms < e.torrent_cutoff_ms
            remembered = torrent.peers or torrent.registered or torrent.flagged
            if e.torrent_cutoff_ms and idle and not remembered:
                del self.torrents[info_hash]


def view_of_state(state: TrackerState) -> dict[bytes, tuple]:
    view = {}
    for info_hash, torrent in state.torrents.items():
        peers = {(peer.ip, peer.port): tuple(peer)[2:] for peer in peer_views(torrent.swarm)}
        view[info_hash] = (
            torrent.flagged,
            torrent.registered,
            torrent.completed,
            torrent.last_announce_ms,
            torrent.swarm.seeders,
            torrent.swarm.leechers,
            peers,
        )
    return view


def view_of_model(model: Model) -> dict[bytes, tuple]:
    view = {}
    for info_hash, torrent in model.torrents.items():
        seeders = sum(peer[5] == 0 for peer in torrent.peers.values())
        view[info_hash] = (
            torrent.flagged,
            torrent.registered,
            torrent.completed,
            torrent.last_announce_ms,
            seeders,
            len(torrent.peers) - seeders,
            torrent.peers,
        )
    return view


@settings(max_examples=150, deadline=None)  # correctness, not speed: CI machines are shared
@given(tracker_histories())
def test_the_fold_agrees_with_a_reference_model_after_every_event(events: list[Event]) -> None:
    state, model = TrackerState(), Model()
    for seq, event in enumerate(events, 1):
        state.apply(seq, event)
        model.apply(event)
        assert view_of_state(state) == view_of_model(model), f"after event {seq}: {event}"
        assert state.stats.peers_expired == model.peers_expired
