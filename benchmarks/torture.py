#!/usr/bin/env python3
"""Torture: udpt under hostile traffic, each scenario beside a legitimate load at a fixed rate.

``python benchmarks/torture.py`` builds ``benchmarks/loadgen/loadgen.c`` and
``benchmarks/flood.c`` with the system compiler and runs, each on a fresh udpt
(default quotas, fsync on, pinned to CPU 0; load and floods on CPU 1):

0. baseline: the legitimate load alone (what the others are compared with);
1. a burst of 1M garbage datagrams (random bytes, lengths 1..200) from 127.0.0.250;
2. a valid-id random-hash announce flood from one source (127.0.0.200);
3. the same from 64 sources (127.0.1.1 .. 127.0.1.64);
4. a refusal flood on a torrent flagged through the REST API, from one source;
5. SIGKILL cycles under load, each followed by ``tools/replay.py DB --verify``
   and a restart on the same log.

The legitimate load is loadgen at a fixed rate spread over 100 source addresses
(127.0.0.1 .. 127.0.0.100), so each stays under the default 50 announces/s per
source; a probe thread announces fresh info hashes (new torrents) from
127.0.0.101 .. 127.0.0.110 throughout, one at a time, and its slowest answer
bounds the longest event-loop stall seen from outside. Figures are printed next
to their targets and written to BENCHMARKS.md under "Torture". ``--quick``
shrinks everything to a smoke run of a few seconds. Loopback only; every
subprocess is killed in ``finally``; the full run takes about 6 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from run import write_section

from udpt.config import QuotaConfig

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRACKER_CPU, LOAD_CPU = "0", "1"
TOKEN = "torture-token"
GARBAGE_SOURCE = "127.0.0.250"
FLOOD_SOURCE = "127.0.0.200"
FLOOD64_FIRST = "127.0.1.1"
PROBE_FIRST = 101  # 127.0.0.101 ..
SECTION = "## Torture"


@dataclass(frozen=True)
class Scale:
    """Every size and duration of a run; ``quick()`` is the smoke run's."""

    legit_rate: int = 2000
    legit_sources: int = 100
    warmup_s: float = 3.0
    pre_s: float = 3.0
    after_s: float = 15.0
    garbage_count: int = 1_000_000
    garbage_window_s: float = 10.0
    flood_s: float = 60.0
    flood64_s: float = 30.0
    refusal_s: float = 30.0
    flood_rate: int = 20_000
    kill_cycles: int = 5
    kill_load_s: float = 2.0
    probe_rate: float = 20.0
    probe_sources: int = 10

    @classmethod
    def quick(cls) -> Scale:
        return cls(
            legit_rate=500,
            legit_sources=25,
            warmup_s=0.3,
            pre_s=0.2,
            after_s=0.3,
            garbage_count=20_000,
            garbage_window_s=0.7,
            flood_s=0.7,
            flood64_s=0.7,
            refusal_s=0.7,
            flood_rate=5000,
            kill_cycles=2,
            kill_load_s=0.5,
            probe_rate=10.0,
            probe_sources=2,
        )


# --------------------------------------------------------------------------- processes


