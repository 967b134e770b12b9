"""What an operator sees and does, against the real daemon: /metrics, /health, /, the status
page in a headless browser, one daemon per log, SIGHUP, start-up lines.

In-process daemons (tests/support/daemon.py) where the test needs the loop's
objects; ``python -m udpt -c FILE`` subprocesses where the behaviour is the
process's own (exit codes, signals, its log on stderr).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bep15 import TrackerClient, announce_request
from tests.support.daemon import make_config, running_tracker
from tests.support.disks import small_tmpfs
from udpt.config import LogConfig
from udpt.daemon import Running

TOKEN = "metrics-T0ken-value"
TOKENS = {"ops": TOKEN}
FAST_LOG = LogConfig(fsync=False, commit_linger_ms=0)
HASH = bytes.fromhex("aa" * 20)
REPO = Path(__file__).resolve().parents[2]


async def until(condition: Callable[[], object], timeout: float = 10, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def tracker_with_api(
    db_path: Path, log: LogConfig = FAST_LOG
) -> AsyncIterator[tuple[Running, httpx.AsyncClient]]:
    config = make_config(db_path, tokens=TOKENS, log=log)
    async with running_tracker(config) as running:
        host, port = running.http_address[:2]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as http:
            yield running, http


async def udp_client(running: Running) -> TrackerClient:
    host, port = running.udp_addresses[0][:2]
    client = await TrackerClient.open((host, port), "127.0.0.1")
    await client.connect()
    return client


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by name, parsed with prometheus-client's own parser; a family with no
    samples yet is there too, with none."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


async def scrape(http: httpx.AsyncClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return families(response.text)


# -- /metrics ----------------------------------------------------------------------------


async def test_metrics_parse_and_move_with_udp_traffic(tmp_path: Path) -> None:
    async with tracker_with_api(tmp_path / "log") as (running, http):
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", params={"token": "wrong"})).status_code == 401
        assert (await http.get("/metrics", params={"token": TOKEN})).status_code == 200

        before = await scrape(http)
        for name in (
            "udpt_requests",
            "udpt_responses",
            "udpt_datagrams_dropped",
            "udpt_torrents",
            "udpt_peers",
            "udpt_events",
            "udpt_snapshot_age_seconds",
            "udpt_commit_seconds_count",
            "udpt_commit_batch_events_bucket",
            "udpt_log_bytes",
            "udpt_log_first_seq",
            "udpt_log_last_seq",
            "udpt_writer_healthy",
            "udpt_event_loop_lag_seconds",
            "udpt_quota_refusals",
            "udpt_quota_sources",
            "udpt_kernel_receive_drops",
            "process_cpu_seconds_total",
        ):
            assert name in before, name
        assert value(before, "udpt_writer_healthy") == 1
        assert value(before, "udpt_log_bytes") > 0

        client = await udp_client(running)
        for port in range(6881, 6886):
            await client.announce(HASH, port=port, left=0)
        await client.send(b"\x00" * 7)  # too short to parse: dropped, no reply
        await client.announce(HASH, port=6886)  # a probe on the same path, answered after it
        after = await scrape(http)
        client.close()

        assert (
            value(after, "udpt_requests_total", action="announce", ip_version="4")
            - value(before, "udpt_requests_total", action="announce", ip_version="4")
            == 6
        )
        assert value(after, "udpt_requests_total", action="connect") >= 1
        assert (
            value(after, "udpt_commit_batch_events_sum")
            - value(before, "udpt_commit_batch_events_sum")
            >= 6
        )
        ok = value(after, "udpt_responses_total", action="announce", result="ok")
        assert ok - value(before, "udpt_responses_total", action="announce", result="ok") == 6
        accepted = {"type": "AnnounceAccepted"}
        assert (
            value(after, "udpt_events_total", **accepted)
            - value(before, "udpt_events_total", **accepted)
            == 6
        )
        assert value(after, "udpt_datagrams_dropped_total", reason="malformed") == 1
        assert value(after, "udpt_torrents") == 1
        assert value(after, "udpt_log_last_seq") == running.state.last_seq
        # Never labelled by address or info hash.
        text = (await http.get("/metrics", params={"token": TOKEN})).text
        assert "127.0.0.1" not in text and HASH.hex() not in text and TOKEN not in text


async def test_histograms_export_their_buckets_cumulatively(tmp_path: Path) -> None:
    async with tracker_with_api(tmp_path / "log") as (running, http):
        before = await scrape(http)
        seconds = running.counters.commit_seconds
        seconds.observe(0.0031)  # as the intake does for each batch
        after = await scrape(http)
    assert (
        value(after, "udpt_commit_seconds_count") == value(before, "udpt_commit_seconds_count") + 1
    )
    for bound, count in zip(seconds.bounds, itertools.accumulate(seconds.counts), strict=False):
        assert value(after, "udpt_commit_seconds_bucket", le=repr(float(bound))) == count
    assert value(after, "udpt_commit_seconds_bucket", le="+Inf") == seconds.observed
    assert value(after, "udpt_commit_seconds_sum") == pytest.approx(seconds.total)


async def test_a_restart_shows_the_snapshot_it_started_from(tmp_path: Path) -> None:
    async with tracker_with_api(tmp_path / "log") as (running, http):
        assert (await scrape(http))["udpt_snapshot_age_seconds"] == []  # none yet
        client = await udp_client(running)
        await client.announce(HASH)
        client.close()
    async with tracker_with_api(tmp_path / "log") as (running, http):  # snapshot at shutdown
        samples = await scrape(http)
        assert samples["udpt_snapshot_age_seconds"][0][1] >= 0
        assert value(samples, "udpt_log_first_seq") == 1
        assert value(samples, "udpt_log_last_seq") == running.state.last_seq == 1


async def test_drops_are_summed_up_in_one_line_per_period_only_when_there_were_some(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("udpt.observe.SUMMARY_EVERY_S", 0.2)
    caplog.set_level(logging.INFO, logger="udpt.observe")
    async with tracker_with_api(tmp_path / "log") as (running, _):
        client = await udp_client(running)
        for _ in range(3):
            await client.send(b"\x00" * 7)
        await client.announce(HASH)
        await until(lambda: "last 0.2 s: dropped" in caplog.text, what="a summary line")
        await asyncio.sleep(0.5)  # quiet periods: no more lines
        client.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("last ")]
    assert lines == ["last 0.2 s: dropped 3 (malformed 3)"]


# -- /health and / ----------------------------------------------------------------------


async def test_health_and_index_answer_without_a_token(tmp_path: Path) -> None:
    async with tracker_with_api(tmp_path / "log") as (running, http):
        health = await http.get("/health")
        index = await http.get("/")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert body["last_seq"] == running.state.last_seq
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), to fill up."""
    with small_tmpfs(tmp_path, "2m") as mount_point:
        yield mount_point


