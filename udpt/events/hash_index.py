"""The number of each info hash in the log's dictionary: its position in the dictionary's list.

The writer numbers an info hash once, at its first use, and every batch refers to
it by that number (docs/DESIGN.md §2). The list (``EventLog._hashes``) is the
dictionary; this index answers the other way, and indexes the entries appended to
the list (by the writer, or read from the log) at the next question, so list and
index never disagree. Of equal entries, a damaged dictionary's, the last wins, as
a dict built from the list would have it.

``HashIndexPy`` is the reference: a dict of hash to number, about 62 bytes an info
hash (a slot and an int of its own, where the hash is the list's object).
``udpt._core.HashIndex`` is its compiled twin (udpt/_hashindex.c): 4-byte
positions in an open-addressing table, 6 to 12 bytes an info hash. It indexes and
finds exact ``bytes`` only, which every info hash of the log and the wire is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, overload

from udpt.core import COMPILED

__all__ = ["Dictionary", "HashIndex", "HashIndexPy", "new_dictionary"]


class Dictionary(Protocol):
    """The log's dictionary by number, as far as a process has read it; it only grows."""

    def __len__(self) -> int: ...
    def __getitem__(self, number: int, /) -> bytes: ...
    def extend(self, hashes: Iterable[bytes], /) -> None: ...


def new_dictionary() -> Dictionary:
    """An empty dictionary: a list of bytes, or with the compiled core ``udpt._core.HashList``,
    the same hashes 20 bytes each where a list holds 64 (a slot and a bytes object). The
    dictionary keeps every hash the log ever numbered, so it grows as long as the tracker
    runs; ``HashList[number]`` makes a new bytes object each time."""
    if COMPILED:
        from udpt._core import HashList

        return HashList()
    return []


class HashIndexPy:
    """The number of each info hash of ``hashes``; entries appended later are indexed
    at the next question."""

    __slots__ = ("_hashes", "_indexed", "_numbers")

    def __init__(self, hashes: Dictionary) -> None:
        self._hashes = hashes
        self._numbers: dict[bytes, int] = {}
        self._indexed = 0

    def _catch_up(self) -> dict[bytes, int]:
        """Index what was appended. Two threads may do it at once: each indexes up to the
        length it read, and indexing an entry twice changes nothing."""
        hashes, numbers = self._hashes, self._numbers
        count = len(hashes)
        if count < self._indexed:  # not a dictionary's list: only ever appended to
            numbers.clear()
            self._indexed = 0
        for number in range(self._indexed, count):
            numbers[hashes[number]] = number
        self._indexed = count
        return numbers

    @overload
    def get(self, info_hash: bytes) -> int | None: ...
    @overload
    def get(self, info_hash: bytes, default: int) -> int: ...
    def get(self, info_hash: bytes, default: int | None = None) -> int | None:
        return self._catch_up().get(info_hash, default)

    def __getitem__(self, info_hash: bytes) -> int:
        return self._catch_up()[info_hash]

    def __contains__(self, info_hash: object) -> bool:
        return info_hash in self._catch_up()

    def __len__(self) -> int:
        """Entries of the list (equal ones each counted), the next number to give."""
        self._catch_up()
        return self._indexed


if TYPE_CHECKING or not COMPILED:
    HashIndex = HashIndexPy
else:
    from udpt._core import HashIndex
