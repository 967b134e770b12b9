"""Prometheus metrics, built at scrape time from counts the tracker keeps anyway.

The hot path adds to plain integers (``udpt/counters.py``); nothing here runs
per datagram. A scrape walks a few small dictionaries, reads the log's horizon
(three short read transactions) and the last peer census, and formats some
dozens of lines with ``prometheus-client``'s own exposition code, so the text
is exactly what Prometheus parses.

Labels are small fixed sets (action, result, reason, IP version, role, event
type). Never an IP address or an info hash: each would be a time series per
peer or per torrent, and would leak who uses the tracker.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from udpt import __version__
from udpt.counters import Histogram
from udpt.observe import Observer

__all__ = ["CONTENT_TYPE", "TrackerCollector", "build_registry", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class TrackerCollector(Collector):
    """Yields udpt's metric families from an ``Observer`` each time it is collected."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def collect(self) -> Iterator[Metric]:
        observer = self._observer
        counters = observer.counters
        info = GaugeMetricFamily("udpt_build_info", "udpt's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        requests = CounterMetricFamily(
            "udpt_requests", "BEP 15 requests received.", labels=["action", "ip_version"]
        )
        for (action, ip_version), count in sorted(counters.requests.items()):
            requests.add_metric([action, ip_version], count)
        yield requests
        responses = CounterMetricFamily(
            "udpt_responses",
            "Replies sent: ok, refused (flagged, not registered, over a limit) or error.",
            labels=["action", "result"],
        )
        for (action, result), count in sorted(counters.responses.items()):
            responses.add_metric([action, result], count)
        yield responses
        dropped = CounterMetricFamily(
            "udpt_datagrams_dropped", "Datagrams that got no reply, by reason.", labels=["reason"]
        )
        for reason, count in sorted(counters.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped

        quotas = observer.quotas
        if quotas is not None:
            refused = CounterMetricFamily(
                "udpt_quota_refusals",
                "Requests over a per-source quota: announces, new torrents, refusals answered "
                "but not recorded, and replies withheld (silence).",
                labels=["kind"],
            )
            refused.add_metric(["announces"], quotas.announces_refused)
            refused.add_metric(["new_torrents"], quotas.new_torrents_refused)
            refused.add_metric(["unrecorded_refusals"], quotas.refusals_unrecorded)
            refused.add_metric(["silenced"], quotas.silenced)
            yield refused
            yield GaugeMetricFamily(
                "udpt_quota_sources", "Sources whose quotas are remembered.", value=len(quotas)
            )
        kernel_drops = observer.kernel_drops()
        if kernel_drops is not None:
            yield CounterMetricFamily(
                "udpt_kernel_receive_drops",
                "Datagrams the kernel dropped because a socket's receive buffer was full.",
                value=kernel_drops,
            )

        state = observer.state
        yield GaugeMetricFamily("udpt_torrents", "Torrents tracked.", value=len(state.torrents))
        peers = GaugeMetricFamily(
            "udpt_peers",
            "Live peers, as of the last census (recounted in the background every 15 s, "
            "less often for very large states).",
            labels=["ip_version", "role"],
        )
        for (ip_version, role), count in sorted((observer.census.counts or {}).items()):
            peers.add_metric([ip_version, role], count)
        yield peers
        events = CounterMetricFamily(
            "udpt_events", "Events in the log's history, by type.", labels=["type"]
        )
        for kind, count in state.stats.by_kind.items():
            events.add_metric([kind], count)
        yield events

        yield _histogram(
            "udpt_commit_seconds", "Time to commit one batch to the log.", counters.commit_seconds
        )
        yield _histogram(
            "udpt_commit_batch_events", "Events per committed batch.", counters.commit_batch_events
        )

        facts = observer.log_facts()
        yield GaugeMetricFamily(
            "udpt_log_bytes", "Size of the log's files on disk.", value=facts.size_bytes
        )
        yield GaugeMetricFamily(
            "udpt_log_first_seq", "Oldest event kept in the log.", value=facts.first_seq
        )
        yield GaugeMetricFamily("udpt_log_last_seq", "Newest event applied.", value=facts.last_seq)
        age = GaugeMetricFamily(
            "udpt_snapshot_age_seconds",
            "Age of the events covered by the newest snapshot (absent: no snapshot yet).",
        )
        if facts.snapshot_age_s is not None:
            age.add_metric([], facts.snapshot_age_s)
        yield age
        health = observer.health()
        yield GaugeMetricFamily(
            "udpt_writer_healthy",
            "1 while the log commits, 0 from a failed commit until one succeeds.",
            value=int(health.committing),
        )
        if observer.cluster is not None:
            yield GaugeMetricFamily(
                "udpt_cluster_stream_position",
                "Last JetStream stream message applied to this node's state.",
                value=observer.cluster.position,
            )
            yield CounterMetricFamily(
                "udpt_cluster_foreign_events",
                "Events of other nodes folded into this node's state.",
                value=observer.cluster.foreign_events,
            )
        yield GaugeMetricFamily(
            "udpt_event_loop_lag_seconds",
            "How late the event loop woke a probe sleeping 0.25 s (worst of the last 5 s).",
            value=health.loop_lag_s,
        )


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = []
    cumulative = 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)


def build_registry(observer: Observer) -> CollectorRegistry:
    """A registry of its own (not the process-wide default): udpt's metrics and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrackerCollector(observer))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format of every metric in ``registry``."""
    return generate_latest(registry)
