"""Peers of one torrent: the swarm tables, the peer record, and the read-only queries on them.

A peer is identified by (family, canonical IP, announced port) — docs/PROTOCOL.md
§6.1. The table key *is* the BEP 23 compact entry (4- or 16-byte IP, then the
port), so building a reply is a join of keys. The value is a packed record
rather than an object: a peer costs one dict slot, a key and one small bytes
object. This module is the only one that knows the record's layout: the fold
writes it through ``Swarm.announce`` and readers see it through ``PeerView``.

Each family keeps seeders and leechers in separate dicts: seeders are given
only leechers (§6.5), and counts are dict lengths. A peer that announces is
moved to the end of its dict, so every dict is ordered by last-seen time
(event times in the log never go backwards) and expiry pops from the front.

How many entries come from one source (an address prefix) is asked of every
newcomer to a swarm, so one host cannot stuff it with ports. A small swarm is
scanned; a big one keeps a count per source, built on the first question and
kept by every change after it, so that only swarms where the question is
costly pay the memory. The count is derived from the tables, never stored.

``SwarmPy`` is the reference. With the compiled core selected (udpt/core.py),
``Swarm`` is ``udpt._core.Swarm``: the same tables in the same order, packed
into one array per table (udpt/_swarm.c), at a third of the memory; a torrent
is then itself a swarm (``udpt._core.Torrent``, projections/torrents.py). Everything
outside this module goes through the methods both share.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from enum import Enum
from random import Random
from typing import TYPE_CHECKING, NamedTuple

from udpt.core import COMPILED
from udpt.events.types import AnnounceAccepted, AnnounceEvent

__all__ = [
    "INDEXED_SWARM",
    "RECORD_SIZE",
    "PeerStatus",
    "PeerView",
    "Swarm",
    "SwarmPy",
    "find_peer",
    "peer_status",
    "peer_views",
]

# peer_id, key, last_seen_ms, uploaded, downloaded, left, event, completed_flag
_RECORD = struct.Struct("!20sIqqqqBB")
_pack = _RECORD.pack
_LAST_SEEN = struct.Struct("!q")
_LAST_SEEN_OFFSET = 24
_FLAG_OFFSET = _RECORD.size - 1
_STOPPED = AnnounceEvent.STOPPED
_COMPLETED = AnnounceEvent.COMPLETED

RECORD_SIZE = _RECORD.size
"""Bytes per peer record; snapshots store records as they are, one after its key."""

INDEXED_SWARM = 64
"""Swarms of at least this many peers count their entries per source; smaller ones are scanned.

A scan of 64 keys costs a few microseconds; below half of it the count is
dropped again, so a swarm around the threshold does not rebuild it each time.
"""


class PeerStatus(Enum):
    """What an announce makes of its peer."""

    SEEDER = "seeder"
    LEECHER = "leecher"
    STOPPED = "stopped"


def peer_status(event: AnnounceEvent, left: int) -> PeerStatus:
    """The seeder rule: ``stopped`` leaves the swarm (docs/PROTOCOL.md §6.4), ``left == 0`` seeds.

    Any other ``left``, negative included, is a leecher (§6.2); the status is
    decided again on every announce.
    """
    if event == _STOPPED:
        return PeerStatus.STOPPED
    return PeerStatus.SEEDER if left == 0 else PeerStatus.LEECHER


class PeerView(NamedTuple):
    """One peer as readers see it (API, replay tool, tests): the record, unpacked and named."""

    peer: bytes
    """The compact entry: 4- or 16-byte IP, then the port (big-endian)."""
    seeder: bool
    peer_id: bytes
    key: int
    last_seen_ms: int
    uploaded: int
    downloaded: int
    left: int
    event: int
    """An ``AnnounceEvent`` value, as the last announce carried it."""
    completed: bool
    """Whether this entry's completion was counted (docs/PROTOCOL.md §6.3)."""

    @property
    def ip(self) -> bytes:
        return self.peer[:-2]

    @property
    def port(self) -> int:
        return int.from_bytes(self.peer[-2:], "big")


def _last_seen_of(record: bytes) -> int:
    last_seen: int = _LAST_SEEN.unpack_from(record, _LAST_SEEN_OFFSET)[0]
    return last_seen


