#!/usr/bin/env python3
"""udpt beside opentracker, and udpt's other figures: one command, one table.

``python benchmarks/run.py`` builds the load generator (benchmarks/loadgen) with
the system compiler, then:

* side by side: udpt (durable: fsync per batch) and, when installed, opentracker
  (Debian's build: IPv4 only, whitelist mode, so the runner whitelists the load's
  hashes), each pinned to CPU 0 with the load generator on CPU 1, alternating
  runs, median of ``--rounds``: responses/s, p50/p99 latency, lost replies and
  server CPU, and the ratio udpt / opentracker;
* p99 latency at half of udpt's peak rate;
* replay speed, restart time and RSS per peer at 1M peers, bytes on disk per
  announce event, and the longest event-loop stall while a snapshot is taken
  (``benchmarks/figures.py``).

The table is printed and written to the top of BENCHMARKS.md with the machine
and the exact commands (the file's ``## `` sections, written by the other
benchmarks, are kept). ``--quick`` shrinks everything to a smoke run of a few seconds.
Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOADGEN_SOURCE = HERE / "loadgen" / "loadgen.c"
TRACKER_CPU, LOADGEN_CPU = "0", "1"


@dataclass(frozen=True)
class Workload:
    """The load: 90% announce / 10% scrape over 1000 torrents and 10,000 peers."""

    duration: int = 10
    sockets: int = 25
    peers: int = 400
    window: int = 4
    torrents: int = 1000
    num_want: int = 50

    def args(self, port: int, rate: int = 0) -> list[str]:
        return [
            "--port",
            str(port),
            "--duration",
            str(self.duration),
            "--sockets",
            str(self.sockets),
            "--peers",
            str(self.peers),
            "--window",
            str(self.window),
            "--torrents",
            str(self.torrents),
            "--peer-torrents",
            "1",
            "--mix",
            "90:10",
            "--num-want",
            str(self.num_want),
            "--rate",
            str(rate),
            "--json",
        ]


@dataclass(frozen=True)
class LoadResult:
    responses_per_s: float
    p50_us: float
    p99_us: float
    lost: int
    server_cpu: float


def free_port() -> int:
    """A port free for UDP and for TCP: opentracker binds both, and exits if either is taken."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def build_loadgen(out: Path) -> Path:
    binary = out / "loadgen"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(LOADGEN_SOURCE)], check=True
    )
    return binary


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_udp(port: int, timeout: float = 20.0, server: subprocess.Popen | None = None) -> None:
    """Until something answers a BEP 15 connect on ``port`` (the server is up); raises at once
    if ``server`` exits first."""
    connect = (0x41727101980).to_bytes(8, "big") + bytes(4) + b"wake"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            if server is not None and server.poll() is not None:
                raise RuntimeError(f"the server on port {port} exited ({server.returncode})")
            probe.sendto(connect, ("127.0.0.1", port))
            try:
                probe.recv(64)
                return
            except OSError:
                continue
    raise TimeoutError(f"nothing answered on UDP port {port} within {timeout} s")


def start_answering(
    start_server: Callable[[int], subprocess.Popen],
) -> tuple[subprocess.Popen, int]:
    """A started server that answers, and its port: on another port if it exits first (a port
    ``free_port`` found free can be taken before the server binds it)."""
    attempts = 3
    while True:
        attempts -= 1
        port = free_port()
        server = start_server(port)
        try:
            wait_for_udp(port, server=server)
        except RuntimeError:  # it exited
            if attempts:
                continue
            raise
        except BaseException:
            server.kill()
            server.wait()
            raise
        return server, port


