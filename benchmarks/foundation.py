#!/usr/bin/env python3
"""Figures of the foundation: record size, group-commit throughput, fold and replay speed.

``python benchmarks/foundation.py [--events N] [--runs R]`` prints, as the median of R runs:

* bytes per encoded announce (IPv4 and IPv6, counters below 4 GiB);
* writer events/s: N announces submitted to a ``GroupCommitWriter`` on uvloop
  (as the daemon runs it) on a durable log (fsync per batch), applied to a
  ``TrackerState`` as each batch commits; as a burst (everything queued at
  once) and paced (a yield to the loop after every 1,000 submits);
* fold events/s: ``TrackerState.apply`` over already decoded events;
* replay events/s: decode + fold straight from the LMDB log
  (``udpt.history.folding.fold``, the start-up path).

The events model a busy tracker: 20,000 torrents, 50,000 peer endpoints (a
tenth of them IPv6), mostly periodic announces, a quarter of them seeders.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from random import Random

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from udpt.events.codec import decode_event, encode_event
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event
from udpt.events.writer import GroupCommitWriter
from udpt.history.folding import fold
from udpt.projections import TrackerState

T0 = 1_700_000_000_000


def make_announces(count: int, seed: int = 1) -> list[Event]:
    rng = Random(seed)
    hashes = [rng.randbytes(20) for _ in range(20_000)]
    endpoints = [
        (rng.randbytes(16) if n % 10 == 0 else rng.randbytes(4), rng.randrange(1024, 65536))
        for n in range(50_000)
    ]
    events: list[Event] = []
    for n in range(count):
        ip, port = rng.choice(endpoints)
        event = rng.choices(list(AnnounceEvent), weights=(90, 2, 5, 3))[0]
        left = 0 if rng.random() < 0.25 else rng.randrange(1, 1 << 31)
        events.append(
            AnnounceAccepted(
                T0 + n // 10,
                rng.choice(hashes),
                ip,
                port,
                rng.randbytes(20),
                rng.getrandbits(32),
                event,
                rng.randrange(1 << 30),
                rng.randrange(1 << 30),
                left,
            )
        )
    return events


async def write_all(path: Path, events: list[Event], chunk: int | None) -> tuple[float, int]:
    """Seconds from the first submit until everything is committed and applied; batches."""
    state = TrackerState()
    with EventLog(path, sync=True) as event_log:
        writer = GroupCommitWriter(event_log, state.apply, max_pending=len(events) + 1)
        start = time.perf_counter()
        for n, event in enumerate(events, 1):
            writer.submit(event)
            if chunk and n % chunk == 0:
                await asyncio.sleep(0)
        await writer.drain()
        elapsed = time.perf_counter() - start
        await writer.close()
        assert event_log.count() == len(events) == state.last_seq
    return elapsed, writer.batches


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def decode_all(event_log: EventLog) -> None:
    for _, record in event_log.records():
        decode_event(record)


def median_rate(count: int, seconds: list[float]) -> str:
    return f"{count / statistics.median(seconds):>12,.0f} events/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    events = make_announces(args.events)
    v4 = next(e for e in events if len(e.ip) == 4)._replace(uploaded=0, downloaded=0)
    v6 = next(e for e in events if len(e.ip) == 16)._replace(uploaded=0, downloaded=0)
    print(f"bytes per announce: IPv4 {len(encode_event(v4))}, IPv6 {len(encode_event(v6))}")
    records = [encode_event(e) for e in events]
    print(f"  (this mix: {sum(map(len, records)) / len(records):.1f} bytes on average)")

    for label, chunk in (("burst", None), ("paced", 1000)):
        seconds, batches = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="udpt-bench-") as tmp:
                elapsed, count = uvloop.run(write_all(Path(tmp), events, chunk))
            seconds.append(elapsed)
            batches.append(count)
        print(
            f"writer ({label}, fsync per batch, apply included): "
            f"{median_rate(len(events), seconds)}  ({statistics.median(batches):.0f} batches)"
        )

    decoded = [(seq, decode_event(r)) for seq, r in enumerate(records, 1)]

    def fold_decoded() -> None:
        state = TrackerState()
        for seq, event in decoded:
            state.apply(seq, event)

    fold_seconds = [timed(fold_decoded) for _ in range(args.runs)]
    print(f"fold (TrackerState.apply):          {median_rate(len(events), fold_seconds)}")

    with tempfile.TemporaryDirectory(prefix="udpt-bench-") as tmp, EventLog(tmp) as event_log:
        event_log.append_records(1, records)
        replay_seconds = [timed(lambda: fold(event_log, TrackerState())) for _ in range(args.runs)]
        decode_seconds = [timed(lambda: decode_all(event_log)) for _ in range(args.runs)]
    print(f"replay (LMDB read + decode + fold): {median_rate(len(events), replay_seconds)}")
    print(f"  of which LMDB read + decode:      {median_rate(len(events), decode_seconds)}")


if __name__ == "__main__":
    main()
