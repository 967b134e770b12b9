#!/usr/bin/env python3
"""CPU per request on the event loop's thread, in process: the cost the loop pays per datagram.

``python benchmarks/hot_path.py [--requests 200000] [--window 100]`` drives the
daemon's own pieces (a compiled or reference ``UdpEndpoint``, the tracker, the
intake, the group-commit writer on an LMDB log in a temp dir, fsync off) with
``benchmarks/run.py``'s load shape: 10,000 peers behind 25 source ports on
1,000 torrents, 90 % announces (num_want 50) and 10 % scrapes. ``window``
datagrams are handed to ``UdpEndpoint.handle_all`` at once, then the loop waits
until every one is committed, folded and answered; replies go out through the
socket to a sink that is emptied outside the measured time.

It reports the loop thread's CPU time (``time.thread_time``) per request: the
writer's thread, the kernel's loopback delivery to the sink and the load
generator are not in it. Unlike responses/s on a shared machine, the figure
barely moves with the load on the other CPU, so it shows what a change to the
per-request Python costs. ``UDPT_PURE_PYTHON=1`` measures the reference core.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from random import Random

import uvloop

from udpt.clock import EventClock
from udpt.config import load_config
from udpt.connection_ids import ConnectionIds
from udpt.core import CORE_NAME
from udpt.counters import Counters
from udpt.events.log import EventLog
from udpt.events.writer import GroupCommitWriter
from udpt.intake import Intake
from udpt.projections import TrackerState
from udpt.tracker import Policy, Tracker
from udpt.udp import bind_udp_socket, open_endpoint

SOURCES, PEERS_PER_SOURCE, TORRENTS, NUM_WANT = 25, 400, 1000, 50
_ANNOUNCE = struct.Struct("!8sI4s20s20sqqqI4sIiH")
_SCRAPE = struct.Struct("!8sI4s20s")


def datagrams(ids: ConnectionIds, count: int, rng: Random) -> list[tuple[bytes, tuple[str, int]]]:
    """``count`` requests of the benchmark load, each with the source it comes from."""
    now = time.time()
    connection_id = ids.issue(socket.inet_aton("127.0.0.1"), now)
    hashes = [rng.randbytes(20) for _ in range(TORRENTS)]
    peers = [
        (40_000 + source, 10_000 + n, rng.randbytes(20), rng.choice(hashes), rng.random() < 0.3)
        for source in range(SOURCES)
        for n in range(PEERS_PER_SOURCE)
    ]
    out = []
    for n in range(count):
        source, port, peer_id, info_hash, seeding = rng.choice(peers)
        tid = n.to_bytes(4, "big")
        if rng.random() < 0.9:
            left = 0 if seeding else 1000
            data = _ANNOUNCE.pack(
                connection_id,
                1,
                tid,
                info_hash,
                peer_id,
                0,
                left,
                0,
                0,
                bytes(4),
                7,
                NUM_WANT,
                port,
            )
        else:
            data = _SCRAPE.pack(connection_id, 2, tid, info_hash)
        out.append((data, ("127.0.0.1", source)))
    return out


async def measure(requests: int, window: int, work: Path) -> float:
    config = load_config(None)
    config = dataclasses.replace(
        config,
        quotas=dataclasses.replace(
            config.quotas, announces_per_second=0, new_torrents_per_minute=0
        ),
    )
    state = TrackerState()
    ids = ConnectionIds(b"k" * 32, config.udp.connection_id_lifetime)
    tracker = Tracker(state, ids, Policy.from_config(config), Random(1))
    intake = Intake(state, tracker, Counters())
    with EventLog(work / "log", sync=False) as event_log:
        writer = GroupCommitWriter(event_log, intake.committed, intake.failed, linger_s=0)
        intake.attach(writer)
        sink = bind_udp_socket("127.0.0.1", 0)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        endpoint = await open_endpoint(
            bind_udp_socket("127.0.0.1", 0), tracker, intake, EventClock()
        )
        sink_port = sink.getsockname()[1]
        load = [(data, ("127.0.0.1", sink_port)) for data, _ in datagrams(ids, requests, Random(2))]
        clock = EventClock()
        spent = []
        for start in range(0, len(load), window):
            began = time.thread_time()
            now = clock.now_ms()
            endpoint.handle_all(load[start : start + window], now)
            await writer.drain()
            await intake.drain()
            await asyncio.sleep(0)  # the replies' flush
            spent.append(time.thread_time() - began)
            while True:
                try:
                    sink.recv(2048, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
        await writer.close()
        endpoint.close()
        sink.close()
    warm = spent[len(spent) // 5 :]  # the first fifth fills the swarms
    return sum(warm) / (len(warm) * window)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=100, help="datagrams per commit")
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    args = parser.parse_args(argv)
    results = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="udpt-hot-") as tmp:
            results.append(uvloop.run(measure(args.requests, args.window, Path(tmp))))
    print(
        f"{CORE_NAME} core: {statistics.median(results) * 1e6:.2f} us of loop CPU per request "
        f"(runs: {', '.join(f'{r * 1e6:.2f}' for r in results)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
