"""Peers of one torrent: the swarm tables, and the read-only queries on them.

A peer is identified by (family, canonical IP, announced port) — docs/PROTOCOL.md
§6.1. The table key *is* the BEP 23 compact entry (4- or 16-byte IP, then the
port), so building a reply is a join of keys. The value is a packed record
(``PEER``) rather than an object: a peer costs one dict slot, a key and one
small bytes object.

Each family keeps seeders and leechers in separate dicts: seeders are given
only leechers (§6.5), and counts are dict lengths. A peer that announces is
moved to the end of its dict, so every dict is ordered by last-seen time
(event times in the log never go backwards) and expiry pops from the front.
"""

from __future__ import annotations

import struct
from random import Random

__all__ = ["PEER", "Swarm", "select_peers"]

# peer_id, key, last_seen_ms, uploaded, downloaded, left, event, completed_flag
PEER = struct.Struct("!20sIqqqqBB")
_LAST_SEEN = struct.Struct("!q")
_LAST_SEEN_OFFSET = 24
FLAG_OFFSET = PEER.size - 1


def last_seen_of(record: bytes) -> int:
    return _LAST_SEEN.unpack_from(record, _LAST_SEEN_OFFSET)[0]


class Swarm:
    """The live peers of one torrent, per address family (4 and 6), seeders and leechers apart."""

    __slots__ = ("leechers4", "leechers6", "seeders4", "seeders6")

    def __init__(self) -> None:
        self.seeders4: dict[bytes, bytes] = {}
        self.leechers4: dict[bytes, bytes] = {}
        self.seeders6: dict[bytes, bytes] = {}
        self.leechers6: dict[bytes, bytes] = {}

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

    def find(self, peer: bytes) -> bytes | None:
        """The record of the peer whose compact entry is ``peer``, if it is in the swarm."""
        seeders, leechers = self.family(peer[:-2])
        return seeders.get(peer) or leechers.get(peer)

    def remove(self, peer: bytes) -> bytes | None:
        seeders, leechers = self.family(peer[:-2])
        return seeders.pop(peer, None) or leechers.pop(peer, None)

    def clear(self) -> None:
        for table in self.tables():
            table.clear()

    def oldest_ms(self) -> int | None:
        """When the longest-silent peer last announced (None for an empty swarm)."""
        heads = [last_seen_of(table[next(iter(table))]) for table in self.tables() if table]
        return min(heads) if heads else None

    def expire(self, cutoff_ms: int) -> int:
        """Remove peers last seen before ``cutoff_ms``; returns how many went.

        Every table is ordered oldest first, so the scan stops at the first live
        peer: a sweep costs little more than a look at each table's head.
        """
        removed = 0
        for table in (self.seeders4, self.leechers4, self.seeders6, self.leechers6):
            if not table:
                continue
            stale = []
            for peer, record in table.items():
                if _LAST_SEEN.unpack_from(record, _LAST_SEEN_OFFSET)[0] >= cutoff_ms:
                    break
                stale.append(peer)
            for peer in stale:
                del table[peer]
            removed += len(stale)
        return removed


def select_peers(swarm: Swarm, requester: bytes, is_seeder: bool, count: int, rng: Random) -> bytes:
    """Up to ``count`` compact entries of the requester's family, chosen uniformly at random.

    Never the requester itself; a seeder gets only leechers (docs/PROTOCOL.md §6.5).
    Reads the swarm, never changes it. Most swarms are small: when everybody
    eligible fits, all are returned without sampling.
    """
    if count <= 0:
        return b""
    seeders, leechers = swarm.family(requester[:-2])
    if is_seeder:  # the requester is a seeder, so it is not among the leechers
        if len(leechers) <= count:
            return b"".join(leechers)
        return b"".join(rng.sample([*leechers], count))
    if len(seeders) + len(leechers) - (requester in leechers) <= count:
        return b"".join(seeders) + b"".join([peer for peer in leechers if peer != requester])
    chosen = rng.sample([*seeders, *leechers], count + 1)  # [*d] copies at C speed
    return b"".join([peer for peer in chosen if peer != requester][:count])
