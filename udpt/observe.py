"""What an operator reads: counts, peers, the log's horizon, health, and the last hour.

``Observer`` gathers, for the metrics exporter and the status page, what the
tracker already keeps (``Counters``, the projections' stats, the writer, the log)
and the few things measured here: the event loop's lag, peers by family and role
(counted in the background, see ``PeerCensus``), a ring of per-10 s samples of the
counters, and a once-a-minute log line summing up drops and refusals.

Nothing here runs per datagram. Reads happen at scrape time or every few seconds,
and none of them walks the whole state in one piece on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from udpt.counters import Counters
from udpt.events.log import EventLog
from udpt.events.writer import Writer
from udpt.health import CommitWatch, Health, LoopLagProbe, assess
from udpt.history.folding import PROGRESS_EVERY
from udpt.projections import TrackerState
from udpt.projections.torrents import TorrentTable
from udpt.quotas import SourceQuotas

__all__ = [
    "ACTIONS",
    "SAMPLE_EVERY_S",
    "ClusterFacts",
    "LogFacts",
    "Observer",
    "PeerCensus",
    "Sample",
    "StartupProgress",
    "describe_horizon",
    "summary_line",
]

log = logging.getLogger(__name__)

ACTIONS = ("connect", "announce", "scrape", "invalid")
"""The ``action`` label values of ``Counters.requests`` and ``Counters.responses``."""

SAMPLE_EVERY_S = 10.0
SAMPLES_KEPT = 360  # one hour
SUMMARY_EVERY_S = 60.0
CENSUS_EVERY_S = 15.0
CENSUS_SLICE = 2000  # torrents per step: 1-4 ms of counting between two yields
CENSUS_DUTY = 20  # rest at least 20 times as long as a pass took: at most ~5 % of a core


class PeerCensus:
    """Live peers by (ip_version, role), recounted every ``CENSUS_EVERY_S`` in slices.

    The projections keep no running totals by family and role, and summing them
    over a million torrents takes about half a second of Python: too long for one
    piece on the event loop. So the census walks the torrent table's ordered index
    ``CENSUS_SLICE`` torrents at a time (``TorrentTable.page``: O(log n) to find a
    slice, nothing copied) and yields between slices. Torrents added or dropped
    during a pass may be counted once too often or not at all: the numbers are
    exact for a quiet tracker and within the churn of one pass otherwise, as of the
    last finished pass.

    Walking in hash order touches torrents at random places in memory: about 2 µs
    each, 2.4 s per pass at a million torrents (measured). So passes are spaced
    ``CENSUS_EVERY_S`` apart, or ``CENSUS_DUTY`` times the last pass's duration if
    that is longer: every 15 s up to a few hundred thousand torrents, about once a
    minute at a million.
    """

    def __init__(self, torrents: TorrentTable) -> None:
        self._torrents = torrents
        self.counts: dict[tuple[str, str], int] | None = None
        self.counted_at: float | None = None

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.count()
            await asyncio.sleep(max(CENSUS_EVERY_S, CENSUS_DUTY * (time.monotonic() - started)))

    async def count(self) -> None:
        torrents = self._torrents
        seeders4 = leechers4 = seeders6 = leechers6 = 0
        offset = 0
        while True:
            keys = torrents.page(offset, CENSUS_SLICE)
            for key in keys:
                torrent = torrents.get(key)
                if torrent is None:  # dropped since the slice was taken
                    continue
                s4, l4, s6, l6 = torrent.swarm.counts()
                seeders4 += s4
                leechers4 += l4
                seeders6 += s6
                leechers6 += l6
            if len(keys) < CENSUS_SLICE:
                break
            offset += CENSUS_SLICE
            await asyncio.sleep(0)
        self.counts = {
            ("4", "seeder"): seeders4,
            ("4", "leecher"): leechers4,
            ("6", "seeder"): seeders6,
            ("6", "leecher"): leechers6,
        }
        self.counted_at = time.time()


@dataclass(frozen=True, slots=True)
class Sample:
    """The counters at one moment (wall-clock seconds), for rates over the last hour."""

    at: float
    requests: dict[str, int]
    dropped: int


@dataclass(frozen=True, slots=True)
class LogFacts:
    """The log as an operator sees it: size, horizon, newest snapshot."""

    size_bytes: int
    first_seq: int
    last_seq: int
    snapshot_seq: int
    snapshot_age_s: float | None
    """Time since the newest snapshot was taken (for the one found at start-up: since its
    last event); None: no snapshot yet."""


class ClusterFacts(Protocol):
    """What a cluster node's writer (udpt.cluster.writer) tells the operator."""

    position: int
    foreign_events: int


