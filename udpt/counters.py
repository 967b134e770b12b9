"""What the tracker did, counted with plain integers where it happens.

The hot path only adds to dictionaries and integers here; nothing is formatted,
labelled or locked per datagram. The metrics exporter (``udpt/metrics.py``)
reads these at scrape time, and the periodic log summaries read the same
numbers, so a counter exists once whatever shows it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["COMMIT_BATCH_BUCKETS", "COMMIT_SECONDS_BUCKETS", "Counters", "Histogram"]

COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
COMMIT_BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)


@dataclass(slots=True)
class Histogram:
    """Cumulative-at-export bucket counts, observed once per batch (not per datagram)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    observed: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.observed += 1


@dataclass(slots=True)
class Counters:
    """Counts since start, by the labels an operator filters on (never an IP or info hash).

    ``requests`` by (action, ip_version): action is ``connect``, ``announce``,
    ``scrape`` or ``invalid``; ip_version ``4`` or ``6``. ``responses`` by
    (action, result): result is ``ok``, ``refused`` (flagged, not registered,
    over a limit) or ``error`` (a malformed request answered with an error).
    ``dropped`` by reason, for datagrams that got no reply: ``malformed``,
    ``bad_connection_id``, ``over_quota`` (a source over a quota, past its error
    replies: silence), ``source_port_0``, ``queue_full`` (the receive queue),
    ``writer_full``, ``writer_closed``, ``commit_failed``, ``send_buffer_full``.
    """

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(COMMIT_SECONDS_BUCKETS))
    commit_batch_events: Histogram = field(default_factory=lambda: Histogram(COMMIT_BATCH_BUCKETS))