async def test_health_is_503_while_the_log_cannot_commit_and_200_once_space_is_freed(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="udpt")
    filler = small_disk / "filler"
    log = LogConfig(fsync=True, commit_linger_ms=0, map_size_mib=8)
    async with tracker_with_api(small_disk / "log", log) as (running, http):
        client = await udp_client(running)
        stat = os.statvfs(small_disk)
        filler.write_bytes(bytes(stat.f_bavail * stat.f_frsize - 8192))
        statuses: list[httpx.Response] = []

        async def announce_and_check() -> None:
            """Announces that grow the log (new torrents), sent without waiting for replies."""
            assert client.connection_id is not None
            for port in range(10):
                await client.send(
                    announce_request(
                        client.connection_id,
                        client.next_transaction_id(),
                        os.urandom(20),
                        client.peer_id,
                        port=1000 + port,
                    )
                )
            statuses.append(await http.get("/health"))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not statuses or statuses[-1].status_code == 200:
            assert loop.time() < deadline, "the full disk never failed a commit"
            await announce_and_check()
            await asyncio.sleep(0.05)
        failing = statuses[-1]
        assert failing.status_code == 503
        assert failing.json()["reason"].startswith("log not committing: ")
        assert value(await scrape(http), "udpt_writer_healthy") == 0

        filler.unlink()
        deadline = loop.time() + 30  # the writer retries 5 s after a failure
        while statuses[-1].status_code != 200:
            assert loop.time() < deadline, "health never came back after space was freed"
            await announce_and_check()
            await asyncio.sleep(0.1)
        assert statuses[-1].json()["status"] == "ok"
        assert value(await scrape(http), "udpt_writer_healthy") == 1
        client.close()
    assert "the event log could not commit" in caplog.text
    assert "the event log commits again, after" in caplog.text


# -- the status page in a headless browser -----------------------------------------------

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
async def test_status_page_draws_its_chart_in_headless_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("udpt.observe.SAMPLE_EVERY_S", 0.2)
    async with tracker_with_api(tmp_path / "log") as (running, http):
        client = await udp_client(running)
        for step in range(25):  # ~5 s of traffic, sampled every 0.2 s
            for port in range(step % 7 + 1):
                await client.announce(HASH, port=7000 + port, left=port % 2)
            for _ in range(step // 5):
                await client.scrape(HASH)
            await asyncio.sleep(0.2)
        client.close()
        assert (await http.get("/status")).status_code == 200
        url = f"http://{running.http_address[0]}:{running.http_address[1]}/status"
        screenshot = tmp_path / "status.png"
        common = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,820",
        ]
        dom = await _run_browser([*common, "--dump-dom", url])
        await _run_browser([*common, f"--screenshot={screenshot}", url])
    drawn = re.search(r'data-drawn="(\d+)"', dom)
    assert drawn is not None, "the chart's script did not run"
    assert int(drawn.group(1)) > 10
    assert "<polyline" in dom
    assert "announce" in dom and "torrents" in dom
    assert TOKEN not in dom
    assert screenshot.stat().st_size > 10_000
    kept = os.environ.get("UDPT_STATUS_SCREENSHOT")
    if kept:
        shutil.copy(screenshot, kept)