def run_load(
    loadgen: Path,
    workload: Workload,
    start_server: Callable[[int], subprocess.Popen],
    rate: int = 0,
) -> LoadResult:
    """Start a fresh server, drive it for the workload's duration, stop it."""
    server, port = start_answering(start_server)
    try:
        cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
        load = subprocess.run(
            ["taskset", "-c", LOADGEN_CPU, str(loadgen), *workload.args(port, rate)],
            capture_output=True,
            text=True,
            timeout=workload.duration + 60,
            check=False,
        )
        server_cpu = (cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    report = json.loads(load.stdout)
    announce = report["types"]["announce"]["latency_us"]
    return LoadResult(
        report["responses_per_s"],
        announce["p50"],
        announce["p99"],
        report["lost"] if isinstance(report["lost"], int) else sum(report["lost"].values()),
        server_cpu,
    )


def udpt_starter(
    work: Path, fsync: bool = True, source: Path = ROOT
) -> Callable[[int], subprocess.Popen]:
    """Starts udpt from the checkout at ``source`` (another one, to compare two versions)."""

    def start(port: int) -> subprocess.Popen:
        db = Path(tempfile.mkdtemp(dir=work, prefix="udpt-db-"))
        config = db / "udpt.toml"
        config.write_text(
            f'db_path = "{db / "log"}"\nlog_level = "warn"\n[udp]\n'
            f'bind_address = "127.0.0.1:{port}"\n[log]\n'
            f"fsync = {'true' if fsync else 'false'}\n"
            # One load generator is one source far beyond any client's rate: no quotas.
            "[quotas]\nannounces_per_second = 0\nnew_torrents_per_minute = 0\n"
        )
        return subprocess.Popen(
            ["taskset", "-c", TRACKER_CPU, sys.executable, "-m", "udpt", "-c", str(config)],
            cwd=source,
            env={**os.environ, "PYTHONPATH": str(source)},
        )

    return start


def opentracker_starter(
    work: Path, loadgen: Path, workload: Workload
) -> Callable[[int], subprocess.Popen] | None:
    binary = shutil.which("opentracker")
    if binary is None:
        return None
    chroot = Path(tempfile.mkdtemp(dir=work, prefix="opentracker-"))
    subprocess.run(
        [
            str(loadgen),
            "--torrents",
            str(workload.torrents),
            "--dump-hashes",
            str(chroot / "whitelist.txt"),
        ],
        check=True,
        capture_output=True,
    )

    def start(port: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                "taskset",
                "-c",
                TRACKER_CPU,
                binary,
                "-i",
                "127.0.0.1",
                "-P",
                str(port),
                "-p",
                str(port),
                "-d",
                str(chroot),
                "-w",
                "/whitelist.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return start


def fixed_reply_starter() -> Callable[[int], subprocess.Popen]:
    """The fixed-reply asyncio-dgram server (benchmarks/fixed_reply.py): the socket ceiling."""

    def start(port: int) -> subprocess.Popen:
        return subprocess.Popen(
            ["taskset", "-c", TRACKER_CPU, sys.executable, str(HERE / "fixed_reply.py"), str(port)]
        )

    return start


def median_result(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        *(
            statistics.median(getattr(r, name) for r in results)
            for name in LoadResult.__dataclass_fields__
        )
    )


def side_by_side(
    loadgen: Path, work: Path, workload: Workload, rounds: int
) -> dict[str, LoadResult]:
    starters = {"udpt": udpt_starter(work), "fixed-reply asyncio-dgram": fixed_reply_starter()}
    opentracker = opentracker_starter(work, loadgen, workload)
    if opentracker is not None:
        starters["opentracker"] = opentracker
    runs: dict[str, list[LoadResult]] = {name: [] for name in starters}
    for round_number in range(rounds):
        for name, start in starters.items():  # alternate, so drift hits both alike
            result = run_load(loadgen, workload, start)
            runs[name].append(result)
            print(
                f"  round {round_number + 1} {name}: {result.responses_per_s:,.0f} responses/s",
                file=sys.stderr,
            )
    return {name: median_result(results) for name, results in runs.items()}


def write_section(path: Path, section: str, body: str) -> None:
    """Replace (or append) ``section`` (a ``## `` heading) of BENCHMARKS.md, leaving the rest."""
    text = path.read_text() if path.exists() else "# udpt benchmarks\n"
    start = text.find(f"\n{section}\n")
    if start >= 0:
        end = text.find("\n## ", start + len(section) + 2)
        text = text[:start] + (text[end:] if end >= 0 else "\n")
    path.write_text(text.rstrip("\n") + f"\n\n{section}\n\n{body}")


def table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| figure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny loads: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server (median)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    from figures import Scale, measure_figures  # benchmarks/figures.py, beside this file

    workload = Workload(duration=2, sockets=4, peers=50) if args.quick else Workload()
    scale = Scale.quick() if args.quick else Scale()
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="udpt-bench-") as tmp:
        work = Path(tmp)
        loadgen = build_loadgen(work)
        print("side by side ...", file=sys.stderr)
        results = side_by_side(loadgen, work, workload, rounds)
        udpt = results["udpt"]
        half_rate = max(int(udpt.responses_per_s / 2), 100)
        print(f"udpt at half load ({half_rate}/s) ...", file=sys.stderr)
        half = median_result(
            [run_load(loadgen, workload, udpt_starter(work), half_rate) for _ in range(rounds)]
        )
        print("figures ...", file=sys.stderr)
        figures = measure_figures(work, scale, rounds)

    rows = []
    for name, result in results.items():
        rows.append((f"{name}: responses/s", f"{result.responses_per_s:,.0f}", ""))
        rows.append(
            (
                f"{name}: announce p50 / p99 latency",
                f"{result.p50_us / 1000:.2f} / {result.p99_us / 1000:.2f} ms",
                "",
            )
        )
        rows.append(
            (f"{name}: lost replies, server CPU", f"{result.lost}, {result.server_cpu:.0%}", "")
        )
    if "opentracker" in results:
        ratio = udpt.responses_per_s / results["opentracker"].responses_per_s
        rows.append(("udpt / opentracker responses/s", f"{ratio:.2f}", ">= 0.5"))
    ceiling = results["fixed-reply asyncio-dgram"].responses_per_s
    rows.append(
        (
            "udpt / fixed-reply asyncio-dgram responses/s",
            f"{udpt.responses_per_s / ceiling:.2f}",
            ">= 0.6",
        )
    )
    rows.append(
        (f"udpt p99 at half peak load ({half_rate}/s)", f"{half.p99_us / 1000:.2f} ms", "<= 20 ms")
    )
    rows += figures
    commands = (
        f"python benchmarks/run.py{' --quick' if args.quick else ''} "
        f"--rounds {rounds}\nload: loadgen "
        + " ".join(workload.args(0)).replace("--port 0 ", "--port PORT ")
    )
    report = (
        f"# udpt benchmarks\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" on {platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.platform()}. Servers pinned to CPU "
        f"{TRACKER_CPU}, load generator to CPU {LOADGEN_CPU}; medians of {rounds} runs; "
        f"udpt logs every announce durably (fsync per batch).\n\n{table(rows)}\n\n"
        f"Commands:\n\n```\n{commands}\n```\n"
    )
    print(report)
    if not args.quick:
        args.output.write_text(report + _later_sections(args.output))
    return 0


def _later_sections(path: Path) -> str:
    """The ``## `` sections after the side-by-side table, which other benchmarks write."""
    if not path.exists():
        return ""
    _, heading, rest = path.read_text().partition("\n## ")
    return f"\n## {rest}" if heading else ""


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
