#!/usr/bin/env python3
"""Bytes on disk per announce, and read speed, of a log written through the real writer.

``python benchmarks/log_size.py --events 300000 --batch 36``

Events come from ``make_log.generate`` (Zipf popularity, real client prefixes,
10 % IPv6, piece-sized counters) or, with ``--loadgen``, look like
``benchmarks/loadgen``'s (uniform torrents, one client prefix, random 30-bit
counters: the worst case for compression). They go through
``GroupCommitWriter`` in groups of ``--batch`` events, each group one commit,
as the daemon commits them (about 36 events per commit at 15,000 announces/s),
and compacted every ``--rate`` events as the daemon's log maintenance does
every second. The log directory is then measured whole (every file in it) and read back:
decode alone (``EventLog.event_batches``) and decode + fold into a
``TrackerState``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from random import Random

import make_log

from udpt.events.log import EventLog
from udpt.events.maintenance import LogMaintenance
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event
from udpt.events.writer import Batch, GroupCommitWriter
from udpt.projections import TrackerState

ALPHANUMERIC = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def loadgen_like(rng: Random, events: int, torrents: int, peers: int) -> list[Event]:
    """Announces shaped as benchmarks/loadgen sends them (see its README)."""
    hashes = [rng.randbytes(20) for _ in range(torrents)]
    population = [
        (
            b"-UL0001-" + bytes(rng.choice(ALPHANUMERIC) for _ in range(12)),
            rng.getrandbits(32),
            1024 + number % 64512,
            hashes[rng.randrange(torrents)],
            rng.random() < 0.3,
        )
        for number in range(peers)
    ]
    out: list[Event] = []
    now = make_log.START_MS
    for _ in range(events):
        now += rng.random() < 0.07  # about 15 announces per millisecond
        peer_id, key, port, info_hash, seeder = population[rng.randrange(peers)]
        left = 0 if seeder else 1 + (rng.getrandbits(64) >> 34)
        out.append(
            AnnounceAccepted(
                now,
                info_hash,
                b"\x7f\x00\x00\x01",
                port,
                peer_id,
                key,
                AnnounceEvent.NONE,
                rng.getrandbits(64) >> 34,
                rng.getrandbits(64) >> 34,
                left,
            )
        )
    return out


def _ignore_committed(first_seq: int, batch: Batch, seconds: float) -> None:
    """Nothing to apply: only the log is measured."""


def _raise_failed(batch: Batch, error: BaseException) -> None:
    raise error


async def write(db: Path, events: list[Event], batch: int, rate: int) -> None:
    """Commit ``batch`` events at a time; every ``rate`` events (a second of the daemon's
    life at that rate) run the log maintenance, as the daemon does every second."""
    with EventLog(db, sync=False) as log:
        writer = GroupCommitWriter(log, _ignore_committed, _raise_failed, linger_s=0)
        maintenance = LogMaintenance(log, retention_ms=0)
        for first in range(0, len(events), batch):
            for event in events[first : first + batch]:
                writer.submit(event)
            await writer.drain()
            if first // rate != (first + batch) // rate:
                maintenance.run(now_ms=0)
        await writer.close()


def directory_bytes(db: Path) -> int:
    return sum(f.stat().st_size for f in db.iterdir() if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=36, help="events per commit")
    parser.add_argument("--rate", type=int, default=15_000, help="events per daemon second")
    parser.add_argument("--torrents", type=int, default=1_000)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--loadgen", action="store_true", help="loadgen-shaped announces")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = Random(args.seed)
    if args.loadgen:
        events = loadgen_like(rng, args.events, args.torrents, args.peers)
    else:
        events = list(make_log.generate(rng, args.events, args.torrents, args.peers))
    announces = sum(type(e) is AnnounceAccepted for e in events)
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "log"
        started = time.perf_counter()
        asyncio.run(write(db, events, args.batch, args.rate))
        written = time.perf_counter() - started
        size = directory_bytes(db)
        with EventLog(db, readonly=True) as log:
            started = time.perf_counter()
            decoded = sum(len(batch) for _, batch in log.event_batches())
            decode_s = time.perf_counter() - started
            state = TrackerState()
            apply = state.apply
            started = time.perf_counter()
            for first, batch in log.event_batches():
                for seq, event in enumerate(batch, first):
                    apply(seq, event)
            fold_s = time.perf_counter() - started
    assert decoded == len(events)
    print(
        f"{len(events):,} events ({announces:,} announces) in commits of {args.batch}, "
        f"{'loadgen-shaped' if args.loadgen else 'make_log'}: written in {written:.1f} s\n"
        f"  data directory      {size:,} bytes = {size / announces:.1f} bytes per announce\n"
        f"  decode alone        {len(events) / decode_s:,.0f} events/s\n"
        f"  decode + fold       {len(events) / fold_s:,.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
