"""Counters of what the tracker did: events by kind and peers expired."""

from __future__ import annotations

import struct

from udpt.events.types import EVENT_TYPES

__all__ = ["Stats"]

_COUNTS = struct.Struct(f"!{len(EVENT_TYPES) + 1}Q")


class Stats:
    """Events applied, by kind, and peers removed by expiry. Part of the snapshot."""

    __slots__ = ("by_kind", "peers_expired")

    def __init__(self) -> None:
        self.by_kind: dict[str, int] = {kind.__name__: 0 for kind in EVENT_TYPES}
        self.peers_expired = 0

    def to_bytes(self) -> bytes:
        return _COUNTS.pack(*self.by_kind.values(), self.peers_expired)

    @classmethod
    def from_bytes(cls, data: bytes) -> Stats:
        stats = cls()
        *counts, stats.peers_expired = _COUNTS.unpack(data)
        stats.by_kind = dict(zip(stats.by_kind, counts, strict=True))
        return stats

    SIZE = _COUNTS.size
