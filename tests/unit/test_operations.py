"""The operator's pieces without a daemon: lock, log lines, reload diffs, census, health."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from udpt.config import Config, HttpConfig, LogFormat, LogLevel, UdpConfig
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, PeersExpired, TorrentFlagged
from udpt.events.writer import GroupCommitWriter
from udpt.health import CommitWatch, LoopLagProbe, assess
from udpt.lock import DataDirInUse, DataDirLock
from udpt.logs import TRACE, _IsoTimes, _JsonLines, log_admin_changes, set_log_level
from udpt.observe import PeerCensus, StartupProgress, summary_line
from udpt.projections import TrackerState
from udpt.reload import changed_keys

# -- one daemon per log ------------------------------------------------------------------


def test_the_lock_refuses_a_second_holder_naming_the_first_ones_pid(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "log"
    with DataDirLock(data_dir):
        assert (data_dir / "udpt.pid").read_text() == f"{os.getpid()}\n"
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(data_dir).acquire()
        assert refused.value.pid == os.getpid()
        assert str(refused.value) == (
            f"{data_dir} is in use by another udpt daemon (pid {os.getpid()})"
        )
    with DataDirLock(data_dir):  # released: a restart takes it again
        pass


def test_the_lock_dies_with_its_process_however_it_ends(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from udpt.lock import DataDirLock; "
            f"DataDirLock(Path({str(tmp_path)!r})).acquire(); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    ) as holder:  # its pipe closed and the process reaped on the way out
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(DataDirInUse, match=f"pid {holder.pid}"):
            DataDirLock(tmp_path).acquire()
        holder.kill()
    with DataDirLock(tmp_path):
        pass


# -- log lines ---------------------------------------------------------------------------


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("udpt.test", logging.WARNING, __file__, 1, message, args, None)


def test_text_lines_carry_iso_8601_times_with_their_zone() -> None:
    line = _IsoTimes("%(asctime)s %(levelname)s %(name)s: %(message)s").format(
        _record("disk %s", "full")
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d WARNING udpt.test: disk full", line
    )


def test_json_lines_are_one_object_each_with_the_exception() -> None:
    record = _record("commit %d failed", 7)
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        record.exc_info = sys.exc_info()
    line = _JsonLines().format(record)
    assert "\n" not in line
    entry = orjson.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "udpt.test"
    assert entry["message"] == "commit 7 failed"
    assert "No space left on device" in entry["exception"]
    assert re.fullmatch(r"\d{4}-.*T.*[+-]\d\d:\d\d", entry["time"])


@pytest.mark.parametrize(
    ("level", "udpt_level", "sanic_level"),
    [
        (LogLevel.OFF, logging.CRITICAL + 1, logging.CRITICAL + 1),
        (LogLevel.ERROR, logging.ERROR, logging.ERROR),
        (LogLevel.INFO, logging.INFO, logging.WARNING),
        (LogLevel.DEBUG, logging.DEBUG, logging.WARNING),
        (LogLevel.TRACE, TRACE, TRACE),
    ],
)
def test_log_level_means_what_it_means_in_udpt(
    level: LogLevel, udpt_level: int, sanic_level: int
) -> None:
    """udpt says as much as the level asks; libraries only warnings, except at trace."""
    saved = {name: logging.getLogger(name).level for name in ("", "udpt", "sanic")}
    try:
        set_log_level(level)
        assert logging.getLogger("udpt").level == udpt_level
        assert logging.getLogger("sanic").level == sanic_level
    finally:
        for name, value in saved.items():
            logging.getLogger(name).setLevel(value)


def test_admin_changes_are_logged_with_their_actor_once_committed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[int, int]] = []
    committed = log_admin_changes(lambda first, batch, _: seen.append((first, len(batch))))
    announce = AnnounceAccepted(
        1, b"\x01" * 20, b"\x7f\0\0\1", 6881, b"p" * 20, 0, AnnounceEvent.STARTED, 0, 0, 0
    )
    batch = [
        (event, b"", None) for event in (announce, TorrentFlagged(2, b"\x01" * 20, "backup-script"))
    ]
    with caplog.at_level(logging.INFO, logger="udpt.admin"):
        committed(41, batch, 0.001)
        committed(43, [(PeersExpired(3, 0, 0), b"", None)], 0.001)
    assert [r.getMessage() for r in caplog.records] == [
        f"torrent {'01' * 20} flagged by 'backup-script' (event 42)"
    ]
    assert seen == [(41, 2), (43, 1)]


def test_the_summary_names_only_what_happened() -> None:
    assert summary_line(Counter(), Counter(), 60) == ""
    assert summary_line(Counter(malformed=0), Counter(announce=0), 60) == ""
    assert summary_line(
        Counter(malformed=10, bad_connection_id=2, queue_full=0), Counter(announce=3), 60
    ) == ("last 60 s: dropped 12 (bad_connection_id 2, malformed 10); refused 3 (announce 3)")


def test_startup_progress_reports_rate_and_time_left(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = iter([100.0, 101.0, 102.0, 106.0])
    monkeypatch.setattr("udpt.observe.time.monotonic", lambda: next(times))
    progress = StartupProgress(last_seq=1_000_000, every_s=2.0)
    with caplog.at_level(logging.INFO, logger="udpt.observe"):
        progress(100_000)  # starts the clock
        progress(200_000)  # too soon for a line
        progress(300_000)
        progress(400_000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "replaying the log: 300000 events replayed, at seq 300000 of 1000000, "
        "100000 events/s, about 7 s left",
        "replaying the log: 400000 events replayed, at seq 400000 of 1000000, "
        "50000 events/s, about 12 s left",
    ]


# -- reload ------------------------------------------------------------------------------


def test_changed_keys_are_named_by_their_dotted_path() -> None:
    old = Config()
    new = replace(
        old,
        log_level=LogLevel.DEBUG,
        log_format=LogFormat.JSON,
        udp=replace(UdpConfig(), announce_interval=60),
        http=HttpConfig(access_tokens={"a": "x"}),
        warnings=("ignored: not a key",),
    )
    assert changed_keys(old, new) == [
        "log_level",
        "log_format",
        "udp.announce_interval",
        "http.access_tokens",
    ]
    assert changed_keys(old, replace(old, http=None)) == ["http"]


# -- peers and health --------------------------------------------------------------------


async def test_the_census_counts_peers_by_family_and_role_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("udpt.observe.CENSUS_SLICE", 3)
    state = TrackerState()
    seq = 0
    for n in range(10):
        for ip, left in ((b"\x0a\0\0" + bytes([n]), 0), (b"\x20\x01" + bytes(13) + bytes([n]), 5)):
            seq += 1
            state.apply(
                seq,
                AnnounceAccepted(
                    seq, bytes([n]) * 20, ip, 6881, b"p" * 20, 0, AnnounceEvent.NONE, 0, 0, left
                ),
            )
    census = PeerCensus(state.torrents)
    yields = 0
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        nonlocal yields
        yields += 1
        await real_sleep(delay)

    monkeypatch.setattr("udpt.observe.asyncio.sleep", counting_sleep)
    await census.count()
    assert census.counts == {
        ("4", "seeder"): 10,
        ("4", "leecher"): 0,
        ("6", "seeder"): 0,
        ("6", "leecher"): 10,
    }
    assert yields == 3  # 10 torrents in slices of 3: yields after the first three


async def test_health_follows_the_writer_until_a_commit_succeeds(tmp_path: Path) -> None:
    with EventLog(tmp_path / "log") as event_log:
        writer = GroupCommitWriter(
            event_log, lambda *committed: None, lambda *failed: None, linger_s=0
        )
        watch = CommitWatch(writer)
        probe = LoopLagProbe()
        assert assess(probe, watch, 0.0).ok
        writer._failure = OSError(28, "No space left on device")  # as _fail() leaves it
        verdict = assess(probe, watch, 1.0)
        assert not verdict.ok and not verdict.committing
        assert verdict.reason == "log not committing: [Errno 28] No space left on device"
        writer._failure = None  # the writer takes events again: not yet proof of a commit
        assert not assess(probe, watch, 2.0).ok
        writer.submit(PeersExpired(1, 0, 0))
        await writer.drain()
        assert assess(probe, watch, 3.0).ok
        await writer.close()


async def test_a_blocked_loop_makes_health_report_lag() -> None:
    probe = LoopLagProbe(interval_s=0.01)
    task = asyncio.create_task(probe.run())
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    assert probe.worst_recent(loop.time()) < 0.5
    blocked_until = loop.time() + 1.2
    while loop.time() < blocked_until:  # work that never yields
        pass
    assert probe.worst_recent(loop.time()) > 1.0
    task.cancel()
