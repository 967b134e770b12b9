#!/usr/bin/env python3
"""The data directory under steady load with a time-compressed retention, and loop stalls.

``python benchmarks/log_retention.py --duration 40 --rate 4000 --retention 6``

Runs the real daemon (``udpt.daemon.serve``, uvloop) in this process with
``[log] retention``, ``snapshot_interval`` and (unless ``--no-archive``) an
``archive_dir``, drives it with ``benchmarks/loadgen`` (built with the system
compiler), and prints the data directory's size every 5 s, its growth between
the 20th and 40th second, bytes per announce, and the longest stall of the
event loop seen by a probe coroutine that asks to wake every 5 ms. With
``--retention 0 --rate 0 --duration 15`` it measures bytes per announce at
full speed with everything kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from udpt.config import load_config
from udpt.daemon import Running, serve
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted

HERE = Path(__file__).resolve().parent
PROBE_S = 0.005


def directory_bytes(path: Path) -> int:
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


async def probe(stalls: list[float]) -> None:
    """How late the loop wakes a coroutine that sleeps ``PROBE_S`` (the stall it would see)."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        stalls.append(time.perf_counter() - started - PROBE_S)


async def measure(args: argparse.Namespace, work: Path, loadgen: Path) -> None:
    db, archive = work / "log", work / "archive"
    defaults = load_config(None)
    config = dataclasses.replace(
        defaults,
        db_path=db,
        http=None,
        udp=dataclasses.replace(defaults.udp, bind_address="127.0.0.1:0"),
        log=dataclasses.replace(
            defaults.log,
            retention=args.retention,
            snapshot_interval=args.snapshot_interval,
            archive_dir="" if args.no_archive else str(archive),
        ),
        # One load generator is one source far beyond any client's rate: no quotas.
        quotas=dataclasses.replace(
            defaults.quotas, announces_per_second=0, new_torrents_per_minute=0
        ),
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    daemon = asyncio.create_task(serve(config, stop_event=stop, ready=ready.set_result))
    running = await ready
    stalls: list[float] = []
    prober = asyncio.create_task(probe(stalls))
    load = await asyncio.create_subprocess_exec(
        str(loadgen),
        "--port",
        str(running.udp_addresses[0][1]),
        "--duration",
        str(args.duration),
        "--sockets",
        "25",
        "--peers",
        "400",
        "--window",
        "4",
        "--torrents",
        "1000",
        "--peer-torrents",
        "1",
        "--rate",
        str(args.rate),
        "--json",
        stdout=subprocess.DEVNULL,
    )
    started = time.monotonic()
    sizes: dict[int, tuple[int, int]] = {}
    while load.returncode is None:
        second = round(time.monotonic() - started)
        sizes[second] = (directory_bytes(db), directory_bytes(archive))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.wait(), 1.0)
    prober.cancel()
    stop.set()
    await daemon
    with EventLog(db, readonly=True) as log:
        live = sum(type(e) is AnnounceAccepted for _, e in log.events())
        first, last = log.first_seq(), log.last_seq()
    final = directory_bytes(db)
    for second in sorted(sizes):
        if second % 5 == 0:
            data, archived = sizes[second]
            print(f"  t={second:3d} s  data dir {data:>12,} B   archive {archived:>12,} B")
    if 20 in sizes and 40 in sizes:
        growth = sizes[40][0] / sizes[20][0] - 1
        print(f"growth of the data directory from 20 s to 40 s: {growth:+.1%}")
    stalls.sort()
    print(
        f"log: events {first:,}..{last:,}, {live:,} announces held, data dir {final:,} B "
        f"= {final / max(live, 1):.1f} B per announce held\n"
        f"loop stalls (probe every {PROBE_S * 1000:.0f} ms): max {stalls[-1] * 1000:.1f} ms, "
        f"p99 {stalls[len(stalls) * 99 // 100] * 1000:.1f} ms, {len(stalls):,} samples"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=40)
    parser.add_argument("--rate", type=int, default=4000, help="requests/s; 0 = full speed")
    parser.add_argument("--retention", type=int, default=6)
    parser.add_argument("--snapshot-interval", type=int, default=2)
    parser.add_argument("--no-archive", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loadgen = work / "loadgen"
        compiler = shutil.which("gcc") or shutil.which("cc") or "cc"
        subprocess.run(
            [compiler, "-O2", "-o", str(loadgen), str(HERE / "loadgen" / "loadgen.c")], check=True
        )
        uvloop.run(measure(args, work, loadgen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