async def _run_browser(argv: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, argv
    return out.decode()


# -- the daemon as a process: lock, signals, start-up --------------------------------------

_SERVING = re.compile(r"serving UDP on ([\d.]+):(\d+)(?:, API on ([\d.]+):(\d+))?")


@dataclass
class DaemonProcess:
    """``python -m udpt -c FILE`` with its stderr collected line by line."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    udp: tuple[str, int] = ("", 0)
    api: tuple[str, int] = ("", 0)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def collect(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode().rstrip("\n"))

    async def wait_for_line(
        self, pattern: str, timeout: float = 20, count: int = 1
    ) -> re.Match[str]:
        """The ``count``-th line matching ``pattern``, once logged."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for m in map(re.compile(pattern).search, self.lines) if m]
            return len(found) >= count or self.process.returncode is not None

        await until(seen, timeout, pattern)
        assert len(found) >= count, f"{pattern!r} not logged; stderr:\n{self.text}"
        return found[count - 1]


def write_config(path: Path, db_path: Path, tokens: dict[str, str], extra: str = "") -> Path:
    token_lines = "\n".join(f'{label} = "{token}"' for label, token in tokens.items())
    path.write_text(
        f'db_path = "{db_path}"\n'
        'log_level = "info"\n'
        f"{extra}\n"
        '[udp]\nbind_address = "127.0.0.1:0"\n'
        '[http]\nbind_address = "127.0.0.1:0"\n'
        f"[http.access_tokens]\n{token_lines}\n",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def daemon_process(config_path: Path) -> AsyncIterator[DaemonProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "udpt",
        "-c",
        str(config_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    daemon = DaemonProcess(process)
    collector = asyncio.create_task(daemon.collect())
    try:
        serving = await daemon.wait_for_line(_SERVING.pattern)
        daemon.udp = (serving.group(1), int(serving.group(2)))
        daemon.api = (serving.group(3), int(serving.group(4)))
        yield daemon
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await collector


async def test_a_second_daemon_on_the_same_log_exits_2_naming_path_and_pid(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "log"
    async with tracker_with_api(db_path):
        config = write_config(tmp_path / "udpt.toml", db_path, TOKENS)
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "udpt",
            "-c",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        _, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 2
        message = err.decode().strip()
        assert "\n" not in message
        assert str(db_path) in message and f"pid {os.getpid()}" in message

        # The replay tool still reads the live log: it takes no lock.
        replay = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "tools" / "replay.py"),
            str(db_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        _, err = await asyncio.wait_for(replay.communicate(), 60)
        assert replay.returncode == 0, err.decode()
    assert (db_path / "udpt.pid").read_text().strip() == str(os.getpid())


async def test_sighup_swaps_tokens_logs_labels_and_keeps_serving(tmp_path: Path) -> None:
    old_token, new_token = "old-T0ken-abc", "new-T0ken-xyz"
    config = write_config(tmp_path / "udpt.toml", tmp_path / "log", {"alice": old_token})
    async with daemon_process(config) as daemon:
        assert "udpt starting on" in daemon.text and str(tmp_path / "log") in daemon.text
        base = f"http://{daemon.api[0]}:{daemon.api[1]}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:

            async def status(token: str) -> int:
                return (await http.get("/metrics", params={"token": token})).status_code

            assert await status(old_token) == 200
            assert await status(new_token) == 401

            write_config(
                config,
                tmp_path / "log",
                {"bob": new_token},
                extra='cleanup_interval = 30\nlog_format = "json"',
            )
            daemon.process.send_signal(signal.SIGHUP)
            await daemon.wait_for_line(r"SIGHUP: applied .*access tokens")
            assert await status(new_token) == 200
            assert await status(old_token) == 401

            # The same file again: only the restart is asked for, again. A broken file
            # changes nothing.
            daemon.process.send_signal(signal.SIGHUP)
            await daemon.wait_for_line(r"SIGHUP: cleanup_interval changed", count=2)
            assert len(re.findall("SIGHUP: applied", daemon.text)) == 1
            config.write_text("mode = 'nonsense'\n", encoding="utf-8")
            daemon.process.send_signal(signal.SIGHUP)
            await daemon.wait_for_line(r"SIGHUP: .*mode.*the running configuration stays")
            assert await status(new_token) == 200

        async with await TrackerClient.open(daemon.udp, "127.0.0.1") as client:
            await client.connect()
            reply = await client.announce(HASH, port=6881)
            assert reply.seeders + reply.leechers == 1
        assert daemon.process.returncode is None

    text = daemon.text
    [applied] = [line for line in daemon.lines if "SIGHUP: applied" in line]
    entry = orjson.loads(applied)  # log_format changed with the same reload
    assert entry["level"] == "info" and "log_format text -> json" in entry["message"]
    assert "added 'bob'; removed 'alice'" in text
    assert "cleanup_interval changed" in text and "restart" in text
    assert old_token not in text and new_token not in text
    assert daemon.process.returncode == 0
    # ISO-8601 times with their zone.
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ", daemon.lines[0])
