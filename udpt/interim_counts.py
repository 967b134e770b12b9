"""Fills ``Counters`` from the counts the UDP path keeps today, until it fills them itself.

The tracker, the receive protocol and the projections already count most of
what ``Counters`` labels; this copies those totals in before each read (a
scrape, a sample, a summary), so the metrics and the status page work now at no
cost per datagram. What they do not count stays zero: ``requests`` (by action
and IP version), drops for ``source_port_0`` and ``commit_failed``, answers to
connect and scrape, and the commit histograms. Once ``udp.py``, ``tracker.py``
and the writer increment ``Counters`` where things happen, this module goes.
"""

from __future__ import annotations

from collections.abc import Callable

from udpt.counters import Counters
from udpt.projections import TrackerState
from udpt.tracker import TrackerCounters

__all__ = ["ExistingCounts"]


class ExistingCounts:
    """``sync()`` copies the current totals into ``counters`` (assignment: they are totals)."""

    def __init__(
        self,
        counters: Counters,
        tracker: TrackerCounters,
        queue_shed: Callable[[], int],
        state: TrackerState,
    ) -> None:
        self._counters = counters
        self._tracker = tracker
        self._queue_shed = queue_shed
        self._by_kind = state.stats.by_kind
        # by_kind counts the whole log's history; responses count since start.
        self._accepted_before = self._by_kind["AnnounceAccepted"]
        self._refused_before = self._by_kind["AnnounceRefused"]

    def sync(self) -> None:
        counters, tracker, by_kind = self._counters, self._tracker, self._by_kind
        counters.dropped["malformed"] = tracker.dropped
        counters.dropped["bad_connection_id"] = tracker.bad_connection_id
        counters.dropped["writer_full"] = tracker.shed
        counters.dropped["queue_full"] = self._queue_shed()
        counters.responses["announce", "ok"] = by_kind["AnnounceAccepted"] - self._accepted_before
        counters.responses["announce", "refused"] = (
            by_kind["AnnounceRefused"] - self._refused_before
        )
        counters.responses["invalid", "error"] = tracker.errors