class SwarmPy:
    """The live peers of one torrent, per address family (4 and 6), seeders and leechers apart."""

    __slots__ = ("_per_source", "_prefixes", "leechers4", "leechers6", "seeders4", "seeders6")

    def __init__(self) -> None:
        self.seeders4: dict[bytes, bytes] = {}
        self.leechers4: dict[bytes, bytes] = {}
        self.seeders6: dict[bytes, bytes] = {}
        self.leechers6: dict[bytes, bytes] = {}
        self._per_source: tuple[dict[bytes, int], dict[bytes, int]] | None = None
        self._prefixes = (4, 8)

    def tables(self) -> tuple[dict[bytes, bytes], ...]:
        """The four tables in canonical order: seeders4, leechers4, seeders6, leechers6."""
        return (self.seeders4, self.leechers4, self.seeders6, self.leechers6)

    def family(self, ip: bytes) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        """(seeders, leechers) of the family of ``ip``."""
        if len(ip) == 4:
            return self.seeders4, self.leechers4
        return self.seeders6, self.leechers6

    @property
    def seeders(self) -> int:
        return len(self.seeders4) + len(self.seeders6)

    @property
    def leechers(self) -> int:
        return len(self.leechers4) + len(self.leechers6)

    def __len__(self) -> int:
        return self.seeders + self.leechers

    def counts(self) -> tuple[int, int, int, int]:
        """Peers in each table, in canonical order."""
        return (len(self.seeders4), len(self.leechers4), len(self.seeders6), len(self.leechers6))

    def __contains__(self, peer: bytes) -> bool:
        seeders, leechers = self.family(peer[:-2])
        return peer in seeders or peer in leechers

    def record(self, peer: bytes) -> tuple[bool, bytes] | None:
        """(seeder, packed record) of the peer whose compact entry is ``peer``, if it is here."""
        seeders, leechers = self.family(peer[:-2])
        record = seeders.get(peer)
        if record is not None:
            return True, record
        record = leechers.get(peer)
        return None if record is None else (False, record)

    def items(self) -> list[tuple[bytes, bool, bytes]]:
        """(compact entry, seeder, packed record) of every peer, tables in canonical order."""
        return [
            (peer, seeder, record)
            for table, seeder in zip(self.tables(), (True, False, True, False), strict=True)
            for peer, record in table.items()
        ]

    def select(self, requester: bytes, is_seeder: bool, count: int, rng: Random) -> bytes:
        """Up to ``count`` compact entries of the requester's family, chosen uniformly at random.

        Never the requester itself; a seeder gets only leechers (docs/PROTOCOL.md §6.5).
        Reads the swarm, never changes it. Most swarms are small: when everybody
        eligible fits, all are returned without sampling. The compiled swarm
        takes the same steps, so the same ``rng`` picks the same peers.
        """
        if count <= 0:
            return b""
        seeders, leechers = self.family(requester[:-2])
        if is_seeder:  # the requester is a seeder, so it is not among the leechers
            if len(leechers) <= count:
                return b"".join(leechers)
            return b"".join(rng.sample([*leechers], count))
        if len(seeders) + len(leechers) - (requester in leechers) <= count:
            return b"".join(seeders) + b"".join([peer for peer in leechers if peer != requester])
        chosen = rng.sample([*seeders, *leechers], count + 1)  # [*d] copies at C speed
        return b"".join([peer for peer in chosen if peer != requester][:count])

    # -- snapshots ----------------------------------------------------------

    def pack(self) -> bytes:
        """Every peer as its compact entry then its record, tables in canonical order.

        With ``counts()`` this is the swarm's part of a snapshot; ``load`` reads it back.
        """
        return b"".join(part for table in self.tables() for item in table.items() for part in item)

    def load(self, packed: bytes | memoryview, sizes: tuple[int, int, int, int]) -> None:
        """Fill this empty swarm from ``pack()`` bytes of tables of ``sizes`` peers.

        ValueError for bytes that no swarm packs: the wrong length, a peer twice,
        a record whose completion flag is neither 0 nor 1.
        """
        data = bytes(packed)
        if len(self):
            raise ValueError("load() fills an empty swarm")
        strides = [key_size + RECORD_SIZE for key_size in (6, 6, 18, 18)]
        if len(data) != sum(size * stride for size, stride in zip(sizes, strides, strict=True)):
            raise ValueError("peer records do not fill the tables")
        layout = []  # (table, first byte, end, key size)
        offset = 0
        for table, size, stride in zip(self.tables(), sizes, strides, strict=True):
            layout.append((table, offset, offset + size * stride, stride - RECORD_SIZE))
            offset += size * stride
        for _, start, end, key_size in layout:
            flags = data[start + key_size + _FLAG_OFFSET : end : key_size + RECORD_SIZE]
            if flags.strip(b"\x00\x01"):
                raise ValueError("a peer record has a bad completion flag")
        for table, start, end, key_size in layout:
            stride = key_size + RECORD_SIZE
            for at in range(start, end, stride):
                table[data[at : at + key_size]] = data[at + key_size : at + stride]
        if (
            self.counts() != tuple(sizes)
            or any(peer in self.seeders4 for peer in self.leechers4)
            or any(peer in self.seeders6 for peer in self.leechers6)
        ):
            self.clear()
            raise ValueError("a peer is in the swarm twice")

    # -- changes, made only by the fold (projections/state.py) --------------

    def announce(self, peer: bytes, e: AnnounceAccepted) -> bool:
        """Insert or refresh ``peer`` from ``e`` at the end of its table; True if it completes.

        Not for ``stopped`` (the caller removes the peer). Seeder or leecher as
        ``peer_status`` says, inlined: this and its caller are the hottest code
        on replay, and a test checks that the two agree. A completion
        (docs/PROTOCOL.md §6.3) is ``completed`` with ``left == 0`` from an entry not
        already counted; the entry remembers it until it leaves the swarm.
        """
        at_ms, _, _, _, peer_id, key, event, uploaded, downloaded, left = e
        if len(peer) == 6:
            seeders, leechers = self.seeders4, self.leechers4
        else:
            seeders, leechers = self.seeders6, self.leechers6
        old = seeders.pop(peer, None) or leechers.pop(peer, None)
        if old is None and self._per_source is not None:
            self._count(peer, 1)
        counted = old is not None and old[_FLAG_OFFSET] == 1
        completes = not counted and left == 0 and event == _COMPLETED
        (leechers if left else seeders)[peer] = _pack(
            peer_id, key, at_ms, uploaded, downloaded, left, event, counted or completes
        )
        return completes

    def remove(self, peer: bytes) -> bool:
        """Take ``peer`` out of the swarm; whether it was there."""
        seeders, leechers = self.family(peer[:-2])
        if seeders.pop(peer, None) is None and leechers.pop(peer, None) is None:
            return False
        if self._per_source is not None:
            self._count(peer, -1)
            self._forget_small()
        return True

    def clear(self) -> None:
        for table in self.tables():
            table.clear()
        self._per_source = None

    def peers_from(self, ip: bytes, v4_bytes: int, v6_bytes: int) -> int:
        """Entries whose IP shares its first ``v4_bytes`` (IPv4) or ``v6_bytes`` (IPv6) with ``ip``.

        The prefix lengths are the quotas' notion of one source; the count per
        source is built for them, and built again if they change (a reload).
        """
        prefixes = (v4_bytes, v6_bytes)
        v6 = len(ip) != 4
        source = ip[: prefixes[v6]]
        if self._per_source is not None and self._prefixes == prefixes:
            return self._per_source[v6].get(source, 0)
        if len(self) < INDEXED_SWARM:
            self._per_source = None
            return sum(1 for table in self.family(ip) for peer in table if peer.startswith(source))
        self._prefixes = prefixes
        self._per_source = ({}, {})
        for table in self.tables():
            for peer in table:
                self._count(peer, 1)
        return self._per_source[v6].get(source, 0)

    def _count(self, peer: bytes, change: int) -> None:
        """Add ``change`` to the count of ``peer``'s source (IPv4 and IPv6 sources kept apart)."""
        assert self._per_source is not None
        v6 = len(peer) != 6
        per_source = self._per_source[v6]
        source = peer[: self._prefixes[v6]]
        left = per_source.get(source, 0) + change
        if left > 0:
            per_source[source] = left
        else:
            del per_source[source]

    def _forget_small(self) -> None:
        if len(self) < INDEXED_SWARM // 2:
            self._per_source = None

    def oldest_ms(self) -> int | None:
        """When the longest-silent peer last announced (None for an empty swarm)."""
        heads = [_last_seen_of(table[next(iter(table))]) for table in self.tables() if table]
        return min(heads) if heads else None

    def expire(self, cutoff_ms: int) -> int:
        """Remove peers last seen before ``cutoff_ms``; returns how many went.

        Every table is ordered oldest first, so the scan stops at the first live
        peer: a sweep costs little more than a look at each table's head.
        """
        removed = 0
        unpack = _LAST_SEEN.unpack_from
        for table in (self.seeders4, self.leechers4, self.seeders6, self.leechers6):
            if not table:
                continue
            stale = []
            for peer, record in table.items():
                if unpack(record, _LAST_SEEN_OFFSET)[0] >= cutoff_ms:
                    break
                stale.append(peer)
            for peer in stale:
                del table[peer]
            if self._per_source is not None:
                for peer in stale:
                    self._count(peer, -1)
            removed += len(stale)
        if removed and self._per_source is not None:
            self._forget_small()
        return removed


def find_peer(swarm: Swarm, peer: bytes) -> PeerView | None:
    """The peer whose compact entry is ``peer``, if it is in ``swarm``."""
    found = swarm.record(peer)
    return None if found is None else _view(peer, *found)


def _view(peer: bytes, seeder: bool, record: bytes) -> PeerView:
    peer_id, key, last_seen_ms, uploaded, downloaded, left, event, flag = _RECORD.unpack(record)
    return PeerView(
        peer, seeder, peer_id, key, last_seen_ms, uploaded, downloaded, left, event, flag == 1
    )


def peer_views(swarm: Swarm) -> Iterator[PeerView]:
    """Every peer, in the tables' canonical order, each table oldest announce first."""
    for peer, seeder, record in swarm.items():
        yield _view(peer, seeder, record)


# With the compiled core selected, the packed swarm stands in for the reference
# (udpt/core.py); type checkers read the reference, whose interface both share.
if TYPE_CHECKING or not COMPILED:
    Swarm = SwarmPy
else:
    from udpt._core import Swarm
