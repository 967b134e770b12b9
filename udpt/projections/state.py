"""The live state of the tracker as a pure fold of the event log.

``TrackerState.apply(seq, event)`` is the only thing that changes it, one
small handler per event type. Nothing here reads a clock, a random source or
configuration: everything an event needs (times, cutoffs) is in the event.
So folding a log gives the same state live, on replay, and from a snapshot
plus the tail — ``snapshot()`` bytes are the proof (docs/DESIGN.md §1).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import BinaryIO

from udpt.core import COMPILED
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
from udpt.projections.swarms import RECORD_SIZE
from udpt.projections.time_index import TimeIndex
from udpt.projections.torrents import Torrent, TorrentTable

if COMPILED:  # the compiled fold checks these types and reads the index's buckets (udpt/_swarm.c)
    from udpt import _core

    _core.bind_fold(AnnounceAccepted, TimeIndex)

__all__ = ["SnapshotError", "TrackerState"]

_STOPPED_EVENT = AnnounceEvent.STOPPED

SNAPSHOT_MAGIC = b"UDPTSNAP"
SNAPSHOT_VERSION = 1
_HEADER = struct.Struct("!8sBQI")  # magic, version, seq, torrent count
_TORRENT = struct.Struct("!20sBQq4I")  # hash, flags, completed, last announce, 4 table sizes
_FLAGGED, _REGISTERED = 1, 2
_PORTS = struct.Struct("!H")
_STRIDE4, _STRIDE6 = 6 + RECORD_SIZE, 18 + RECORD_SIZE  # bytes per peer in a snapshot
_MAX_COMPLETED = (1 << 64) - 1
_NAMES = {kind: kind.__name__ for kind in EVENT_TYPES}


SWEEP_STEP = 100
"""Torrents an expiry sweep visits between two pauses (``apply_in_steps``)."""

SWEEP_CHECK_LIMIT = 1000
"""Due torrents ``sweep_would_change`` looks at before it answers yes without looking further."""


class SnapshotError(ValueError):
    """Snapshot bytes that this version cannot restore."""


class TrackerState:
    """Torrents (with their swarms) and stats, as of event ``last_seq``."""

    def __init__(self) -> None:
        self.torrents = TorrentTable()
        self.stats = Stats()
        self.last_seq = 0
        # Derived indexes that let a sweep skip torrents with nothing due (time_index.py):
        # torrents by their oldest peer, and empty forgettable torrents by last announce.
        # The compiled core keeps their buckets in the torrents (``_core.FiledIn``).
        if COMPILED:
            self._by_oldest_peer = TimeIndex(_core.FiledIn(self.torrents, 0))
            self._idle = TimeIndex(_core.FiledIn(self.torrents, 1))
        else:
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
        if COMPILED:  # the same fold of an announce, in C (udpt/_swarm.c)
            self._handlers[AnnounceAccepted] = partial(
                _core.fold_announce, self.torrents, self._by_oldest_peer, self._idle
            )

    # -- folding ---------------------------------------------------------

    def apply(self, seq: int, event: Event) -> None:
        """Fold one committed event. Sequence numbers must increase."""
        if seq <= self.last_seq:
            raise ValueError(f"event {seq} applied after {self.last_seq}")
        kind = type(event)
        self._handlers[kind](event)
        self.stats.by_kind[_NAMES[kind]] += 1
        self.last_seq = seq

    def apply_in_steps(self, seq: int, event: Event) -> Iterator[None]:
        """``apply``, in steps that a caller may spread over several turns of its loop.

        Only an expiry sweep has more than one step (it pauses every
        ``SWEEP_STEP`` torrents); the event is folded once the iterator is
        exhausted, and nothing else may be applied before then.
        """
        if type(event) is not PeersExpired:
            self.apply(seq, event)
            return
        if seq <= self.last_seq:
            raise ValueError(f"event {seq} applied after {self.last_seq}")
        yield from self._expiring(event)
        self.stats.by_kind[_NAMES[PeersExpired]] += 1
        self.last_seq = seq

    def apply_many(self, first_seq: int, events: list[Event], start: int = 0) -> None:
        """``apply`` each of ``events[start:]``, ``events[i]`` as event ``first_seq + i``.

        If one raises, its error is raised with ``last_seq`` naming the event
        before it. The compiled core folds each run of announces in one call.
        """
        index, count = start, len(events)
        while index < count:
            event = events[index]
            if COMPILED and type(event) is AnnounceAccepted:
                index = _core.fold_announces(self, first_seq, events, index)
            else:
                self.apply(first_seq + index, event)
                index += 1

    def apply_all(self, events: Iterable[tuple[int, Event]]) -> None:
        for seq, event in events:
            self.apply(seq, event)

    def _announced(self, e: AnnounceAccepted) -> None:
        """The busiest code in udpt, live and on replay: written for speed, see swarms.py.

        The reference for the compiled core's ``fold_announce``, which replaces it.

        ``peer_status`` is inlined here and in ``Swarm.announce`` (a call per
        announce costs about a tenth of the fold); ``test_swarms.py`` checks
        that the fold files every peer where the rule says.
        """
        at_ms, info_hash, ip, port, _, _, event, _, _, _ = e
        torrent = self.torrents.get(info_hash)
        peer = ip + _PORTS.pack(port)
        if event == _STOPPED_EVENT:
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
        completes = torrent.swarm.announce(peer, e)
        if completes and torrent.completed < _MAX_COMPLETED:  # the snapshot holds 64 bits
            torrent.completed += 1

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
        if e.info_hash in self.torrents:
            self._forget(e.info_hash)

    def _forget(self, info_hash: bytes) -> None:
        """Take a torrent out of the table, unfiled first: an index that keeps its buckets
        in the torrents would count it filed for good."""
        self._by_oldest_peer.file(info_hash, None)
        self._idle.file(info_hash, None)
        del self.torrents[info_hash]

    def _imported(self, e: TorrentImported) -> None:
        torrent = self.torrents.setdefault(e.info_hash, Torrent())
        torrent.registered = True
        torrent.flagged = e.is_flagged
        torrent.completed = e.completed
        if e.is_flagged:
            torrent.swarm.clear()

    def _expired(self, e: PeersExpired) -> None:
        for _ in self._expiring(e):
            pass

    def _expiring(self, e: PeersExpired) -> Iterator[None]:
        """The sweep, pausing after every ``SWEEP_STEP`` torrents it visits.

        It visits only torrents the indexes say may hold something due
        (time_index.py). Which torrents it visits between two pauses does not
        change what it removes in the end, so the result is the same however
        the steps are spread out.
        """
        removed = 0
        torrents = self.torrents
        by_oldest = self._by_oldest_peer
        for visited, info_hash in enumerate(by_oldest.take_due(e.peer_cutoff_ms), 1):
            torrent = torrents.get(info_hash)
            if torrent is None:  # dropped since it was filed
                by_oldest.file(info_hash, None)
                continue
            removed += torrent.swarm.expire(e.peer_cutoff_ms)
            oldest = torrent.swarm.oldest_ms()
            by_oldest.file(info_hash, oldest)
            if oldest is None and not torrent.flagged and not torrent.registered:
                if e.torrent_cutoff_ms and torrent.is_forgettable(e.torrent_cutoff_ms):
                    self._forget(info_hash)  # as the idle pass below would, without filing it
                else:
                    self._idle.file(info_hash, torrent.last_announce_ms)
            if visited % SWEEP_STEP == 0:
                yield
        self.stats.peers_expired += removed
        if e.torrent_cutoff_ms:
            yield from self._forgetting_idle(e.torrent_cutoff_ms)

    def _forgetting_idle(self, torrent_cutoff_ms: int) -> Iterator[None]:
        """Drop empty torrents nobody registered or flagged, silent since the cutoff."""
        for visited, info_hash in enumerate(self._idle.take_due(torrent_cutoff_ms), 1):
            torrent = self.torrents.get(info_hash)
            if torrent is None or torrent.swarm or torrent.flagged or torrent.registered:
                self._idle.file(info_hash, None)  # filed again if it empties again
            elif torrent.is_forgettable(torrent_cutoff_ms):
                self._forget(info_hash)
            else:
                self._idle.file(info_hash, torrent.last_announce_ms)
            if visited % SWEEP_STEP == 0:
                yield

    def _index(self, info_hash: bytes, torrent: Torrent) -> None:
        oldest = torrent.swarm.oldest_ms()
        if oldest is not None:
            self._by_oldest_peer.file(info_hash, oldest)
        elif not torrent.flagged and not torrent.registered:
            self._idle.file(info_hash, torrent.last_announce_ms)

    # -- queries ----------------------------------------------------------

    def sweep_would_change(self, sweep: PeersExpired) -> bool:
        """Whether folding ``sweep`` would remove a peer or forget a torrent.

        Looks only at the torrents the indexes file as due, as the sweep would, and
        files each one it finds early under its true time again, as the sweep would
        too: otherwise a sweep that is never recorded would leave them due, and every
        later check would look at them again. The indexes are derived data (never
        snapshotted), so this changes nothing any query or fold can see. With more
        than ``SWEEP_CHECK_LIMIT`` torrents due it says yes without looking, so the
        check never holds the loop long; the sweep then refiles them in steps.
        """
        torrents = self.torrents
        by_oldest = self._by_oldest_peer
        if by_oldest.count_due(sweep.peer_cutoff_ms) > SWEEP_CHECK_LIMIT:
            return True  # the sweep itself, folded in steps, will look at them all
        for info_hash in by_oldest.due(sweep.peer_cutoff_ms):
            torrent = torrents.get(info_hash)
            oldest = None if torrent is None else torrent.swarm.oldest_ms()
            if oldest is not None and oldest < sweep.peer_cutoff_ms:
                return True
            by_oldest.file(info_hash, oldest)
            if oldest is None and torrent is not None:
                self._index(info_hash, torrent)
        if sweep.torrent_cutoff_ms:
            if self._idle.count_due(sweep.torrent_cutoff_ms) > SWEEP_CHECK_LIMIT:
                return True
            for info_hash in self._idle.due(sweep.torrent_cutoff_ms):
                torrent = torrents.get(info_hash)
                if torrent is not None and torrent.is_forgettable(sweep.torrent_cutoff_ms):
                    return True
        return False

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
        return b"".join(self.snapshot_parts())

    def snapshot_parts(self) -> Iterator[bytes]:
        """``snapshot()`` in pieces of one torrent each."""
        yield self._snapshot_head()
        for info_hash in sorted(self.torrents):
            torrent = self.torrents[info_hash]
            swarm = torrent.swarm
            flags = (_FLAGGED if torrent.flagged else 0) | (
                _REGISTERED if torrent.registered else 0
            )
            yield _TORRENT.pack(
                info_hash, flags, torrent.completed, torrent.last_announce_ms, *swarm.counts()
            )
            yield swarm.pack()

    def write_snapshot(self, out: BinaryIO) -> None:
        """Write ``snapshot()`` to the file ``out``, with no second copy of the state.

        The compiled core writes the torrents from C, reading the objects
        through borrowed pointers: in a forked child (history/snapshot_fork.py)
        every reference count written would copy a page of the parent's memory.
        """
        if not COMPILED:
            for part in self.snapshot_parts():
                out.write(part)
            return
        out.write(self._snapshot_head())
        out.flush()
        _core.write_snapshot_torrents(self.torrents, out.fileno())

    def _snapshot_head(self) -> bytes:
        header = _HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, self.last_seq, len(self.torrents))
        return header + self.stats.to_bytes()

    @classmethod
    def restore(cls, data: bytes, known: Callable[[bytes], bytes] | None = None) -> TrackerState:
        """The state whose ``snapshot()`` is ``data``; ``known`` gives the object to key each
        info hash by (the log's own: ``EventLog.known_hash``)."""
        try:
            return cls._restore(memoryview(data), known)
        except struct.error as exc:
            raise SnapshotError(f"snapshot is truncated or damaged: {exc}") from exc

    @classmethod
    def _restore(cls, view: memoryview, known: Callable[[bytes], bytes] | None) -> TrackerState:
        magic, version, last_seq, count = _HEADER.unpack_from(view)
        if magic != SNAPSHOT_MAGIC or version != SNAPSHOT_VERSION:
            raise SnapshotError(f"not a version-{SNAPSHOT_VERSION} udpt snapshot")
        state = cls()
        state.last_seq = last_seq
        offset = _HEADER.size
        state.stats = Stats.from_bytes(bytes(view[offset : offset + Stats.SIZE]))
        offset += Stats.SIZE
        # Each torrent goes into the table as it is read, not through a list of them all:
        # the list's pairs and keys, freed at the end, left holes between the Torrents
        # that the allocator could not give back (about 40 bytes a peer at 3 a torrent).
        torrents = state.torrents
        if not torrents.keeps_key_objects:
            known = None  # nothing to share: the keys live in the table
        for _ in range(count):
            info_hash, flags, completed, last_ms, s4, l4, s6, l6 = _TORRENT.unpack_from(
                view, offset
            )
            offset += _TORRENT.size
            if known is not None:
                info_hash = known(info_hash)
            torrent = Torrent(
                flagged=bool(flags & _FLAGGED),
                registered=bool(flags & _REGISTERED),
                completed=completed,
                last_announce_ms=last_ms,
            )
            end = offset + (s4 + l4) * _STRIDE4 + (s6 + l6) * _STRIDE6
            if end > len(view):
                raise SnapshotError("snapshot is truncated")
            try:
                torrent.swarm.load(view[offset:end], (s4, l4, s6, l6))
            except ValueError as exc:
                raise SnapshotError(f"snapshot is damaged: {exc}") from exc
            offset = end
            if info_hash in torrents:
                raise SnapshotError("snapshot holds a torrent twice")
            torrents[info_hash] = torrent
            state._index(info_hash, torrent)  # in the table: an index may file it in the torrent
        if offset != len(view):
            raise SnapshotError("snapshot has trailing bytes")
        return state
