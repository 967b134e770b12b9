#!/usr/bin/env python3
"""udpt's figures beyond the load test: replay, restart, memory, disk, snapshot stalls.

Called by ``benchmarks/run.py``; the parts that must run in a fresh process
(memory, restart, stalls) re-enter this file as ``python figures.py PART DB``.
Logs are generated with ``benchmarks/make_log.py`` (seeded, reproducible).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from random import Random

import make_log

from udpt.clock import EventClock
from udpt.config import load_config
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, Event
from udpt.history.apply import apply_batch
from udpt.history.recovery import recover, take_snapshot
from udpt.history.snapshot_fork import fork_snapshot
from udpt.projections import TrackerState

HERE = Path(__file__).resolve().parent
EPOCH_MS = 1_764_720_000_000
"""2025-12-03 in milliseconds since 1970: when the memory shapes' announces happen."""
Row = tuple[str, str, str]


@dataclass(frozen=True)
class Scale:
    disk_events: int = 200_000
    replay_events: int = 10_000_000
    restart_peers: int = 1_000_000
    restart_torrents: int = 100_000
    restart_tail: int = 50_000
    stall_seconds: float = 30.0
    few_peers: int = 300_000
    one_peer_torrents: int = 200_000

    @classmethod
    def quick(cls) -> Scale:
        return cls(2_000, 20_000, 5_000, 500, 500, 3.0, 3_000, 2_000)


def write_log(db: Path, events: int, torrents: int, peers: int) -> int:
    """A generated log; returns its last sequence number."""
    make_log.main(
        [str(db), "--events", str(events), "--torrents", str(torrents), "--peers", str(peers)]
    )
    with EventLog(db, readonly=True) as log:
        return log.last_seq()


def disk_per_announce(work: Path, events: int) -> float:
    """File bytes per AnnounceAccepted record, LMDB's pages and tree included."""
    announces = [
        e
        for e in make_log.generate(Random(7), events * 2, 1000, 10_000)
        if type(e) is AnnounceAccepted
    ][:events]
    with EventLog(work / "disk", sync=False) as log:
        for start in range(0, len(announces), 50_000):
            log.append_events(announces[start : start + 50_000])
        return log.size_on_disk() / len(announces)


def replay_rate(db: Path, rounds: int) -> tuple[float, int]:
    """Median events/s of a full replay (no snapshot) of the log at ``db``."""
    rates = []
    with EventLog(db, readonly=True) as log:
        count = log.count()
        for _ in range(rounds):
            started = time.perf_counter()
            recover(log, use_snapshots=False)
            rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates), count


