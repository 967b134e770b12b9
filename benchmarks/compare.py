#!/usr/bin/env python3
"""Two checkouts of udpt side by side under the same load: did a change cost speed?

``python benchmarks/compare.py --before DIR [--after DIR] [--rounds 3]`` runs
``benchmarks/run.py``'s load (durable, fsync per batch; server on CPU 0, load
on CPU 1) against udpt from each checkout in turn, alternating, and prints the
median responses/s and announce p99 of each and the ratio after / before. Make
the other checkout with ``git worktree add --detach DIR REV``; both run on this
venv's packages. ``--before-fsync off`` runs the "before" side without syncing its
commits: with ``--before .`` it measures what the durable commit costs this checkout
(BENCHMARKS.md, "What a durable commit costs the core").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from run import ROOT, LoadResult, Workload, build_loadgen, median_result, run_load, udpt_starter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout to compare against")
    parser.add_argument("--after", type=Path, default=ROOT, help="default: this checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument(
        "--before-fsync", choices=("on", "off"), default="on", help="sync the before side's commits"
    )
    args = parser.parse_args(argv)
    workload = Workload(duration=args.duration)
    with tempfile.TemporaryDirectory(prefix="udpt-compare-") as tmp:
        work = Path(tmp)
        loadgen = build_loadgen(work)
        starters = {
            "before": udpt_starter(
                work, fsync=args.before_fsync == "on", source=args.before.resolve()
            ),
            "after": udpt_starter(work, source=args.after.resolve()),
        }
        runs: dict[str, list[LoadResult]] = {name: [] for name in starters}
        for round_number in range(args.rounds):
            for name, start in starters.items():
                result = run_load(loadgen, workload, start)
                runs[name].append(result)
                print(
                    f"round {round_number + 1} {name}: {result.responses_per_s:,.0f} "
                    f"responses/s, p99 {result.p99_us / 1000:.2f} ms, lost {result.lost}",
                    file=sys.stderr,
                )
    before, after = (median_result(runs[name]) for name in ("before", "after"))
    for name, result in (("before", before), ("after", after)):
        print(
            f"{name}: median {result.responses_per_s:,.0f} responses/s, "
            f"announce p99 {result.p99_us / 1000:.2f} ms"
        )
    print(f"after / before: {after.responses_per_s / before.responses_per_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