class Observer:
    """Everything the metrics, ``/health`` and the status page read, in one place."""

    def __init__(
        self,
        counters: Counters,
        state: TrackerState,
        writer: Writer,
        event_log: EventLog,
        now_ms: Callable[[], int],
    ) -> None:
        self.counters = counters
        self.state = state
        self.writer = writer
        self._log = event_log
        self._now_ms = now_ms
        self.started_at = time.time()
        self.probe = LoopLagProbe()
        self.commits = CommitWatch(writer)
        self.census = PeerCensus(state.torrents)
        self.samples: deque[Sample] = deque(maxlen=SAMPLES_KEPT)
        # Set by the daemon once it has them: the quotas' counts and the UDP endpoints,
        # whose sockets tell the datagrams the kernel dropped before udpt read them.
        self.quotas: SourceQuotas | None = None
        self.kernel_drops: Callable[[], int | None] = _unknown
        # A cluster node's writer: its stream position and the other nodes' events it folded.
        self.cluster: ClusterFacts | None = None
        # What only LMDB knows is read here, once, before the writer commits anything: while
        # serving, a read transaction on this thread could overlap the writer thread growing
        # the map (mdb_env_set_mapsize), which LMDB forbids while the process has one open.
        self._first_seq = event_log.first_seq()
        snapshots = event_log.snapshot_seqs()
        self._snapshot: tuple[int, int] | None = None  # (seq, event-clock ms it covers up to)
        if snapshots:
            [(seq, event)] = event_log.events(snapshots[-1], snapshots[-1])
            self._snapshot = (seq, event.at_ms)

    def start(self) -> list[asyncio.Task[None]]:
        """The background tasks; the caller cancels them at shutdown."""
        return [
            asyncio.create_task(self.probe.run(), name="loop-lag-probe"),
            asyncio.create_task(self.commits.run(), name="commit-watch"),
            asyncio.create_task(self.census.run(), name="peer-census"),
            asyncio.create_task(self._sample_periodically(), name="counter-samples"),
            asyncio.create_task(self._summarise_periodically(), name="activity-summary"),
        ]

    # -- reads -----------------------------------------------------------

    def health(self) -> Health:
        return assess(self.probe, self.commits, asyncio.get_running_loop().time())

    def snapshot_taken(self, seq: int) -> None:
        """A snapshot at ``seq`` was stored just now (the daemon's periodic snapshots)."""
        self._snapshot = (seq, self._now_ms())

    def log_pruned(self, first_seq: int) -> None:
        """Log maintenance pruned events: the oldest one kept is now ``first_seq``."""
        self._first_seq = first_seq

    def log_facts(self) -> LogFacts:
        """A stat of the log's files and what is known in memory; no LMDB transaction."""
        snapshot_seq, age = 0, None
        if self._snapshot is not None:
            snapshot_seq, at_ms = self._snapshot
            age = max(0.0, (self._now_ms() - at_ms) / 1000)
        return LogFacts(
            size_bytes=self._log.size_on_disk(),
            first_seq=(self._first_seq or 1) if self.state.last_seq else 0,
            last_seq=self.state.last_seq,
            snapshot_seq=snapshot_seq,
            snapshot_age_s=age,
        )

    def sample_now(self) -> Sample:
        counters = self.counters
        requests: Counter[str] = Counter()
        for (action, _), count in counters.requests.items():
            requests[action] += count
        return Sample(time.time(), dict(requests), sum(counters.dropped.values()))

    # -- periodic work ---------------------------------------------------

    async def _sample_periodically(self) -> None:
        while True:
            self.samples.append(self.sample_now())
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def _summarise_periodically(self) -> None:
        """One line a minute with what was dropped or refused, only when something was."""
        before = self._drops_and_refusals()
        while True:
            await asyncio.sleep(SUMMARY_EVERY_S)
            now = self._drops_and_refusals()
            line = summary_line(now[0] - before[0], now[1] - before[1], SUMMARY_EVERY_S)
            if line:
                log.info("%s", line)
            before = now

    def _drops_and_refusals(self) -> tuple[Counter[str], Counter[str]]:
        counters = self.counters
        refused = Counter(
            {action: n for (action, result), n in counters.responses.items() if result == "refused"}
        )
        return Counter(counters.dropped), refused


def summary_line(dropped: Counter[str], refused: Counter[str], seconds: float) -> str:
    """``"last 60 s: dropped 12 (malformed 10, ...); refused 3 (announce 3)"``, or ``""``."""
    parts = []
    for verb, counts in (("dropped", dropped), ("refused", refused)):
        positive = {name: n for name, n in counts.items() if n > 0}
        if positive:
            detail = ", ".join(f"{name} {n}" for name, n in sorted(positive.items()))
            parts.append(f"{verb} {sum(positive.values())} ({detail})")
    return f"last {seconds:g} s: " + "; ".join(parts) if parts else ""


class StartupProgress:
    """The ``progress`` callback of ``recover``: a line every few seconds while replaying.

    ``recover`` calls it every ``PROGRESS_EVERY`` events with the sequence number
    reached. The rate is measured from the first call on: restoring the snapshot
    comes before it and is no measure of how fast events replay.
    """

    def __init__(self, last_seq: int, every_s: float = 5.0) -> None:
        self._last_seq = last_seq
        self._every_s = every_s
        self._calls = 0
        self._first: tuple[float, int] = (0.0, 0)
        self._logged_at = 0.0

    def __call__(self, seq: int) -> None:
        now = time.monotonic()
        self._calls += 1
        if self._calls == 1:
            self._first = (now, seq)
            self._logged_at = now
            return
        if now - self._logged_at < self._every_s:
            return
        self._logged_at = now
        started, first_seq = self._first
        rate = (seq - first_seq) / max(now - started, 1e-9)
        log.info(
            "replaying the log: %d events replayed, at seq %d of %d, %.0f events/s, "
            "about %.0f s left",
            self._calls * PROGRESS_EVERY,
            seq,
            self._last_seq,
            rate,
            max(self._last_seq - seq, 0) / rate if rate else 0,
        )


def describe_horizon(event_log: EventLog) -> str:
    """``"<dir>: events 1..5000 (snapshot at 4000)"``, for the start-up line."""
    first, last = event_log.first_seq(), event_log.last_seq()
    snapshots = event_log.snapshot_seqs()
    horizon = f"events {first}..{last}" if last else "no events yet"
    snapshot = f", newest snapshot at {snapshots[-1]}" if snapshots else ", no snapshot"
    return f"{event_log.path.resolve()}: {horizon}{snapshot}"


def _unknown() -> int | None:
    return None
