"""In-memory projections of the event log: torrents, swarms and stats."""

from udpt.projections.state import SnapshotError, TrackerState

__all__ = ["SnapshotError", "TrackerState"]
