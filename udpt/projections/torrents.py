"""The torrent registry: what the tracker knows of each info hash beyond its peers."""

from __future__ import annotations

from udpt.projections.swarms import Swarm

__all__ = ["Torrent"]


class Torrent:
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
