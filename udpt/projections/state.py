"""The live state of the tracker as a pure fold of the event log.

``TrackerState.apply(seq, event)`` is the only thing that changes it, one
small handler per event type. Nothing here reads a clock, a random source or
configuration: everything an event needs (times, cutoffs) is in the event.
So folding a log gives the same state live, on replay, and from a snapshot
plus the tail — ``snapshot()`` bytes are the proof (docs/DESIGN.md §1).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from udpt.events.types import (
    EVENT_TYPES,
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
from udpt.projections.stats import Stats
from udpt.projections.swarms import FLAG_OFFSET, PEER
from udpt.projections.time_index import TimeIndex
from udpt.projections.torrents import Torrent

__all__ = ["SnapshotError", "TrackerState"]

_STOPPED = AnnounceEvent.STOPPED
_COMPLETED = AnnounceEvent.COMPLETED

SNAPSHOT_MAGIC = b"UDPTSNAP"
SNAPSHOT_VERSION = 1
_HEADER = struct.Struct("!8sBQI")  # magic, version, seq, torrent count
_TORRENT = struct.Struct("!20sBQq4I")  # hash, flags, completed, last announce, 4 table sizes
_FLAGGED, _REGISTERED = 1, 2
_PORTS = struct.Struct("!H")
_MAX_COMPLETED = (1 << 64) - 1
_NAMES = {kind: kind.__name__ for kind in EVENT_TYPES}


class SnapshotError(ValueError):
    """Snapshot bytes that this version cannot restore."""


class TrackerState:
    """Torrents (with their swarms) and stats, as of event ``last_seq``."""

    def __init__(self) -> None:
        self.torrents: dict[bytes, Torrent] = {}
        self.stats = Stats()
        self.last_seq = 0
        # Derived indexes that let a sweep skip torrents with nothing due (time_index.py):
        # torrents by their oldest peer, and empty forgettable torrents by last announce.
        self._by_oldest_peer = TimeIndex()
        self._idle = TimeIndex()
        self._handlers: dict[type, Callable[[Event], None]] = {
            AnnounceAccepted: self._announced,  # type: ignore[dict-item]
            AnnounceRefused: self._refused,  # type: ignore[dict-item]
            TorrentAdded: self._added,  # type: ignore[dict-item]
            TorrentFlagged: self._flagged,  # type: ignore[dict-item]
            TorrentUnflagged: self._unflagged,  # type: ignore[dict-item]
            TorrentDropped: self._dropped,  # type: ignore[dict-item]
            TorrentImported: self._imported,  # type: ignore[dict-item]
            PeersExpired: self._expired,  # type: ignore[dict-item]
        }

    # -- folding ---------------------------------------------------------

    def apply(self, seq: int, event: Event) -> None:
        """Fold one committed event. Sequence numbers must increase."""
        if seq <= self.last_seq:
            raise ValueError(f"event {seq} applied after {self.last_seq}")
        kind = type(event)
        self._handlers[kind](event)
        self.stats.by_kind[_NAMES[kind]] += 1
        self.last_seq = seq

    def apply_all(self, events: Iterable[tuple[int, Event]]) -> None:
        for seq, event in events:
            self.apply(seq, event)

    def _announced(self, e: AnnounceAccepted) -> None:
        """The busiest code in udpt, live and on replay: written for speed, see swarms.py."""
        at_ms, info_hash, ip, port, peer_id, key, event, uploaded, downloaded, left = e
        torrent = self.torrents.get(info_hash)
        peer = ip + _PORTS.pack(port)
        if event == _STOPPED:
            if torrent is not None and torrent.swarm.remove(peer) and not torrent.swarm:
                self._idle.file(info_hash, torrent.last_announce_ms)
            return
        if torrent is None:
            torrent = self.torrents[info_hash] = Torrent()
        elif torrent.flagged:
            return  # flagged between decision and commit: the flag wins
        if info_hash not in self._by_oldest_peer:
            self._by_oldest_peer.file(info_hash, at_ms)
        torrent.last_announce_ms = at_ms
        swarm = torrent.swarm
        if len(ip) == 4:
            seeders, leechers = swarm.seeders4, swarm.leechers4
        else:
            seeders, leechers = swarm.seeders6, swarm.leechers6
        old = seeders.pop(peer, None) or leechers.pop(peer, None)
        completed_flag = old is not None and old[FLAG_OFFSET] == 1
        if event == _COMPLETED and left == 0 and not completed_flag:
            if torrent.completed < _MAX_COMPLETED:  # the snapshot holds 64 bits
                torrent.completed += 1
            completed_flag = True
        record = PEER.pack(peer_id, key, at_ms, uploaded, downloaded, left, event, completed_flag)
        (leechers if left else seeders)[peer] = record

    def _refused(self, e: AnnounceRefused) -> None:
        """Refusals change no state; they are counted in the stats."""

    def _added(self, e: TorrentAdded) -> None:
        self.torrents.setdefault(e.info_hash, Torrent()).registered = True

    def _flagged(self, e: TorrentFlagged) -> None:
        torrent = self.torrents.setdefault(e.info_hash, Torrent())
        torrent.flagged = True
        torrent.registered = True
        torrent.swarm.clear()

    def _unflagged(self, e: TorrentUnflagged) -> None:
        torrent = self.torrents.setdefault(e.info_hash, Torrent())
        torrent.flagged = False
        torrent.registered = True

    def _dropped(self, e: TorrentDropped) -> None:
        self.torrents.pop(e.info_hash, None)

    def _imported(self, e: TorrentImported) -> None:
        torrent = self.torrents.setdefault(e.info_hash, Torrent())
        torrent.registered = True
        torrent.flagged = e.is_flagged
        torrent.completed = e.completed
        if e.is_flagged:
            torrent.swarm.clear()

    def _expired(self, e: PeersExpired) -> None:
        """Visit only torrents the indexes say may hold something due (time_index.py)."""
        removed = 0
        torrents = self.torrents
        for info_hash in self._by_oldest_peer.due(e.peer_cutoff_ms):
            torrent = torrents.get(info_hash)
            if torrent is None:  # dropped since it was filed
                self._by_oldest_peer.file(info_hash, None)
                continue
            removed += torrent.swarm.expire(e.peer_cutoff_ms)
            oldest = torrent.swarm.oldest_ms()
            self._by_oldest_peer.file(info_hash, oldest)
            if oldest is None and not torrent.flagged and not torrent.registered:
                self._idle.file(info_hash, torrent.last_announce_ms)
        self.stats.peers_expired += removed
        if e.torrent_cutoff_ms:
            self._forget_idle(e.torrent_cutoff_ms)

    def _forget_idle(self, torrent_cutoff_ms: int) -> None:
        """Drop empty torrents nobody registered or flagged, silent since the cutoff."""
        for info_hash in self._idle.due(torrent_cutoff_ms):
            torrent = self.torrents.get(info_hash)
            if torrent is None or torrent.swarm or torrent.flagged or torrent.registered:
                self._idle.file(info_hash, None)  # filed again if it empties again
            elif torrent.is_forgettable(torrent_cutoff_ms):
                del self.torrents[info_hash]
                self._idle.file(info_hash, None)
            else:
                self._idle.file(info_hash, torrent.last_announce_ms)

    def _index(self, info_hash: bytes, torrent: Torrent) -> None:
        oldest = torrent.swarm.oldest_ms()
        if oldest is not None:
            self._by_oldest_peer.file(info_hash, oldest)
        elif not torrent.flagged and not torrent.registered:
            self._idle.file(info_hash, torrent.last_announce_ms)

    # -- queries ----------------------------------------------------------

    def sweep_would_visit(self, sweep: PeersExpired) -> bool:
        """Whether ``sweep`` has any torrent to look at (if not, it would change nothing)."""
        return bool(self._by_oldest_peer.due(sweep.peer_cutoff_ms)) or bool(
            sweep.torrent_cutoff_ms and self._idle.due(sweep.torrent_cutoff_ms)
        )

    def totals(self) -> tuple[int, int, int]:
        """(seeders, leechers, completed) summed over all torrents."""
        seeders = leechers = completed = 0
        for torrent in self.torrents.values():
            seeders += torrent.swarm.seeders
            leechers += torrent.swarm.leechers
            completed += torrent.completed
        return seeders, leechers, completed

    def peer_count(self) -> int:
        return sum(len(t.swarm) for t in self.torrents.values())

    # -- snapshots --------------------------------------------------------

    def snapshot(self) -> bytes:
        """Canonical bytes of the whole state: torrents by info hash, peers in table order.

        Two states that answer every query alike and will fold every future
        event alike have equal snapshots; tests compare states this way.
        """
        parts = [
            _HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, self.last_seq, len(self.torrents)),
            self.stats.to_bytes(),
        ]
        for info_hash in sorted(self.torrents):
            torrent = self.torrents[info_hash]
            tables = torrent.swarm.tables()
            flags = (_FLAGGED if torrent.flagged else 0) | (
                _REGISTERED if torrent.registered else 0
            )
            parts.append(
                _TORRENT.pack(
                    info_hash, flags, torrent.completed, torrent.last_announce_ms, *map(len, tables)
                )
            )
            for table in tables:
                for peer, record in table.items():
                    parts.append(peer)
                    parts.append(record)
        return b"".join(parts)

    @classmethod
    def restore(cls, data: bytes) -> TrackerState:
        """The state whose ``snapshot()`` is ``data``."""
        try:
            return cls._restore(memoryview(data))
        except struct.error as exc:
            raise SnapshotError(f"snapshot is truncated or damaged: {exc}") from exc

    @classmethod
    def _restore(cls, view: memoryview) -> TrackerState:
        magic, version, last_seq, count = _HEADER.unpack_from(view)
        if magic != SNAPSHOT_MAGIC or version != SNAPSHOT_VERSION:
            raise SnapshotError(f"not a version-{SNAPSHOT_VERSION} udpt snapshot")
        state = cls()
        state.last_seq = last_seq
        offset = _HEADER.size
        state.stats = Stats.from_bytes(bytes(view[offset : offset + Stats.SIZE]))
        offset += Stats.SIZE
        record_size = PEER.size
        for _ in range(count):
            info_hash, flags, completed, last_ms, *sizes = _TORRENT.unpack_from(view, offset)
            offset += _TORRENT.size
            torrent = Torrent(
                flagged=bool(flags & _FLAGGED),
                registered=bool(flags & _REGISTERED),
                completed=completed,
                last_announce_ms=last_ms,
            )
            for table, size, key_size in zip(
                torrent.swarm.tables(), sizes, (6, 6, 18, 18), strict=True
            ):
                stride = key_size + record_size
                end = offset + size * stride
                if end > len(view):
                    raise SnapshotError("snapshot is truncated")
                raw = view[offset:end].tobytes()
                for start in range(0, len(raw), stride):
                    table[raw[start : start + key_size]] = raw[start + key_size : start + stride]
                offset = end
            state.torrents[info_hash] = torrent
            state._index(info_hash, torrent)
        if offset != len(view):
            raise SnapshotError("snapshot has trailing bytes")
        return state
