#!/usr/bin/env python3
"""The longest event-loop stall while the intake folds one sweep that expires a flood.

``python benchmarks/sweep_stall.py [--torrents 200000]``: a state holding that
many one-peer torrents (as a random-hash flood leaves it), then one committed
``PeersExpired`` that removes every peer and forgets every torrent, handed to
the intake exactly as the writer hands it a batch. A probe coroutine measures
the longest gap between its wake-ups meanwhile; a second figure folds the same
sweep in one piece (``TrackerState.apply``), as replay does, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from udpt.config import load_config
from udpt.connection_ids import ConnectionIds
from udpt.counters import Counters
from udpt.daemon import GC_THRESHOLDS
from udpt.events.types import AnnounceAccepted, AnnounceEvent, PeersExpired
from udpt.intake import Intake
from udpt.projections import TrackerState
from udpt.tracker import Policy, Tracker

START_MS = 1_000_000_000


def flooded_state(torrents: int) -> TrackerState:
    state = TrackerState()
    ip = bytes([127, 0, 0, 1])
    for seq in range(1, torrents + 1):
        state.apply(
            seq,
            AnnounceAccepted(
                START_MS, os.urandom(20), ip, 6881, bytes(20), 0, AnnounceEvent.STARTED, 0, 0, 1
            ),
        )
    return state


async def stalled_sweep(torrents: int) -> tuple[float, float, float]:
    """(longest stall in wall time, longest in this thread's CPU time, total seconds).

    On a shared machine the wall figure includes time the process was not
    scheduled at all; the CPU figure is the work the loop did between two turns.
    """
    state = flooded_state(torrents)
    gc.freeze()  # as the daemon does once it has recovered its state
    gc.set_threshold(*GC_THRESHOLDS)
    policy = Policy.from_config(load_config(None))
    tracker = Tracker(state, ConnectionIds(b"k" * 32), policy)
    intake = Intake(state, tracker, Counters())
    late = START_MS + 10 * 86_400_000
    sweep = PeersExpired(late, late, late)
    longest_wall = longest_cpu = 0.0
    stop = False

    async def probe() -> None:
        nonlocal longest_wall, longest_cpu
        wall, cpu = time.perf_counter(), time.thread_time()
        while not stop:
            await asyncio.sleep(0)
            now_wall, now_cpu = time.perf_counter(), time.thread_time()
            longest_wall = max(longest_wall, now_wall - wall)
            longest_cpu = max(longest_cpu, now_cpu - cpu)
            wall, cpu = now_wall, now_cpu

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    intake.committed(state.last_seq + 1, [(sweep, b"", None)], 0.0)
    await intake.drain()
    elapsed = time.perf_counter() - started
    stop = True
    await probing
    assert not state.torrents, "the sweep left torrents behind"
    return longest_wall, longest_cpu, elapsed


def one_piece(torrents: int) -> float:
    state = flooded_state(torrents)
    late = START_MS + 10 * 86_400_000
    started = time.perf_counter()
    state.apply(state.last_seq + 1, PeersExpired(late, late, late))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torrents", type=int, default=200_000)
    args = parser.parse_args(argv)
    wall, cpu, elapsed = asyncio.run(stalled_sweep(args.torrents))
    print(
        f"{args.torrents:,} torrents: longest loop stall {cpu * 1000:.1f} ms of CPU "
        f"({wall * 1000:.1f} ms of wall time) while the intake folded the sweep in {elapsed:.2f} s"
    )
    print(f"the same sweep folded in one piece: {one_piece(args.torrents) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