def in_fresh_process(part: str, db: Path, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), part, str(db), *extra],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def anon_bytes() -> int:
    """RssAnon: the process's own memory, without the log's mapped pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def part_restart(db: Path) -> dict:
    """Start-up as the daemon does it (snapshot + tail), timed, and the memory it then holds
    (the log's dictionaries included)."""
    before = rss_bytes()
    started = time.perf_counter()
    with EventLog(db, readonly=True) as log:
        state, snapshot_seq = recover(log)
        seconds = time.perf_counter() - started
        log.hash_numbers()  # the writer's numbers, which the daemon holds from its first commit
    peers = state.peer_count()
    return {
        "seconds": seconds,
        "peers": peers,
        "torrents": len(state.torrents),
        "tail": state.last_seq - snapshot_seq,
        "rss_per_peer": (rss_bytes() - before) / peers,
    }


def fold_shape(peers: int, torrents: int, random_hashes: bool = False) -> TrackerState:
    """``peers`` spread evenly over ``torrents``, folded as replay does: a distinct IPv4
    address per peer, half of them seeders, a batch of a thousand at a time, at times of
    today's clock (a time in milliseconds since 1970 is an int of its own in Python,
    where a small one would be shared). The info hashes are the torrents' numbers, so
    each new one sorts after the last, unless ``random_hashes``: then they are spread as
    real ones are, and the compiled table's ordered blocks split as they do live."""
    state = TrackerState()
    batch: list[Event] = []
    for n in range(peers):
        ip = (0x0A000000 + n).to_bytes(4, "big")
        number = (n % torrents).to_bytes(20, "big")
        info_hash = hashlib.blake2b(number, digest_size=20).digest() if random_hashes else number
        at_ms = EPOCH_MS + n
        batch.append(AnnounceAccepted(at_ms, info_hash, ip, 6881, bytes(20), 0, 2, 0, 0, n % 2))
        if len(batch) == 1000 or n == peers - 1:
            apply_batch(state, state.last_seq + 1, batch)
            batch = []
    return state


def part_memory_shape(peers: int, torrents: int, random_hashes: bool = False) -> dict:
    """Process growth per peer and per torrent for ``peers`` spread evenly over ``torrents``."""
    before = rss_bytes()
    state = fold_shape(peers, torrents, random_hashes)
    grown = rss_bytes() - before
    return {"peers": state.peer_count(), "torrents": len(state.torrents), "bytes": grown}


def part_source_counts(peers: int, torrents: int) -> dict:
    """What the counts per source add once asked, per peer: the daemon asks them of every
    swarm of ``INDEXED_SWARM`` peers or more that a newcomer joins (the ports quota)."""
    state = fold_shape(peers, torrents)
    before = rss_bytes()
    for torrent in state.torrents.values():
        torrent.swarm.peers_from(b"\x0b\x00\x00\x00", 4, 16)
    return {"peers": state.peer_count(), "bytes_per_peer": (rss_bytes() - before) / peers}


def part_logged_torrents(count: int) -> dict:
    """Anonymous memory per one-peer torrent when its announces go through a log, as in the
    daemon: the state, and the log's dictionaries (by number, as maintenance reads it, and
    the writer's numbers by hash)."""
    with tempfile.TemporaryDirectory() as work, EventLog(Path(work) / "log", sync=False) as log:
        log.hash_numbers()
        before = anon_bytes()
        state = TrackerState()
        for start in range(0, count, 1000):
            batch: list[Event] = [
                AnnounceAccepted(
                    EPOCH_MS + n,
                    n.to_bytes(20, "big"),
                    (0x0A000000 + n).to_bytes(4, "big"),
                    6881,
                    bytes(20),
                    0,
                    2,
                    0,
                    0,
                    1,
                )
                for n in range(start, min(start + 1000, count))
            ]
            first, _ = log.append_events(batch)
            apply_batch(state, first, batch)
        log.entries(1, 1)  # maintenance's read, which loads the dictionary by number
        return {
            "torrents": len(state.torrents),
            "bytes_per_torrent": (anon_bytes() - before) / count,
        }


def part_snapshot_memory(db: Path) -> dict:
    """Memory while the daemon takes a snapshot, as a multiple of the live state.

    The live state is this process's growth when it recovers the log (as the
    daemon holds it; it then freezes the collector's generations as the daemon
    does). The daemon forks its snapshot child (``udpt.history.snapshot_fork``):
    parent and child share the memory until one of them writes to a page, so
    the sum of both processes' proportional set sizes is what they use
    together. Then the daemon stores the child's file in the log, which costs
    LMDB's dirty pages of each transaction. The peak of either phase, less the
    process's size before the fork, is what the snapshot adds:
    ``(live + added) / live`` is the figure.
    """
    before = rss_bytes()
    with EventLog(db, readonly=True) as log:
        state, _ = recover(log)
    live = rss_bytes() - before
    gc.freeze()
    alone = _pss(os.getpid())
    with tempfile.TemporaryDirectory() as work, EventLog(db) as log:
        path = Path(work) / "snapshot.partial"
        pid = fork_snapshot(state, path)
        forked = alone
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it just exited
                forked = max(forked, _pss(os.getpid()) + _pss(pid))
            time.sleep(0.005)
        storing = threading.Thread(target=log.put_snapshot_file, args=(state.last_seq, path))
        stored = alone
        storing.start()
        while storing.is_alive():
            stored = max(stored, _pss(os.getpid()))
            time.sleep(0.005)
        storing.join()
    together = max(forked, stored)
    added = together - alone
    return {
        "live_bytes": live,
        "fork_extra_bytes": forked - alone,
        "store_extra_bytes": stored - alone,
        "ratio": (live + added) / live,
    }


def _pss(pid: int) -> int:
    """Anonymous memory, proportionally: a page shared after a fork counts half to each.

    File pages (the log's memory map, the page cache) are left out: the kernel
    reclaims them when memory runs short.
    """
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss_Anon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss_Anon in /proc/{pid}/smaps_rollup")


def part_stall(db: Path, seconds: float) -> dict:
    """The daemon on this log takes snapshots every second; the longest loop stall meanwhile."""
    import uvloop

    from udpt.daemon import serve
    from udpt.udp import bind_udp_socket

    config = load_config(None)
    config = dataclasses.replace(
        config, db_path=db, http=None, log=dataclasses.replace(config.log, snapshot_interval=1)
    )
    # Run on the log's own time line, as if the tracker had just been restarted: the
    # generated log lies in the past, and a wall clock would expire every peer at start.
    with EventLog(db, readonly=True) as log:
        last_ms = max(event.at_ms for _, event in log.events(log.last_seq()))
    started = time.time()
    clock = EventClock(lambda: last_ms / 1000 + time.time() - started)

    async def measure() -> dict:
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(
            serve(
                config,
                clock=clock,
                udp_socket=bind_udp_socket("127.0.0.1", 0),
                stop_event=stop,
                ready=lambda _: ready.set(),
            )
        )
        await ready.wait()
        worst = 0.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            asked = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - asked - 0.001)
        stop.set()
        await task
        return {"max_stall_ms": worst * 1000}

    return uvloop.run(measure())


