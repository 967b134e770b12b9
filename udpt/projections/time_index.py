"""Which torrents may hold something older than a cutoff, without looking at every torrent.

An expiry sweep that visits every torrent stalls the event loop for a fraction
of a second at 100,000 torrents, so sweeps could not run often and expired
peers stayed visible for up to ``cleanup_interval``. Instead, a torrent is
*filed* under a coarse time (one-minute buckets); a sweep visits only the
buckets before its cutoff.

Filing may be early but never late: a torrent filed under a time no later than
its true oldest peer (or last announce) is visited in time, and a visit that
finds nothing due re-files it. Since event times never go backwards, a
torrent's oldest peer only gets younger, so filing once, when it gains its
first peer, is enough until a sweep visits it.

The index is derived data: it is rebuilt on restore, never written to a
snapshot, and which torrents it visits never changes what a sweep removes.
"""

from __future__ import annotations

__all__ = ["TimeIndex"]

BUCKET_MS = 60_000


class TimeIndex:
    """Keys (info hashes) filed by a time in milliseconds."""

    __slots__ = ("_bucket_of", "_buckets")

    def __init__(self) -> None:
        self._buckets: dict[int, set[bytes]] = {}
        self._bucket_of: dict[bytes, int] = {}

    def __contains__(self, key: bytes) -> bool:
        return key in self._bucket_of

    def __len__(self) -> int:
        return len(self._bucket_of)

    def file(self, key: bytes, ms: int | None) -> None:
        """File ``key`` under ``ms``, or take it out of the index when ``ms`` is None."""
        bucket = None if ms is None else ms // BUCKET_MS
        old = self._bucket_of.get(key)
        if old == bucket:
            return
        if old is not None:
            keys = self._buckets[old]
            keys.discard(key)
            if not keys:
                del self._buckets[old]
        if bucket is None:
            del self._bucket_of[key]
        else:
            self._bucket_of[key] = bucket
            self._buckets.setdefault(bucket, set()).add(key)

    def due(self, cutoff_ms: int) -> list[bytes]:
        """Every key filed under a bucket that starts before ``cutoff_ms``."""
        last = (cutoff_ms - 1) // BUCKET_MS
        return [key for bucket, keys in self._buckets.items() if bucket <= last for key in keys]
