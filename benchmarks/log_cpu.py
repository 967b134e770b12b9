#!/usr/bin/env python3
"""CPU per event of the log's two threads: the writer's commits and compaction.

``python benchmarks/log_cpu.py [--events 200000] [--batch 50] [--fsync]`` writes
``benchmarks/make_log.py``'s events into a log in a temp dir the way the live
writer does (``EventLog.append_batch`` of ``batch`` events, fsync off unless
``--fsync``), timing the thread's CPU per event appended, then runs
``LogMaintenance.compact`` until nothing is left to re-cut and prints its CPU time
per event compacted and the bytes per event of the values it wrote. Both threads
share the tracker's core with the event loop. Under ``benchmarks/run.py``'s load the
writer commits 50 to 100 events at a time; batches bigger than a page are compressed at once and
left alone by compaction, smaller ones are compacted once.

With ``--fsync`` the CPU per event includes what the kernel spends syncing each
commit in the writer's thread (``time.thread_time`` counts system time): on a
virtual machine that is most of a durable commit's CPU, and the tracker's core pays it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from random import Random

import make_log

from udpt.events.log import EventLog
from udpt.events.maintenance import LogMaintenance, MaintenanceReport


def measure(events: int, batch: int, fsync: bool) -> tuple[float, float, float]:
    """CPU seconds per event appended and per event compacted, and bytes per event of the
    compacted values."""
    generated = list(make_log.generate(Random(7), events, 1000, 10_000))
    with (
        tempfile.TemporaryDirectory(prefix="udpt-log-cpu-") as tmp,
        EventLog(Path(tmp) / "log", sync=fsync) as log,
    ):
        began = time.thread_time()
        for start in range(0, len(generated), batch):
            log.append_batch(start + 1, generated[start : start + batch])
        appending = (time.thread_time() - began) / len(generated)
        maintenance = LogMaintenance(log, retention_ms=0)
        compacted = 0
        began = time.thread_time()
        while True:
            report = MaintenanceReport()
            maintenance.compact(report)
            if not report.compacted:
                break
            compacted += report.compacted
        spent = time.thread_time() - began
        entries, _ = log.entries(1, 1 << 30)
        size = sum(len(value) for _, value in entries)
    return appending, spent / max(compacted, 1), size / len(generated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50, help="events per batch written")
    parser.add_argument("--fsync", action="store_true", help="sync each commit, as the daemon")
    args = parser.parse_args(argv)
    appending, compacting, size = measure(args.events, args.batch, args.fsync)
    print(
        f"writer: {appending * 1e6:.2f} us of CPU per event appended "
        f"({appending * args.batch * 1e6:.0f} us a commit); compaction: "
        f"{compacting * 1e6:.2f} us per event compacted, values {size:.1f} bytes per event"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
