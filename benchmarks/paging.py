#!/usr/bin/env python3
"""How long ``GET /t`` holds the event loop for a deep page, at a million torrents.

``python benchmarks/paging.py [--torrents 1000000]`` builds the state by folding
``TorrentAdded`` events, then times the route's own work for pages at several
offsets (the ordered index's slice plus rendering 1000 summaries), best and
median of 20 each. No server is involved: the handler's work is what runs on
the loop in one piece.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from udpt.api.render import torrent_summary
from udpt.events.types import TorrentAdded
from udpt.projections import TrackerState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torrents", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    state = TrackerState()
    rng = os.urandom
    for seq in range(1, args.torrents + 1):
        state.apply(seq, TorrentAdded(seq, rng(20), "bench"))
    torrents = state.torrents
    for offset in (0, args.torrents // 2, args.torrents - 1000):
        times = []
        for _ in range(20):
            started = time.perf_counter()
            page = torrents.page(offset, 1000)
            body = [torrent_summary(h, torrents[h]) for h in page]
            times.append(time.perf_counter() - started)
        assert len(body) == 1000
        print(
            f"offset {offset:>9,}: best {min(times) * 1000:.2f} ms, "
            f"median {statistics.median(times) * 1000:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
