"""A replayed state in numbers, as ``tools/replay.py`` prints it (``--json`` keys)."""

from __future__ import annotations

from typing import Any

from udpt.events.log import LogReader
from udpt.history.points import event_time, format_time
from udpt.history.recovery import Replay

__all__ = ["summarize"]


def summarize(log: LogReader, run: Replay) -> dict[str, Any]:
    """The log's extent, the state's counts, and what the replay cost."""
    state = run.state
    seeders, leechers, completed = state.totals()
    first_seq = log.first_seq()
    first_ms = event_time(log, first_seq) if first_seq else None
    last_ms = event_time(log, state.last_seq) if state.last_seq else None
    return {
        "log": str(log.path),
        "size_on_disk": log.size_on_disk(),
        "records": log.count(),
        "first_seq": first_seq,
        "first_time": None if first_ms is None else format_time(first_ms),
        "last_seq": state.last_seq,
        "last_time": None if last_ms is None else format_time(last_ms),
        "events": sum(state.stats.by_kind.values()),
        "events_by_type": dict(state.stats.by_kind),
        "torrents": len(state.torrents),
        "flagged": sum(1 for t in state.torrents.values() if t.flagged),
        "registered": sum(1 for t in state.torrents.values() if t.registered),
        "seeders": seeders,
        "leechers": leechers,
        "completed": completed,
        "peers_expired": state.stats.peers_expired,
        "snapshot_seq": run.snapshot_seq,
        "replayed": run.replayed,
        "replay_seconds": round(run.seconds, 6),
        "events_per_second": round(run.events_per_second),
    }
