"""The history of one torrent: every event that concerned it, and its state at the end."""

from __future__ import annotations

from dataclasses import dataclass

from udpt.events.log import LogReader
from udpt.events.types import Event, PeersExpired
from udpt.history.folding import Fold, Progress
from udpt.history.recovery import replay
from udpt.projections import TrackerState
from udpt.projections.swarms import PeerView, peer_views
from udpt.projections.torrents import Torrent

__all__ = ["HistoryEntry", "TorrentHistory", "peers_of", "torrent_history"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """An event that concerned the torrent. For an expiry: what it did to this torrent."""

    seq: int
    event: Event
    peers_expired: int = 0
    forgotten: bool = False


@dataclass(slots=True)
class TorrentHistory:
    info_hash: bytes
    as_of_seq: int
    entries: list[HistoryEntry]
    torrent: Torrent | None
    """Its state at ``as_of_seq``; None when the tracker did not know it then."""
    complete: bool
    """False when events are missing from the log: the history has holes."""


def peers_of(torrent: Torrent) -> list[PeerView]:
    """The swarm's peers, most recently seen first."""
    return sorted(peer_views(torrent.swarm), key=lambda peer: peer.last_seen_ms, reverse=True)


def torrent_history(
    log: LogReader, info_hash: bytes, to_seq: int | None = None, progress: Progress | None = None
) -> TorrentHistory:
    """Every event about ``info_hash`` up to ``to_seq``, and the torrent's state there.

    Torrents never affect one another in the fold, so folding only this
    torrent's events and the expiries gives its exact state without building
    everybody else's. If events are missing (a damaged or pruned log), the
    state comes from a replay (snapshot + tail) instead; admin events are kept
    when their batches are pruned, so those before the log's first event still
    say who changed what.
    """
    state = TrackerState()
    run = Fold(
        log,
        state,
        to_seq,
        wanted=lambda event: isinstance(event, PeersExpired) or event.info_hash == info_hash,
        progress=progress,
    )
    first = log.first_seq()
    entries = [
        HistoryEntry(seq, event)
        for seq, event in log.admin_events(1, first - 1 if first else None)
        if getattr(event, "info_hash", None) == info_hash
    ]
    known, peers = False, 0  # the torrent as the previous event left it
    for seq, event in run:
        after = state.torrents.get(info_hash)
        peers_after = len(after.swarm) if after is not None else 0
        if isinstance(event, PeersExpired):
            if peers_after < peers or (known and after is None):
                entries.append(HistoryEntry(seq, event, peers - peers_after, after is None))
        elif event.info_hash == info_hash:
            entries.append(HistoryEntry(seq, event))
        known, peers = after is not None, peers_after
    complete = not run.missing
    if not complete:
        state = replay(log, run.end).state
    return TorrentHistory(info_hash, run.end, entries, state.torrents.get(info_hash), complete)
