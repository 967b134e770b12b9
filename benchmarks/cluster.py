#!/usr/bin/env python3
"""Two cluster nodes against one: what sharing swarms through NATS JetStream buys and costs.

``python benchmarks/cluster.py`` starts a fresh ``nats-server -js`` and, in
alternating runs (median of ``--rounds``):

* **one node**: one udpt cluster node pinned to the first of ``--node-cpus``,
  driven by one ``benchmarks/loadgen`` (closed loop, the workload of
  ``benchmarks/run.py``);
* **two nodes**: two nodes of one cluster, each pinned to its own CPU, each
  driven by its own load generator with half the clients, at the same time.

For each it reports the aggregate responses/s, the announce p99 (the worse of
the two loads), the nodes' CPU, and the other node's events each node folded
per second (``udpt_cluster_foreign_events_total``). The cost of folding them
is estimated from the same run: the CPU a node spent beyond what its own
responses cost in the one-node run, divided by the foreign events it folded.

Every node runs with ``[log] fsync = true`` and quotas off (each load is one
source). Where the machine has fewer CPUs than ``--node-cpus``,
``--loadgen-cpu`` and ``--nats-cpu`` name, processes share them (the report
says which CPUs each had). The table is printed and written to BENCHMARKS.md
under "Cluster"; ``--quick`` is a smoke run of a few seconds that writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from run import Workload, build_loadgen, cpu_seconds, free_port, wait_for_udp, write_section

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cluster-benchmark-token"
SECTION = "## Cluster"


@dataclass(frozen=True)
class NodeRun:
    responses_per_s: float
    p99_us: float
    cpu: float
    foreign_per_s: float


@dataclass(frozen=True)
class Run:
    nodes: list[NodeRun]

    @property
    def responses_per_s(self) -> float:
        return sum(node.responses_per_s for node in self.nodes)

    @property
    def p99_us(self) -> float:
        return max(node.p99_us for node in self.nodes)


def pinned(cpu: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command]


class Cluster:
    """A fresh NATS server and ``count`` udpt nodes of one cluster, in ``work``."""

    def __init__(self, work: Path, count: int, node_cpus: list[str], nats_cpu: str) -> None:
        self.work = Path(tempfile.mkdtemp(dir=work, prefix=f"cluster-{count}-"))
        self.nats_port = free_port()
        self.nats = subprocess.Popen(
            pinned(
                nats_cpu,
                [
                    shutil.which("nats-server") or "nats-server",
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.nats_port),
                    "-sd",
                    str(self.work / "nats"),
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ports: list[tuple[int, int]] = []
        self.nodes: list[subprocess.Popen[bytes]] = []
        for index in range(count):
            udp, http = free_port(), free_port()
            config = self.work / f"node{index}.toml"
            config.write_text(
                f'db_path = "{self.work / f"node{index}"}"\nlog_level = "warn"\n'
                f'[udp]\nbind_address = "127.0.0.1:{udp}"\n'
                f'[http]\nbind_address = "127.0.0.1:{http}"\n'
                f'[http.access_tokens]\nbench = "{TOKEN}"\n'
                "[quotas]\nannounces_per_second = 0\nnew_torrents_per_minute = 0\n"
                f'[cluster]\nnats_url = "nats://127.0.0.1:{self.nats_port}"\n'
                f'node_id = "node{index}"\n'
            )
            self.ports.append((udp, http))
            self.nodes.append(
                subprocess.Popen(
                    pinned(node_cpus[index], [sys.executable, "-m", "udpt", "-c", str(config)]),
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            )

    def wait_ready(self) -> None:
        for udp, _ in self.ports:
            wait_for_udp(udp, timeout=60)

    def foreign_events(self, index: int) -> float:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[index][1]}/metrics",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("udpt_cluster_foreign_events_total "):
                    return float(line.split()[1])
        raise RuntimeError("udpt_cluster_foreign_events_total is not in /metrics")

    def stop(self) -> None:
        for process in [*self.nodes, self.nats]:
            process.send_signal(signal.SIGTERM)
        for process in [*self.nodes, self.nats]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_cluster(
    loadgen: Path,
    work: Path,
    workload: Workload,
    count: int,
    node_cpus: list[str],
    loadgen_cpu: str,
    nats_cpu: str,
) -> Run:
    """Start ``count`` nodes, load each with its share of ``workload`` at once, stop them."""
    cluster = Cluster(work, count, node_cpus, nats_cpu)
    try:
        cluster.wait_ready()
        share = Workload(
            duration=workload.duration,
            sockets=max(1, workload.sockets // count),
            peers=workload.peers,
            window=workload.window,
            torrents=workload.torrents,
            num_want=workload.num_want,
        )
        foreign_before = [cluster.foreign_events(i) for i in range(count)]
        cpu_before = [cpu_seconds(node.pid) for node in cluster.nodes]
        started = time.monotonic()
        loads = [
            subprocess.Popen(
                pinned(
                    loadgen_cpu,
                    [str(loadgen), *share.args(udp), "--seed", str(index + 1)],
                ),
                stdout=subprocess.PIPE,
                text=True,
            )
            for index, (udp, _) in enumerate(cluster.ports)
        ]
        outputs = [load.communicate(timeout=workload.duration + 60)[0] for load in loads]
        wall = time.monotonic() - started
        nodes = []
        for index, output in enumerate(outputs):
            report = json.loads(output)
            cpu = (cpu_seconds(cluster.nodes[index].pid) - cpu_before[index]) / wall
            foreign = (cluster.foreign_events(index) - foreign_before[index]) / wall
            p99 = report["types"]["announce"]["latency_us"]["p99"]
            nodes.append(NodeRun(report["responses_per_s"], p99, cpu, foreign))
        return Run(nodes)
    finally:
        cluster.stop()


def median_run(runs: list[Run]) -> Run:
    """The run with the median aggregate responses/s."""
    return sorted(runs, key=lambda run: run.responses_per_s)[len(runs) // 2]


def report(one: Run, two: Run) -> str:
    single = one.nodes[0]
    cost_per_response = single.cpu / single.responses_per_s if single.responses_per_s else 0.0
    rows = [
        ("one node", one),
        ("two nodes", two),
    ]
    lines = [
        "| setup | responses/s (sum) | announce p99 | node CPU | foreign events/s per node |",
        "|---|---|---|---|---|",
    ]
    for name, run in rows:
        cpus = " + ".join(f"{node.cpu:.2f}" for node in run.nodes)
        foreign = " + ".join(f"{node.foreign_per_s:,.0f}" for node in run.nodes)
        lines.append(
            f"| {name} | {run.responses_per_s:,.0f} | {run.p99_us / 1000:.2f} ms | {cpus} | "
            f"{foreign} |"
        )
    costs = [
        (node.cpu - node.responses_per_s * cost_per_response) / node.foreign_per_s * 1e6
        for node in two.nodes
        if node.foreign_per_s
    ]
    scaling = two.responses_per_s / one.responses_per_s if one.responses_per_s else 0.0
    lines.append("")
    lines.append(
        f"Two nodes answer {scaling:.2f}× what one does. Folding the other node's events "
        f"costs about {statistics.mean(costs) if costs else 0.0:.1f} µs of CPU each (the "
        "node CPU beyond what its own responses cost in the one-node run, per foreign "
        "event)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--node-cpus", default="0,1", help="CPUs of node 1 and node 2")
    parser.add_argument("--loadgen-cpu", default="2", help="CPU(s) of the load generators")
    parser.add_argument("--nats-cpu", default="3", help="CPU(s) of nats-server")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    if shutil.which("nats-server") is None:
        print("cluster.py: needs nats-server (apt-get install nats-server)", file=sys.stderr)
        return 2
    available = sorted(os.sched_getaffinity(0))
    node_cpus, loadgen_cpu, nats_cpu = (
        [_cpu(cpu, available) for cpu in args.node_cpus.split(",")],
        _cpu(args.loadgen_cpu, available),
        _cpu(args.nats_cpu, available),
    )
    workload = (
        Workload(duration=1, sockets=4, peers=50, window=2, torrents=100)
        if args.quick
        else Workload(duration=args.duration)
    )
    rounds = 1 if args.quick else args.rounds
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="udpt-cluster-bench-") as scratch:
        work = Path(scratch)
        loadgen = build_loadgen(work)
        ones, twos = [], []
        for _ in range(rounds):
            ones.append(run_cluster(loadgen, work, workload, 1, node_cpus, loadgen_cpu, nats_cpu))
            twos.append(run_cluster(loadgen, work, workload, 2, node_cpus, loadgen_cpu, nats_cpu))
    command = "python benchmarks/cluster.py" + (" --quick" if args.quick else "")
    body = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Nodes on CPUs "
        f"{' and '.join(node_cpus)}, load generators on {loadgen_cpu}, nats-server on "
        f"{nats_cpu}; median of {rounds} rounds of {workload.duration} s (1-minute load "
        f"average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after).\n\n"
        f"{report(median_run(ones), median_run(twos))}\n\nCommand:\n\n```\n{command}\n```\n"
    )
    print(body)
    if not args.quick:
        write_section(args.output, SECTION, body)
    return 0


def _cpu(wanted: str, available: list[int]) -> str:
    """``wanted`` if this machine has those CPUs, else the last one it has (shared)."""
    if all(int(cpu) in available for cpu in wanted.split(",")):
        return wanted
    return str(available[-1])


if __name__ == "__main__":
    sys.exit(main())
