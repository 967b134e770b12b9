"""What exporting metrics costs the UDP hot path: responses/s with and without a scraper.

``python benchmarks/metrics_cost.py [--rounds 3] [--duration 10]`` starts one udpt
(with its API), then alternates load runs of ``benchmarks/loadgen`` with and
without a client fetching ``/metrics`` every second, against the same daemon, and
prints one line per run and the mean of each kind. Tracker on CPU 0, load and
scraper on CPU 1, as ``benchmarks/run.py`` places them.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from run import LOADGEN_CPU, TRACKER_CPU, build_loadgen, free_port, wait_for_udp

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"
LOAD = ["--sockets", "25", "--peers", "400", "--window", "4", "--timeout-ms", "1000"]
LOAD += ["--num-want", "50", "--mix", "90:10"]


def scrape_every_second(url: str, stop: threading.Event, timings: list[float]) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    while not stop.is_set():
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        timings.append(time.perf_counter() - started)
        stop.wait(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="udpt-metrics-cost-") as scratch:
        work = Path(scratch)
        loadgen = build_loadgen(work)
        udp_port, http_port = free_port(), free_port()
        config = work / "udpt.toml"
        config.write_text(
            f'db_path = "{work / "log"}"\nlog_level = "warn"\n'
            f'[udp]\nbind_address = "127.0.0.1:{udp_port}"\n'
            f'[http]\nbind_address = "127.0.0.1:{http_port}"\n'
            f'[http.access_tokens]\nbench = "{TOKEN}"\n'
        )
        server = subprocess.Popen(
            ["taskset", "-c", TRACKER_CPU, sys.executable, "-m", "udpt", "-c", str(config)],
            cwd=ROOT,
        )
        results: dict[bool, list[float]] = {False: [], True: []}
        try:
            wait_for_udp(udp_port)
            for _ in range(args.rounds):
                for scraping in (False, True):
                    stop, timings = threading.Event(), []
                    scraper = threading.Thread(
                        target=scrape_every_second,
                        args=(f"http://127.0.0.1:{http_port}/metrics", stop, timings),
                    )
                    if scraping:
                        scraper.start()
                    target = ["--port", str(udp_port), "--duration", str(args.duration)]
                    load = subprocess.run(
                        ["taskset", "-c", LOADGEN_CPU, str(loadgen), "--json", *target, *LOAD],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    stop.set()
                    if scraping:
                        scraper.join()
                    rate = json.loads(load.stdout)["responses_per_s"]
                    results[scraping].append(rate)
                    median = statistics.median(timings) * 1e3 if timings else 0.0
                    print(
                        f"{'with' if scraping else 'without'} scraper: {rate:.0f} responses/s"
                        + (f", {len(timings)} scrapes, median {median:.1f} ms" if timings else ""),
                        flush=True,
                    )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    without, with_ = statistics.mean(results[False]), statistics.mean(results[True])
    print(
        f"mean without {without:.0f}/s, with {with_:.0f}/s: "
        f"{(without - with_) / without * 100:+.1f} % cost"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
