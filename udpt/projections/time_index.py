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

from collections.abc import Iterator

__all__ = ["TimeIndex"]

BUCKET_MS = 60_000


class TimeIndex:
    """Keys (info hashes) filed by a time in milliseconds."""

    __slots__ = ("_bucket_of", "_buckets", "_numbers")

    def __init__(self) -> None:
        self._buckets: dict[int, set[bytes]] = {}
        self._bucket_of: dict[bytes, int] = {}
        self._numbers: dict[int, int] = {}
        """Each bucket's number, one int object for all its keys: ``ms // BUCKET_MS`` makes
        a new one (32 bytes) each time, and ``_bucket_of`` holds one per torrent."""

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
            keys = self._buckets.get(old)  # None: the bucket is out with ``due``
            if keys is not None:
                keys.discard(key)
                if not keys:
                    self._drop(old)
        if bucket is None:
            del self._bucket_of[key]
        else:
            bucket = self._numbers.setdefault(bucket, bucket)
            self._bucket_of[key] = bucket
            self._buckets.setdefault(bucket, set()).add(key)

    def _drop(self, bucket: int) -> set[bytes] | None:
        """Take ``bucket`` out, with its keys (None if it is out already)."""
        self._numbers.pop(bucket, None)
        return self._buckets.pop(bucket, None)

    def _due_buckets(self, cutoff_ms: int) -> list[int]:
        last = (cutoff_ms - 1) // BUCKET_MS
        return sorted(bucket for bucket in self._buckets if bucket <= last)

    def due(self, cutoff_ms: int) -> list[bytes]:
        """Every key filed under a bucket that starts before ``cutoff_ms``."""
        return [key for bucket in self._due_buckets(cutoff_ms) for key in self._buckets[bucket]]

    def take_due(self, cutoff_ms: int) -> Iterator[bytes]:
        """Take the keys ``due`` would list out of the index, one at a time, oldest bucket first.

        The caller files each key it is given again (or leaves it out). A bucket is
        taken out of the index whole when reached and handed out key by key, so
        nothing proportional to its size happens at once and the caller may pause
        between keys; a key filed meanwhile may come twice, and visiting is
        idempotent. A caller that stops early gets the keys it did not visit, and
        the last one it was given, filed back under their bucket: early, never late.
        """
        for bucket in self._due_buckets(cutoff_ms):
            keys = self._drop(bucket)
            if keys is None:
                continue
            key = None
            try:
                while keys:
                    key = keys.pop()
                    if self._bucket_of.get(key) == bucket:
                        del self._bucket_of[key]
                    yield key
            except GeneratorExit:
                if key is not None and key not in self._bucket_of:
                    keys.add(key)
                for left in keys:
                    if self._bucket_of.get(left) == bucket:
                        del self._bucket_of[left]  # still pointing at the bucket taken out
                    self.file(left, bucket * BUCKET_MS)
                raise

    def count_due(self, cutoff_ms: int) -> int:
        """How many keys ``due(cutoff_ms)`` would give (before any is filed again)."""
        return sum(len(self._buckets[bucket]) for bucket in self._due_buckets(cutoff_ms))
