"""The log on a finite disk: compaction, retention and archiving, in short transactions.

``LogMaintenance.run(now_ms)`` does a bounded amount of each, and is meant to
be called every second or so on a thread of its own (never on the event loop:
it decodes and encodes batches). Every change is one short write transaction,
so the writer waits at most one of them, and every read is a short read
transaction, so that no reader keeps LMDB from reusing the pages it frees:
the data directory stays flat once the retention is reached.

* **Compaction.** The daemon commits small groups (about 50 events at 30,000
  announces/s), stored uncompressed (``EventLog``: compressing them too would
  be paid twice), and such values leave much of their LMDB page empty.
  Runs of small batches are re-cut into compressed batches that each fill one
  page (the last of a run, the rest, starts the next run): same events, same
  sequence numbers, little slack. Not larger: a
  value of several pages needs that many *contiguous* free pages, which the
  freelist, fragmented by the writer's single pages, seldom has, so the file
  would grow though pages are free. Readers see the events before or after a
  merge, never both (one transaction), and ``EventLog`` readers cope with a
  merge between two of their chunks.
* **Retention.** The oldest batches whose events are all older than the
  retention *and* covered by the newest committed snapshot are deleted, at
  most ``PRUNE_ENTRIES`` per transaction. Admin events stay (``admin``
  database, see ``udpt.events.log``); the newest batch always stays.
* **Archive.** With an archive, pruned events are first in a durable archive
  file (``udpt.events.archive``) before the transaction that deletes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from udpt.events.archive import Archive
from udpt.events.batch import BATCH_TAGS, batch_last_ms, hash_numbers
from udpt.events.codec import decode_event
from udpt.events.log import FULL, EventLog, LogError, entry_count

__all__ = ["LogMaintenance", "MaintenanceReport"]

log = logging.getLogger(__name__)

RUN_PAGES = 8
"""Pages' worth of small values re-cut at a time."""
COMPACT_SCAN = 512
PRUNE_ENTRIES = 32
MAX_ROUNDS = 64
"""Transactions of each kind per run, so one run's time is bounded too."""
AIM = 0.95
"""Of a page, what the first cut of a value is sized for: between ``FULL`` and the page,
so that most values are encoded once (each encoding compresses its events again)."""


@dataclass(slots=True)
class MaintenanceReport:
    compacted: int = 0
    """Events moved into merged batches."""
    pruned: int = 0
    archived: int = 0


def _last_ms(value: bytes) -> int:
    return batch_last_ms(value) if value[0] in BATCH_TAGS else decode_event(value).at_ms