def measure_figures(work: Path, scale: Scale, rounds: int) -> list[Row]:
    rows: list[Row] = []
    per_announce = disk_per_announce(work, scale.disk_events)
    rows.append(
        ("bytes on disk per announce event (LMDB included)", f"{per_announce:.1f}", "<= 64")
    )

    replay_db = work / "replay"
    write_log(replay_db, scale.replay_events, 1000, 10_000)
    rate, count = replay_rate(replay_db, rounds)
    rows.append(
        (f"replay speed ({count:,} events, decode + fold)", f"{rate:,.0f} events/s", ">= 1,000,000")
    )

    restart_db = work / "restart"
    # Announcers are drawn at random: 2.4 announces per 1.7 peers leave a little over
    # restart_peers of them live (stops, flags); the table reports the count reached.
    last = write_log(
        restart_db,
        int(scale.restart_peers * 2.4),
        scale.restart_torrents,
        int(scale.restart_peers * 1.7),
    )
    with EventLog(restart_db) as log:
        log.delete_snapshots()
        take_snapshot(log, last - scale.restart_tail)
    restarts = [in_fresh_process("restart", restart_db) for _ in range(rounds)]
    seconds = statistics.median(r["seconds"] for r in restarts)
    peers, torrents, tail = (restarts[0][k] for k in ("peers", "torrents", "tail"))
    rows.append(
        (
            f"restart: snapshot + {tail:,}-event tail, {peers:,} peers in {torrents:,} torrents",
            f"{seconds:.2f} s",
            "<= 1 s",
        )
    )
    rss = statistics.median(r["rss_per_peer"] for r in restarts)
    rows.append(
        (f"RSS per peer ({peers:,} peers in {torrents:,} torrents)", f"{rss:.1f} bytes", "<= 100")
    )
    for peers_n, torrents_n, per in (
        (scale.few_peers, scale.few_peers // 3, "peer"),
        (scale.one_peer_torrents, scale.one_peer_torrents, "torrent"),
    ):
        # info hashes spread as real ones are: numbered ones, each after the last, would
        # fill the compiled table's ordered blocks where live ones split them
        shape = in_fresh_process("memory_shape", Path(f"{peers_n}:{torrents_n}:random"))
        count = shape["peers" if per == "peer" else "torrents"]
        rows.append(
            (
                f"RSS per {per} ({shape['peers']:,} peers in {shape['torrents']:,} torrents,"
                " random info hashes)",
                f"{shape['bytes'] / count:.1f} bytes",
                "<= 100" if per == "peer" else "<= 200",
            )
        )
    memory = in_fresh_process("snapshot_memory", restart_db)
    rows.append(
        (
            f"peak memory while a snapshot of {torrents:,} torrents is taken / live state",
            f"{memory['ratio']:.2f} (live {memory['live_bytes'] / (1 << 20):,.0f} MiB)",
            "<= 1.2",
        )
    )
    stall = in_fresh_process("stall", restart_db, str(scale.stall_seconds))["max_stall_ms"]
    rows.append(
        (
            f"longest event-loop stall while snapshots of {peers:,} peers are taken",
            f"{stall:.1f} ms",
            "<= 10 ms",
        )
    )
    return rows


if __name__ == "__main__":
    part, path = sys.argv[1], Path(sys.argv[2])
    if part == "memory_shape":  # PEERS:TORRENTS, or PEERS:TORRENTS:random
        peers, torrents, *spread = sys.argv[2].split(":")
        print(json.dumps(part_memory_shape(int(peers), int(torrents), spread == ["random"])))
    elif part == "source_counts":
        peers, torrents = sys.argv[2].split(":")
        print(json.dumps(part_source_counts(int(peers), int(torrents))))
    elif part == "logged_torrents":
        print(json.dumps(part_logged_torrents(int(sys.argv[2]))))
    elif part == "restart":
        print(json.dumps(part_restart(path)))
    elif part == "snapshot_memory":
        print(json.dumps(part_snapshot_memory(path)))
    elif part == "stall":
        print(json.dumps(part_stall(path, float(sys.argv[3]) if len(sys.argv) > 3 else 30.0)))
    else:
        sys.exit(f"unknown part {part!r}")