def build(out: Path) -> tuple[Path, Path]:
    """loadgen and flood, compiled as benchmarks/run.py compiles loadgen."""
    binaries = []
    for source in (HERE / "loadgen" / "loadgen.c", HERE / "flood.c"):
        binary = out / source.stem
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(binary), str(source)], check=True
        )
        binaries.append(binary)
    return binaries[0], binaries[1]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, wait: float = 30) -> None:
    """Signal one process we started and reap it, killing it if it will not go."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Sample:
    """What the daemon holds at one moment, read from outside."""

    at: float
    wall_ms: int  # the clock udpt stamps events with, to find the window's events in the log
    rss_kib: int
    data_bytes: int
    kernel_drops: int
    cpu_s: float


@dataclass
class Daemon:
    """One udpt process on a loopback port, with its log directory and REST API."""

    db: Path
    port: int
    api_port: int
    process: subprocess.Popen | None = None

    def config(self) -> Path:
        path = self.db.parent / f"{self.db.name}.toml"
        path.write_text(
            f'db_path = "{self.db}"\nlog_level = "warn"\n[udp]\n'
            f'bind_address = "127.0.0.1:{self.port}"\n'
            f'[http]\nbind_address = "127.0.0.1:{self.api_port}"\n'
            f'[http.access_tokens]\ntorture = "{TOKEN}"\n'
        )  # [quotas] and [log] left out: the defaults are what is tortured
        return path

    def start(self) -> float:
        """Start udpt on CPU 0; returns the seconds until it answered a connect."""
        began = time.monotonic()
        stderr = (self.db.parent / f"{self.db.name}.stderr").open("ab")
        self.process = subprocess.Popen(
            ["taskset", "-c", TRACKER_CPU, sys.executable, "-m", "udpt", "-c", str(self.config())],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        wait_for_udp(self.port, self.process)
        return time.monotonic() - began

    def sample(self) -> Sample:
        assert self.process is not None
        return Sample(
            time.monotonic(),
            int(time.time() * 1000),
            rss_kib(self.process.pid),
            dir_bytes(self.db),
            udp_drops(self.port),
            cpu_seconds(self.process.pid),
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.process, sig)


def wait_for_udp(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until udpt answers a BEP 15 connect on ``port``; fails at once if it exited."""
    connect = (0x41727101980).to_bytes(8, "big") + bytes(4) + b"wake"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.1)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"udpt exited with {process.returncode} before answering")
            probe.sendto(connect, ("127.0.0.1", port))
            try:
                probe.recv(64)
                return
            except OSError:
                continue
    raise TimeoutError(f"udpt did not answer on UDP port {port} within {timeout} s")


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (the daemon is a child of taskset's exec: the same pid)."""
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dir_bytes(path: Path) -> int:
    """Bytes of the files in ``path`` (LMDB's data.mdb grows as pages are written)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def udp_drops(port: int) -> int:
    """Kernel receive drops of the socket bound to 127.0.0.1:``port`` (/proc/net/udp)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as rows:
        for row in rows:
            fields = row.split()
            if len(fields) > 12 and fields[1] == local:
                return int(fields[12])
    return 0


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Legit:
    """loadgen's report on the legitimate load: requests sent and answered normally."""

    sent: int
    ok: int
    p99_ms: float

    @property
    def answered(self) -> float:
        return self.ok / self.sent if self.sent else 0.0


def start_loadgen(
    loadgen: Path, port: int, scale: Scale, duration: float, warmup: float, seed: int = 1
) -> subprocess.Popen:
    """The legitimate load: fixed rate over ``legit_sources`` addresses, its own 1,000 torrents."""
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            LOAD_CPU,
            str(loadgen),
            *legit_args(port, scale, duration, warmup, seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def legit_args(port: int, scale: Scale, duration: float, warmup: float, seed: int) -> list[str]:
    return [
        "--port",
        str(port),
        "--rate",
        str(scale.legit_rate),
        "--sockets",
        str(scale.legit_sources),
        "--src-ips",
        str(scale.legit_sources),
        "--peers",
        "10",
        "--window",
        "4",
        "--torrents",
        "1000",
        "--peer-torrents",
        "1",
        "--mix",
        "90:10",
        "--seed",
        str(seed),
        "--warmup",
        f"{warmup:g}",
        "--duration",
        f"{duration:g}",
        "--json",
    ]


def finish_loadgen(load: subprocess.Popen, timeout: float) -> Legit:
    """Wait for loadgen's report: announces and scrapes it sent, answered without error."""
    out, err = load.communicate(timeout=timeout)
    if load.returncode != 0:
        raise RuntimeError(f"loadgen failed ({load.returncode}): {err[-500:]}")
    report = json.loads(out)
    types = report["types"]
    kinds = [types["announce"], types["scrape"]]
    return Legit(
        sum(k["sent"] for k in kinds),
        sum(k["ok"] for k in kinds),
        types["announce"]["latency_us"]["p99"] / 1000,
    )


def run_flood(flood: Path, port: int, *args: str, timeout: float = 700) -> dict:
    """One run of benchmarks/flood.c on CPU 1; its JSON report."""
    run = subprocess.run(
        ["taskset", "-c", LOAD_CPU, str(flood), *args, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"flood failed ({run.returncode}): {run.stderr[-500:]}")
    return json.loads(run.stdout)


# --------------------------------------------------------------------------- probe


@dataclass
class PhaseTally:
    """The probe's announces in one phase of a scenario."""

    sent: int = 0
    ok: int = 0
    lost: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    max_ms: float = 0.0


def merge(tallies: Iterable[PhaseTally]) -> PhaseTally:
    """Several tallies as one (phases of a scenario, or probes of several cycles)."""
    total = PhaseTally()
    for t in tallies:
        total.sent += t.sent
        total.ok += t.ok
        total.lost += t.lost
        total.errors.update(t.errors)
        total.max_ms = max(total.max_ms, t.max_ms)
    return total


class Probe(threading.Thread):
    """Announces a fresh info hash (a new torrent), one at a time, from a few sources.

    Why one at a time: its slowest answer is then a bound on the longest stall of
    udpt's event loop seen from outside (plus one commit), not a queue of its own.
    """

    def __init__(self, port: int, sources: int, rate: float, timeout: float = 1.0) -> None:
        super().__init__(daemon=True, name="probe")
        self.port, self.rate, self.timeout = port, rate, timeout
        self.hosts = [f"127.0.0.{PROBE_FIRST + i}" for i in range(sources)]
        self.phase = "before"
        self.tallies: dict[str, PhaseTally] = {}
        self._halt = threading.Event()
        self._rng = random.Random(7)

    def run(self) -> None:
        socks = []
        try:
            for host in self.hosts:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((host, 0))
                sock.settimeout(self.timeout)
                socks.append(sock)
            ids = [b""] * len(socks)
            ids_at = [0.0] * len(socks)
            turn = 0
            next_at = time.monotonic()
            while not self._halt.is_set():
                i = turn % len(socks)
                turn += 1
                if time.monotonic() - ids_at[i] > 60:
                    ids[i] = self._connect(socks[i])
                    ids_at[i] = time.monotonic() if ids[i] else 0.0
                if ids[i]:
                    self._announce(socks[i], ids[i])
                next_at += 1 / self.rate
                self._halt.wait(max(0.0, next_at - time.monotonic()))
        finally:
            for sock in socks:
                sock.close()

    def halt(self) -> None:
        self._halt.set()
        self.join(5)

    def tally(self, *phases: str) -> PhaseTally:
        """The tallies of ``phases`` together."""
        return merge(self.tallies.get(phase, PhaseTally()) for phase in phases)

    def _exchange(self, sock: socket.socket, request: bytes) -> tuple[bytes | None, float]:
        """Send one request; its reply (matched by transaction id) and the ms it took."""
        began = time.monotonic()
        sock.sendto(request, ("127.0.0.1", self.port))
        deadline = began + self.timeout
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                reply = sock.recv(2048)
            except OSError:
                return None, 0.0
            if reply[4:8] == request[12:16]:  # its transaction id
                return reply, (time.monotonic() - began) * 1000

    def _connect(self, sock: socket.socket) -> bytes:
        tid = self._rng.randbytes(4)
        reply, _ = self._exchange(sock, (0x41727101980).to_bytes(8, "big") + bytes(4) + tid)
        return reply[8:16] if reply is not None and len(reply) >= 16 else b""

    def _announce(self, sock: socket.socket, connection_id: bytes) -> None:
        rng = self._rng
        request = (
            connection_id
            + (1).to_bytes(4, "big")
            + rng.randbytes(4)  # transaction id
            + rng.randbytes(20)  # a fresh info hash: a new torrent
            + b"-PR0001-"
            + rng.randbytes(12)
            + bytes(8)
            + (1000).to_bytes(8, "big")
            + bytes(8)
            + (2).to_bytes(4, "big")
            + bytes(4)
            + rng.randbytes(4)
            + (0).to_bytes(4, "big")
            + rng.randrange(1024, 65535).to_bytes(2, "big")
        )
        tally = self.tallies.setdefault(self.phase, PhaseTally())
        tally.sent += 1
        reply, ms = self._exchange(sock, request)
        if reply is None:
            tally.lost += 1
            return
        tally.max_ms = max(tally.max_ms, ms)
        action = int.from_bytes(reply[:4], "big")
        if action == 1:
            tally.ok += 1
        else:
            tally.errors[reply[8:].decode("ascii", "replace")] += 1


class Scraper(threading.Thread):
    """Reads udpt's /metrics every 2 s: the worst event-loop lag, udpt's own drop counts.

    ``udpt_event_loop_lag_seconds`` is the worst of the last 5 s, so scraping every
    2 s sees every stall; the drops are the difference between the first and last scrape.
    """

    LINE = re.compile(
        r'^(udpt_event_loop_lag_seconds|udpt_datagrams_dropped_total)(?:\{reason="(\w+)"\})? (\S+)$'
    )

    def __init__(self, api_port: int) -> None:
        super().__init__(daemon=True, name="scraper")
        self.url = f"http://127.0.0.1:{api_port}/metrics?token={TOKEN}"
        self.lag_max_s: float | None = None
        self.first: dict[str, float] | None = None
        self.last: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as reply:
                    self._read(reply.read().decode())
            except (OSError, ValueError):
                pass
            self._halt.wait(2)

    def _read(self, text: str) -> None:
        dropped: dict[str, float] = {}
        for line in text.splitlines():
            match = self.LINE.match(line)
            if match is None:
                continue
            name, reason, value = match.groups()
            if name == "udpt_event_loop_lag_seconds":
                self.lag_max_s = max(self.lag_max_s or 0.0, float(value))
            else:
                dropped[reason] = float(value)
        if self.first is None:
            self.first = dropped
        self.last = dropped

    def halt(self) -> None:
        self._halt.set()
        self.join(5)

    def dropped(self) -> str:
        first = self.first or {}
        grown = {k: int(v - first.get(k, 0)) for k, v in self.last.items() if v > first.get(k, 0)}
        return json.dumps(grown) if self.first is not None else "n/a"


# --------------------------------------------------------------------------- figures


@dataclass
class Result:
    """One scenario's figures; ``extra`` holds its own (the attack, verify results)."""

    name: str
    legit: Legit
    probe: PhaseTally
    seconds: float
    rss_growth_kib: int
    data_growth: int
    kernel_drops: int
    cpu_s: float
    window_ms: tuple[int, int] = (0, 0)  # wall-clock ms of the two samples
    probe_attack: PhaseTally | None = None  # the probe during and after the attack
    extra: dict[str, str] = field(default_factory=dict)
    checks: list[tuple[str, str, str]] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)  # read from udpt's /metrics
    error: str = ""  # the scenario failed: this says how, and there are no figures

    @classmethod
    def between(cls, name: str, legit: Legit, probe: PhaseTally, a: Sample, b: Sample) -> Result:
        return cls(
            name,
            legit,
            probe,
            max(b.at - a.at, 1e-9),
            b.rss_kib - a.rss_kib,
            b.data_bytes - a.data_bytes,
            b.kernel_drops - a.kernel_drops,
            b.cpu_s - a.cpu_s,
            (a.wall_ms, b.wall_ms),
        )

    @property
    def data_rate(self) -> float:
        return self.data_growth / self.seconds


def log_events(daemon: Daemon) -> Iterator[dict]:
    """Every event of a stopped daemon's log, from ``tools/replay.py --export -``."""
    export = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "replay.py"), str(daemon.db), "--export", "-"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert export.stdout is not None
        for line in export.stdout:
            yield json.loads(line)
    finally:
        stop(export, signal.SIGKILL, 5)


def flood_share(
    daemon: Daemon, flood_ips: set[str], window_ms: tuple[int, int]
) -> tuple[int, int, int]:
    """From the log: (torrents the flood created, its events, all events) in the window.

    A torrent is the flood's when its first accepted announce came from a flood
    address; the daemon has stopped, so the log is read whole.
    """
    seen: set[str] = set()
    created = recorded = events = 0
    start, end = window_ms
    for event in log_events(daemon):
        info_hash = event.get("info_hash")
        from_flood = event.get("ip") in flood_ips
        if start <= event["at_ms"] <= end:
            events += 1
            recorded += from_flood
        if event["type"] == "AnnounceAccepted" and info_hash not in seen:
            created += from_flood
        if info_hash is not None:
            seen.add(info_hash)
    return created, recorded, events


# --------------------------------------------------------------------------- scenarios


@dataclass
class Bench:
    """What every scenario needs: binaries, scale, a place for logs, the baseline."""

    loadgen: Path
    flood: Path
    work: Path
    scale: Scale
    baseline_rate: float | None = None

    @contextmanager
    def daemon(self, name: str) -> Iterator[Daemon]:
        daemon = Daemon(self.work / name, free_port(), free_port(socket.SOCK_STREAM))
        try:
            daemon.start()
            yield daemon
        finally:
            daemon.stop()

    def under_load(
        self,
        name: str,
        daemon: Daemon,
        attack_s: float,
        attack: Callable[[], None],
        pre_s: float | None = None,
        after_s: float | None = None,
    ) -> Result:
        """Legit load + probe; ``attack`` runs ``pre_s`` into loadgen's measured window.

        The window is ``pre_s + attack_s + after_s`` (the scale's unless given); the
        daemon is sampled when the attack starts and when the window ends.
        """
        scale = self.scale
        pre_s = scale.pre_s if pre_s is None else pre_s
        after_s = scale.after_s if after_s is None else after_s
        window = pre_s + attack_s + after_s
        probe = Probe(daemon.port, scale.probe_sources, scale.probe_rate)
        scraper = Scraper(daemon.api_port)
        load = None
        try:
            probe.start()
            scraper.start()
            load = start_loadgen(self.loadgen, daemon.port, scale, window, scale.warmup_s)
            time.sleep(scale.warmup_s + pre_s)
            before = daemon.sample()
            probe.phase = "during"
            began = time.monotonic()
            attack()
            probe.phase = "after"
            time.sleep(max(0.0, began + attack_s + after_s - time.monotonic()))
            after = daemon.sample()
            legit = finish_loadgen(load, timeout=60)
        finally:
            stop(load, signal.SIGKILL, 5)
            probe.halt()
            scraper.halt()
        result = Result.between(
            name, legit, probe.tally("before", "during", "after"), before, after
        )
        result.probe_attack = probe.tally("during", "after")
        lag = scraper.lag_max_s
        result.metrics = {
            "udpt_event_loop_lag_seconds, worst": "n/a" if lag is None else f"{lag * 1000:.1f} ms",
            "udpt_datagrams_dropped_total, grown": scraper.dropped(),
        }
        return result

    def excess(self, result: Result) -> str:
        if self.baseline_rate is None:
            return "n/a"
        return f"{(result.data_rate - self.baseline_rate) / 1000:+.1f} KB/s"

    # -- 0. baseline --------------------------------------------------------

    def baseline(self) -> Result:
        with self.daemon("baseline") as daemon:
            result = self.under_load(
                "0. baseline (legit only)",
                daemon,
                self.scale.flood_s,
                lambda: time.sleep(self.scale.flood_s),
            )
        self.baseline_rate = result.data_rate
        return result

    # -- 1. garbage -----------------------------------------------------------

    def garbage(self) -> Result:
        scale = self.scale
        report: dict = {}

        def attack() -> None:
            report.update(
                run_flood(
                    self.flood,
                    daemon.port,
                    "garbage",
                    "--src",
                    GARBAGE_SOURCE,
                    "--count",
                    str(scale.garbage_count),
                )
            )

        with self.daemon("garbage") as daemon:
            result = self.under_load(
                f"1. {scale.garbage_count:,} garbage datagrams, one burst",
                daemon,
                scale.garbage_window_s,
                attack,
                pre_s=0,
                after_s=0,
            )
        result.extra["attack"] = (
            f"{report['sent']:,} datagrams in {report['seconds']:.2f} s "
            f"({report['per_s']:,.0f}/s) from {GARBAGE_SOURCE}"
        )
        result.checks.append(
            (
                f"legit requests answered ({scale.garbage_window_s:g} s from the burst's start)",
                f"{result.legit.answered:.2%}",
                ">= 99.5 %",
            )
        )
        return result

    # -- 2, 3. random-hash floods --------------------------------------------------

    def random_hash_flood(self, label: str, first: str, sources: int, seconds: float) -> Result:
        scale = self.scale
        report: dict = {}
        base = [int(x) for x in first.split(".")]
        ips = {".".join(map(str, [*base[:3], base[3] + i])) for i in range(sources)}

        def attack() -> None:
            report.update(
                run_flood(
                    self.flood,
                    daemon.port,
                    "announce",
                    "--src",
                    first,
                    "--sources",
                    str(sources),
                    "--rate",
                    str(scale.flood_rate),
                    "--duration",
                    f"{seconds:g}",
                )
            )

        name = "2" if sources == 1 else "3"
        with self.daemon(f"flood{sources}") as daemon:
            result = self.under_load(f"{name}. random-hash flood, {label}", daemon, seconds, attack)
        created, recorded, events = flood_share(daemon, ips, result.window_ms)
        quotas = QuotaConfig()  # the daemon runs on the default quotas
        quota = sources * (
            quotas.new_torrent_burst + quotas.new_torrents_per_minute * report["seconds"] / 60
        )
        result.extra["attack"] = (
            f"{report['sent']:,} valid-id announces in {report['seconds']:.1f} s "
            f"({report['per_s']:,.0f}/s) from {sources} source(s); replies: {report['ok']:,} ok, "
            f"{report['errors']:,} errors {json.dumps(report['texts'])}, the rest silence"
        )
        probe_new = self_probe_new(result.probe_attack or result.probe)
        one_host = "<= 10 KB/s" if sources == 1 else "none (one host's: <= 10 KB/s)"
        result.checks += [
            (
                "new torrents the flood created",
                f"{created:,}",
                f"<= {quota:,.0f} (burst + refill; issue: <= 1,000 for one source in 60 s)",
            ),
            ("legit announces for new torrents answered normally", probe_new, ">= 99 %"),
            (
                "flood's share of data-directory growth",
                share(result, recorded, events, report["seconds"]),
                one_host,
            ),
            ("data-directory growth over the baseline", self.excess(result), ""),
        ]
        return result

    # -- 4. refusal flood ---------------------------------------------------------------

    def refusal_flood(self) -> Result:
        scale = self.scale
        info_hash = f"{random.Random(4).getrandbits(160):040x}"
        report: dict = {}

        def attack() -> None:
            report.update(
                run_flood(
                    self.flood,
                    daemon.port,
                    "announce",
                    "--src",
                    FLOOD_SOURCE,
                    "--rate",
                    str(scale.flood_rate),
                    "--duration",
                    f"{scale.refusal_s:g}",
                    "--hash",
                    info_hash,
                )
            )

        with self.daemon("refusal") as daemon:
            flag(daemon.api_port, info_hash)
            result = self.under_load(
                "4. refusal flood on a flagged torrent, one source",
                daemon,
                scale.refusal_s,
                attack,
            )
        _, recorded, events = flood_share(daemon, {FLOOD_SOURCE}, result.window_ms)
        result.extra["attack"] = (
            f"{report['sent']:,} announces for the flagged torrent in {report['seconds']:.1f} s "
            f"from {FLOOD_SOURCE}; replies: {report['errors']:,} errors "
            f"{json.dumps(report['texts'])}, {report['ok']:,} ok, the rest silence"
        )
        result.checks += [
            (
                "flood's share of data-directory growth",
                share(result, recorded, events, report["seconds"]),
                "<= 10 KB/s",
            ),
            ("data-directory growth over the baseline", self.excess(result), ""),
        ]
        return result

    # -- 5. SIGKILL cycles --------------------------------------------------------------------

    def sigkill_cycles(self) -> Result:
        """Start, load, SIGKILL mid-load, verify, restart on the same log; ``kill_cycles`` times.

        Two loads run in each cycle: the measured one ends just before the kill, a
        second one (seed 2) is still sending when SIGKILL lands, so the kill hits
        announces in flight and batches being committed.
        """
        scale = self.scale
        daemon = Daemon(self.work / "sigkill", free_port(), free_port(socket.SOCK_STREAM))
        half = Scale(**{**scale.__dict__, "legit_rate": scale.legit_rate // 2})
        legits, verifies, restarts, samples, probes, loads = [], [], [], [], [], []
        try:
            for _cycle in range(scale.kill_cycles):
                restarts.append(daemon.start())
                probe = Probe(daemon.port, scale.probe_sources, scale.probe_rate)
                probes.append(probe)
                probe.start()
                samples.append(daemon.sample())
                measured = start_loadgen(self.loadgen, daemon.port, half, scale.kill_load_s, 0)
                background = start_loadgen(
                    self.loadgen, daemon.port, half, scale.kill_load_s + 2, 0, seed=2
                )
                loads += [measured, background]
                legits.append(finish_loadgen(measured, timeout=60))
                samples.append(daemon.sample())
                probe.halt()  # its announces would wait 1 s on a dead daemon
                daemon.stop(signal.SIGKILL)  # the background load is still sending
                stop(background, signal.SIGKILL, 5)
                verifies.append(verify(daemon.db))
        finally:
            for probe in probes:
                probe.halt()
            for load in loads:
                stop(load, signal.SIGKILL, 5)
            daemon.stop(signal.SIGKILL)
        legit = Legit(
            sum(x.sent for x in legits), sum(x.ok for x in legits), max(x.p99_ms for x in legits)
        )
        loaded = list(zip(samples[0::2], samples[1::2], strict=True))
        result = Result(
            f"5. SIGKILL cycles under load ({scale.kill_cycles})",
            legit,
            merge(p.tally("before") for p in probes),
            sum(b.at - a.at for a, b in loaded),
            samples[-1].rss_kib - samples[0].rss_kib,
            samples[-1].data_bytes - samples[0].data_bytes,
            sum(b.kernel_drops - a.kernel_drops for a, b in loaded),
            sum(b.cpu_s - a.cpu_s for a, b in loaded),
        )
        ok = sum(code == 0 for code, _ in verifies)
        result.extra["attack"] = (
            f"{scale.kill_cycles} cycles of start, {scale.kill_load_s:g} s of load, SIGKILL; "
            f"restart (to the first answer) {min(restarts):.2f} .. {max(restarts):.2f} s; "
            f"verify {max(s for _, s in verifies):.2f} s at most"
        )
        result.extra["rss"] = (
            f"RSS after the load: first cycle {samples[1].rss_kib / 1024:.1f} MiB, "
            f"last {samples[-1].rss_kib / 1024:.1f} MiB"
        )
        result.checks.append(
            ("tools/replay.py --verify exit 0 after each SIGKILL", f"{ok}/{len(verifies)}", "all")
        )
        return result


def share(result: Result, recorded: int, events: int, flood_s: float) -> str:
    """The flood's events times the window's bytes per event, per second of flood.

    Why not the raw growth: the legitimate load grows the log at ~100+ KB/s by
    itself, and the difference from the baseline run is within its noise.
    """
    if not events:
        return "n/a"
    per_event = result.data_growth / events
    return (
        f"{recorded * per_event / flood_s / 1000:.2f} KB/s "
        f"({recorded:,} of the window's {events:,} events, {per_event:.0f} B each)"
    )


def self_probe_new(probe: PhaseTally) -> str:
    """The probe's announces (each a new torrent) answered normally, with what went wrong."""
    if not probe.sent:
        return "n/a"
    wrong = dict(probe.errors)
    if probe.lost:
        wrong["no reply within 1 s"] = probe.lost
    detail = f" ({probe.sent - probe.ok} not: {json.dumps(wrong)})" if wrong else ""
    return f"{probe.ok / probe.sent:.2%} of {probe.sent}{detail}"


def flag(api_port: int, info_hash: str) -> None:
    """Flag ``info_hash`` through the REST API (it is created flagged if unknown)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/t/{info_hash}?token={TOKEN}",
        data=b'{"is_flagged": true}',
        method="POST",
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                reply.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def verify(db: Path) -> tuple[int, float]:
    """``tools/replay.py DB --verify`` on a killed daemon's log: (exit status, seconds)."""
    began = time.monotonic()
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "replay.py"), str(db), "--verify"],
        capture_output=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if run.returncode != 0:
        print(f"verify failed: {run.stdout[-500:]!r} {run.stderr[-500:]!r}", file=sys.stderr)
    return run.returncode, time.monotonic() - began


# --------------------------------------------------------------------------- report


def rows(result: Result) -> list[tuple[str, str, str]]:
    """The figures every scenario prints, then its own checks against targets."""
    if result.error:
        return [("FAILED", result.error, "")]
    legit, probe = result.legit, result.probe
    stall = f"{probe.max_ms:.0f} ms" if probe.sent else "n/a"
    if probe.lost:
        stall = (
            f"> 1000 ms ({probe.lost} probe announces unanswered in 1 s; answered ones: {stall})"
        )
    out = [
        ("legit requests answered normally", f"{legit.answered:.2%} of {legit.sent:,}", ""),
        ("legit announce p99", f"{legit.p99_ms:.1f} ms", ""),
        ("daemon RSS growth", f"{result.rss_growth_kib / 1024:+.1f} MiB", ""),
        (
            "data-directory growth",
            f"{result.data_growth:,} B in {result.seconds:.1f} s "
            f"({result.data_rate / 1000:,.1f} KB/s)",
            "",
        ),
        ("kernel receive drops", f"{result.kernel_drops:,}", ""),
        ("daemon CPU (of one core)", f"{result.cpu_s / result.seconds:.0%}", ""),
        ("longest probe answer (loop stall bound)", stall, ""),
        *((f"/metrics: {k}", v, "") for k, v in result.metrics.items()),
    ]
    out += [(f"attack: {k}" if k != "attack" else "attack", v, "") for k, v in result.extra.items()]
    return out + result.checks


def table(results: list[Result]) -> str:
    lines = ["| scenario | figure | value | target |", "|---|---|---|---|"]
    for result in results:
        for i, (figure, value, target) in enumerate(rows(result)):
            lines.append(f"| {result.name if i == 0 else ''} | {figure} | {value} | {target} |")
    return "\n".join(lines)


GLOSSARY = """\
What each figure is:
- legit requests answered normally: loadgen's announces and scrapes sent in its measured
  window that got a valid non-error reply within 1 s (ok / sent); the load is {rate:,}
  requests/s (90 % announces) from {sources} sources 127.0.0.1..{sources}, so each stays
  under the default 50 announces/s; their torrents are 1,000 fixed hashes.
- legit announce p99: loadgen's p99 latency over the announces that got a reply.
- daemon RSS growth: VmRSS (/proc/PID/status) at the end of the window minus at the start
  of the attack (scenario 5: last cycle after its load minus first cycle before it).
- data-directory growth: bytes of the files in db_path (LMDB's data.mdb grows as pages are
  written), end minus start, over the same interval; "over the baseline" subtracts scenario
  0's rate, since the legitimate load's own announces grow the log too.
- kernel receive drops: the drops column of /proc/net/udp for the daemon's 127.0.0.1:PORT
  socket (datagrams the kernel threw away because udpt's receive buffer was full), same
  interval (udpt's /metrics does not export them).
- daemon CPU: user + system seconds of the daemon (/proc/PID/stat) over the same interval,
  divided by its length; CPU 0 is shared with other work on this machine.
- longest probe answer: a probe thread announces a fresh info hash at {probe:g}/s, one at a
  time, from 127.0.0.101..; its slowest reply bounds the longest event-loop stall (plus one
  commit with fsync). Its announces are also the "legit announces for new torrents".
- /metrics: udpt_event_loop_lag_seconds (how late the loop woke a 0.25 s sleeper, worst of
  5 s), the worst of scrapes every 2 s over the whole run of the scenario; and what
  udpt_datagrams_dropped_total grew by from the scenario's start, per reason (udpt's own drops).
- new torrents the flood created, flood events recorded: read back from the log
  (tools/replay.py --export) by the flood's source addresses, once the daemon stopped.
"""


def glossary(scale: Scale) -> str:
    return GLOSSARY.format(
        rate=scale.legit_rate, sources=scale.legit_sources, probe=scale.probe_rate
    )


def scenarios(bench: Bench) -> list[Callable[[], Result]]:
    scale = bench.scale
    return [
        bench.baseline,
        bench.garbage,
        lambda: bench.random_hash_flood(
            f"one source, {scale.flood_s:g} s", FLOOD_SOURCE, 1, scale.flood_s
        ),
        lambda: bench.random_hash_flood(
            f"64 sources, {scale.flood64_s:g} s", FLOOD64_FIRST, 64, scale.flood64_s
        ),
        bench.refusal_flood,
        bench.sigkill_cycles,
    ]


def run_scenario(number: int, scenario: Callable[[], Result]) -> Result:
    """Run one scenario; a failure is reported in its row and the next one still runs."""
    try:
        return scenario()
    except Exception as error:  # one broken scenario must not cost the others' figures
        traceback.print_exc()
        empty = Legit(0, 0, 0.0)
        return Result(f"{number}.", empty, PhaseTally(), 0, 0, 0, 0, 0, error=repr(error)[:300])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--only",
        type=int,
        nargs="+",
        metavar="N",
        help="run only these scenarios (by number); the report is printed, not written",
    )
    args = parser.parse_args(argv)
    scale = Scale.quick() if args.quick else Scale()
    # This process (and its probe thread) stays off the tracker's CPU, with the loads.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="udpt-torture-") as tmp:
        work = Path(tmp)
        loadgen, flood = build(work)
        bench = Bench(loadgen, flood, work, scale)
        for number, scenario in enumerate(scenarios(bench)):
            if args.only and number not in args.only:
                continue
            result = run_scenario(number, scenario)
            print(f"{result.name}: done at {time.monotonic() - began:.0f} s", file=sys.stderr)
            results.append(result)
    command = "python benchmarks/torture.py" + (" --quick" if args.quick else "")
    legit = " ".join(legit_args(0, scale, 0, scale.warmup_s, 1))
    legit = legit.replace("--port 0 ", "--port PORT ").replace(
        "--duration 0 ", "--duration WINDOW "
    )
    report = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.platform()}. udpt (default quotas, fsync per batch) pinned to CPU "
        f"{TRACKER_CPU}; loadgen, floods on CPU {LOAD_CPU}; the machine is shared (1-minute "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after). "
        f"Took {time.monotonic() - began:.0f} s.\n\n{table(results)}\n\n"
        f"{glossary(scale)}"
        f"\nCommand:\n\n```\n{command}\nlegit load: loadgen {legit}\n```\n"
    )
    print(report)
    if not args.quick and not args.only:
        write_section(args.output, SECTION, report)
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