class LogMaintenance:
    """Compacts, prunes and archives one log; one instance, one thread, per log."""

    def __init__(
        self, event_log: EventLog, retention_ms: int, archive: Archive | None = None
    ) -> None:
        self.log = event_log
        self.retention_ms = retention_ms
        self.archive = archive
        self._archived_to = archive.last_seq() if archive is not None else 0
        self._compacted_to = 0
        self._per_event = 0.0
        """Bytes per event in the last compressed value: the writer's values are not
        compressed, so their sizes say little of how many events fill a page."""

    def run(self, now_ms: int) -> MaintenanceReport:
        """Prune (and archive) what the retention lets go of, then compact what is left."""
        report = MaintenanceReport()
        if self.retention_ms:
            self.prune(now_ms - self.retention_ms, report)
        self.compact(report)
        return report

    # -- retention -----------------------------------------------------------

    def prune(self, cutoff_ms: int, report: MaintenanceReport) -> None:
        """Delete the oldest batches with every event before ``cutoff_ms`` and in a snapshot."""
        for _ in range(MAX_ROUNDS):
            entries, snapshot_seq = self.log.entries(0, PRUNE_ENTRIES)
            eligible = []
            for first, value in entries:
                if first + entry_count(value) - 1 > snapshot_seq or _last_ms(value) >= cutoff_ms:
                    break
                eligible.append((first, value))
            if not eligible:
                return
            if self.archive is not None:
                report.archived += self._archive(eligible)
            self.log.prune(eligible)
            report.pruned += sum(entry_count(value) for _, value in eligible)

    def _archive(self, entries: list[tuple[int, bytes]]) -> int:
        """Copy what the archive lacks of ``entries`` into a new archive file."""
        assert self.archive is not None
        values = [
            (first, value)
            for first, value in entries
            if first + entry_count(value) - 1 > self._archived_to
        ]
        if not values:
            return 0
        numbers: set[int] = set()
        for _, value in values:
            if value[0] in BATCH_TAGS:
                numbers |= hash_numbers(value)
        first_ms = self.log.decode(values[0][1])[0].at_ms
        file = self.archive.write(values, self.log.dictionary(sorted(numbers)), first_ms)
        archived = file.last_seq - max(file.first_seq, self._archived_to + 1) + 1
        self._archived_to = file.last_seq
        return archived

    # -- compaction ------------------------------------------------------------

    def compact(self, report: MaintenanceReport) -> None:
        """Re-cut runs of small batches into values that each fill one LMDB page.

        One read of up to ``COMPACT_SCAN`` values is re-cut run after run, the
        rest of each run (its last value, part full) starting the next: under
        load a read holds dozens of runs, and reading it again for each one cost
        more than the re-cutting itself.
        """
        limit = self.log.value_limit
        cuts = 0
        while cuts < MAX_ROUNDS:
            entries, _ = self.log.entries(self._compacted_to + 1, COMPACT_SCAN)
            run: list[tuple[int, bytes]] = []
            size = carried = 0  # carried: events of the rest that starts the run
            cut_before = cuts
            for first, value in entries:
                if not run and len(value) > limit * FULL:
                    self._compacted_to = first + entry_count(value) - 1  # fills a page already
                    continue
                run.append((first, value))
                size += len(value)
                if size < RUN_PAGES * limit:
                    continue
                try:
                    rest = self._recut(run, size, limit)
                except LogError:
                    log.warning("the log changed under compaction at seq %d; skipped", run[0][0])
                    return
                cuts += 1
                report.compacted += sum(entry_count(value) for _, value in run) - carried
                if rest is None:
                    run, size, carried = [], 0, 0
                else:
                    run, size, carried = [rest], len(rest[1]), entry_count(rest[1])
                if cuts == MAX_ROUNDS:
                    return
            if cuts == cut_before:
                return  # wait until a full run has gathered

    def _recut(
        self, run: list[tuple[int, bytes]], size: int, limit: int
    ) -> tuple[int, bytes] | None:
        """Replace ``run`` by values of at most ``limit`` bytes, all but the last nearly full;
        returns that last one (the rest) unless it is full too: it starts the next run.

        The number of events per value is estimated from the bytes per event seen so
        far (aiming at ``AIM`` of a page), raised (at most twice) while the value is well
        under a page and cut by 5 % until it fits: mostly one encoding per page.
        """
        first_seq = run[0][0]
        events = self.log.stored_run([value for _, value in run])
        per_event = self._per_event or size / len(events)
        values = []
        start = 0
        while (len(events) - start) * per_event > limit:
            remaining = len(events) - start
            count, grow = int(limit * AIM / per_event), 2
            while True:
                count = max(min(count, remaining), 1)
                value = events.encode(start, count)
                if len(value) > limit and count > 1:
                    count, grow = int(count * 0.95), 0  # shrink until it fits, then stop
                elif grow and len(value) < limit * FULL and count < remaining:
                    count, grow = int(count * limit * 0.97 / len(value)), grow - 1
                else:
                    break
            per_event = self._per_event = len(value) / count
            values.append((first_seq + start, value))
            start += count
        if start < len(events):
            values.append((first_seq + start, events.encode(start, len(events) - start)))
        rest = values[-1] if len(values[-1][1]) <= limit * FULL else None
        self.log.replace(run, values)
        self._compacted_to = (rest[0] if rest is not None else first_seq + len(events)) - 1
        return rest
