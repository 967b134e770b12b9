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

Each bucket lists its keys in a list rather than a set (8 bytes a key, not about
40): a key filed elsewhere is left in its old bucket's list, and ``_bucket_of``
says which entries are still true. A list is rebuilt when a key is added to one
that holds more than twice its true keys, and goes with its bucket's last key.

``_bucket_of`` is a dict, or, with the compiled core, ``udpt._core.FiledIn``: the
same mapping with each bucket kept in its torrent, where a dict slot cost about
50 bytes a torrent. It files only keys whose torrent is in the table (KeyError
for any other), so the state unfiles a torrent before it forgets it. The lists
hold each key's *handle*: the key itself with a dict, the torrent with FiledIn,
whose table keeps no bytes object for an info hash (a list holding one would
keep 56 bytes a torrent alive). A handle answers every question a key does.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import suppress
from typing import Protocol

__all__ = ["BucketOf", "TimeIndex"]

BUCKET_MS = 60_000


class BucketOf(Protocol):
    """The bucket each key (or its handle) is filed under: ``udpt._core.FiledIn``, or
    ``_KeysFiled``, a dict whose handles are the keys."""

    def get(self, key: Hashable, default: None = None, /) -> int | None: ...
    def __contains__(self, key: object, /) -> bool: ...
    def __setitem__(self, key: bytes, bucket: int, /) -> None: ...
    def __delitem__(self, key: Hashable, /) -> None: ...
    def handle(self, key: bytes, /) -> Hashable:
        """What the lists hold for ``key``, which is filed."""

    def key_of(self, handle: Hashable, /) -> bytes:
        """The key of ``handle``."""


class _KeysFiled(dict[Hashable, int]):
    """The reference's ``BucketOf``: a dict, each key its own handle."""

    __slots__ = ()

    def handle(self, key: bytes) -> Hashable:
        return key

    def key_of(self, handle: Hashable) -> bytes:
        return handle  # type: ignore[return-value]


class TimeIndex:
    """Keys (info hashes) filed by a time in milliseconds."""

    __slots__ = ("_bucket_of", "_buckets", "_filed", "_numbers")

    def __init__(self, bucket_of: BucketOf | None = None) -> None:
        self._bucket_of: BucketOf = _KeysFiled() if bucket_of is None else bucket_of
        """The bucket each key is filed under: the truth the lists are read against."""
        self._buckets: dict[int, list[Hashable]] = {}
        """Handles of the keys filed under each bucket, and of keys filed there once and
        moved on since."""
        self._filed: dict[int, int] = {}
        """How many keys ``_bucket_of`` files under each bucket."""
        self._numbers: dict[int, int] = {}
        """Each bucket's number, one int object for all its keys: ``ms // BUCKET_MS`` makes
        a new one (32 bytes) each time, and ``_bucket_of`` holds one per torrent."""

    def __contains__(self, key: bytes) -> bool:
        return key in self._bucket_of

    def __len__(self) -> int:
        return sum(self._filed.values())

    def file(self, key: bytes, ms: int | None) -> None:
        """File ``key`` under ``ms``, or take it out of the index when ``ms`` is None.

        Where ``_bucket_of`` refuses the key (KeyError), nothing has changed."""
        bucket_of = self._bucket_of
        old = bucket_of.get(key)
        if ms is None:
            if old is not None:
                del bucket_of[key]
                self._unfile(old)
            return
        bucket = ms // BUCKET_MS
        if old == bucket:
            return
        number = self._numbers.get(bucket)
        bucket_of[key] = bucket if number is None else number  # first: it may refuse
        if old is not None:
            self._unfile(old)
        handle = bucket_of.handle(key)
        if number is None:  # a bucket of its own: no list, no count yet
            self._numbers[bucket] = bucket
            self._filed[bucket] = 1
            self._buckets[bucket] = [handle]
            return
        filed = self._filed[number] = self._filed[number] + 1
        handles = self._buckets.get(number)
        if handles is None:  # the bucket is out with ``take_due``
            self._buckets[number] = [handle]
        else:
            handles.append(handle)
            if len(handles) > 2 * filed + 16:
                self._buckets[number] = self._true_handles(number, handles)

    def _unfile(self, bucket: int, count: int = 1) -> None:
        """``count`` keys less under ``bucket``; a bucket left with none goes, its list too."""
        filed = self._filed[bucket] - count
        if filed:
            self._filed[bucket] = filed
        else:
            del self._filed[bucket]
            del self._numbers[bucket]
            self._buckets.pop(bucket, None)  # None: the bucket is out with ``take_due``

    def _true_handles(self, bucket: int, handles: list[Hashable]) -> list[Hashable]:
        """The handles of ``handles`` still filed under ``bucket``, each once, in filing
        order."""
        bucket_of = self._bucket_of
        return [h for h in dict.fromkeys(handles) if bucket_of.get(h) == bucket]

    def _due_buckets(self, cutoff_ms: int) -> list[int]:
        last = (cutoff_ms - 1) // BUCKET_MS
        return sorted(bucket for bucket in self._buckets if bucket <= last)

    def due(self, cutoff_ms: int) -> list[bytes]:
        """Every key filed under a bucket that starts before ``cutoff_ms``."""
        key_of = self._bucket_of.key_of
        return [
            key_of(handle)
            for bucket in self._due_buckets(cutoff_ms)
            for handle in self._true_handles(bucket, self._buckets[bucket])
        ]

    def take_due(self, cutoff_ms: int) -> Iterator[bytes]:
        """Take the keys ``due`` would list out of the index, one at a time, oldest bucket first.

        The caller files each key it is given again (or leaves it out). A bucket is
        taken out of the index whole when reached and handed out key by key, so
        nothing proportional to its size happens at once and the caller may pause
        between keys; a key filed meanwhile may come twice, and visiting is
        idempotent. A caller that stops early gets the keys it did not visit, and
        the last one it was given, filed back under their bucket: early, never late.
        """
        bucket_of = self._bucket_of
        for bucket in self._due_buckets(cutoff_ms):
            handles = self._buckets.pop(bucket, None)
            if handles is None:
                continue
            at = taken = 0  # handles[:at] are visited; taken of them were filed there
            try:
                while at < len(handles):
                    handle = handles[at]
                    at += 1
                    if bucket_of.get(handle) == bucket:
                        del bucket_of[handle]
                        taken += 1
                        yield bucket_of.key_of(handle)
            except GeneratorExit:
                given = handles[at - 1]  # the exit came at its yield
                for left in handles[at:]:
                    if bucket_of.get(left) == bucket:  # still filed there: listed again
                        self._buckets.setdefault(bucket, []).append(left)
                if given not in bucket_of:
                    with suppress(KeyError):  # refused: its torrent is gone, nothing to file
                        self.file(bucket_of.key_of(given), bucket * BUCKET_MS)
                raise
            finally:  # counted out once, not key by key: the count never reaches 0 early
                if taken:
                    self._unfile(bucket, taken)

    def count_due(self, cutoff_ms: int) -> int:
        """How many keys ``due(cutoff_ms)`` would give (before any is filed again)."""
        return sum(self._filed[bucket] for bucket in self._due_buckets(cutoff_ms))
