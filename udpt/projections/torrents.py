"""The torrent registry: what the tracker knows of each info hash beyond its peers."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedList

from udpt.core import COMPILED
from udpt.projections.swarms import Swarm

__all__ = ["Torrent", "TorrentPy", "TorrentTable", "TorrentTablePy"]


class TorrentPy:
    """One info hash: its flag, registration, completed counter and swarm.

    ``registered`` means an operator added it (API or import), so it is allowed
    in static and private modes and survives expiry with no peers. ``completed``
    is the BEP 48 "downloaded" counter (docs/PROTOCOL.md §6.3); ``last_announce_ms``
    is the time of its last accepted announce, which bounds how long an empty,
    unregistered torrent is remembered in dynamic mode.
    """

    __slots__ = ("completed", "flagged", "last_announce_ms", "registered", "swarm")

    def __init__(
        self,
        *,
        flagged: bool = False,
        registered: bool = False,
        completed: int = 0,
        last_announce_ms: int = 0,
    ) -> None:
        self.flagged = flagged
        self.registered = registered
        self.completed = completed
        self.last_announce_ms = last_announce_ms
        self.swarm = Swarm()

    def is_forgettable(self, torrent_cutoff_ms: int) -> bool:
        """True for a torrent that dynamic mode may drop at expiry: nothing left to remember."""
        return (
            not self.flagged
            and not self.registered
            and not self.swarm
            and self.last_announce_ms < torrent_cutoff_ms
        )


# With the compiled core selected, ``udpt._core.Torrent`` stands in for the reference: the
# same fields in one object of 112 bytes that is its own swarm and holds its info hash
# (udpt/_swarm.c), where the reference is two objects and an int (160 bytes with the
# compiled Swarm). Type checkers read the reference.
if TYPE_CHECKING or not COMPILED:
    Torrent = TorrentPy
else:
    from udpt._core import Torrent


class TorrentTablePy(dict[bytes, Torrent]):
    """Torrents by info hash, their info hashes also kept in order for paging.

    ``GET /t`` pages through torrents in info-hash order; sorting a million keys
    per request stalled the loop for over a second. The order is kept as torrents
    come and go instead (in the fold, only when a torrent is created or removed),
    so a page costs O(log n + page size) wherever it starts.
    """

    __slots__ = ("_ordered",)

    keeps_key_objects = True
    """Whether the table holds its keys' objects (a restore keys it by the log's own)."""

    def __init__(self) -> None:
        super().__init__()
        self._ordered: SortedList = SortedList()

    def __setitem__(self, info_hash: bytes, torrent: Torrent) -> None:
        if info_hash not in self:
            self._ordered.add(info_hash)
        super().__setitem__(info_hash, torrent)

    def setdefault(self, info_hash: bytes, default: Torrent) -> Torrent:
        torrent = self.get(info_hash)
        if torrent is None:
            self[info_hash] = torrent = default
        return torrent

    def __delitem__(self, info_hash: bytes) -> None:
        super().__delitem__(info_hash)
        self._ordered.remove(info_hash)

    def pop(self, info_hash: bytes, *default: Any) -> Any:
        if info_hash in self:
            self._ordered.remove(info_hash)
        return super().pop(info_hash, *default)

    def page(self, offset: int, limit: int) -> list[bytes]:
        """Info hashes ``offset`` to ``offset + limit`` (exclusive), in order."""
        return list(self._ordered.islice(offset, offset + limit))


if TYPE_CHECKING or not COMPILED:
    TorrentTable = TorrentTablePy
else:
    from udpt import _core

    class TorrentTable(_core.TorrentTable, MutableMapping[bytes, Torrent]):
        """``udpt._core.TorrentTable`` (udpt/_torrents.c): the same table with the info hashes
        in the Torrents and no key objects, about 80 bytes a torrent less. What it does not
        implement itself (``keys()``, ``pop``, ``setdefault``, ...) comes from
        ``MutableMapping``, on top of its lookups."""

        __slots__ = ()

        keeps_key_objects = False
