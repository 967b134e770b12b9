"""``tools/replay.py``: audit and recovery of an event log, as an operator runs it.

The tool's logic (``udpt.history``) and its ``main()`` run in-process on real
LMDB logs; a few cases run it as a real process, as a user does: on the log of
a running daemon, and for the exit status of a failed verification.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import lmdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import EVENT_STRATEGIES, tracker_histories
from tests.support.bep15 import TrackerClient
from tests.support.daemon import make_config, record, running_tracker
from udpt.clock import ManualClock
from udpt.events import log as event_log_module
from udpt.events.log import EventLog
from udpt.events.types import (
    EVENT_TYPES,
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)
from udpt.history.json_lines import event_from_json, event_to_json
from udpt.history.points import seq_at_time
from udpt.history.recovery import replay, take_snapshot
from udpt.history.torrent_history import torrent_history
from udpt.history.verification import verify
from udpt.projections import TrackerState
from udpt.projections.torrents import Torrent

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "replay.py"

START = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)

HASH_A = bytes.fromhex("aa" * 20)
HASH_B = bytes.fromhex("bb" * 20)
HASH_C = bytes.fromhex("cc" * 20)
IP1 = bytes([192, 0, 2, 1])
IP2 = bytes.fromhex("20010db8000000000000000000000002")
TRANSMISSION = b"-TR4050-000000000001"
QBITTORRENT = b"-qB4630-000000000002"


def at(minute: int) -> int:
    """Milliseconds of 2026-11-29T14:MM:00Z."""
    return START_MS + minute * 60_000


def announce(
    minute: int,
    info_hash: bytes,
    ip: bytes,
    port: int,
    peer_id: bytes,
    event: AnnounceEvent,
    left: int,
) -> AnnounceAccepted:
    return AnnounceAccepted(at(minute), info_hash, ip, port, peer_id, 7, event, 0, 0, left)


# Every kind of event, on three torrents; the comments give the state it leaves.
HISTORY: list[Event] = [
    TorrentAdded(at(0), HASH_A, "bob"),  # 1
    announce(1, HASH_A, IP1, 6881, TRANSMISSION, AnnounceEvent.STARTED, 1000),  # 2 leecher
    announce(2, HASH_A, IP2, 51413, QBITTORRENT, AnnounceEvent.STARTED, 0),  # 3 seeder
    announce(3, HASH_B, IP1, 6882, TRANSMISSION, AnnounceEvent.STARTED, 5),  # 4
    announce(4, HASH_A, IP1, 6881, TRANSMISSION, AnnounceEvent.COMPLETED, 0),  # 5 completed
    AnnounceRefused(at(6), HASH_C, IP1, 6883, TRANSMISSION, RefusalReason.NOT_REGISTERED),  # 6
    TorrentImported(at(7), HASH_C, True, 12, "import"),  # 7
    PeersExpired(at(8), at(3), 0),  # 8: the qBittorrent seeder (last seen 14:02) goes
    TorrentFlagged(at(10), HASH_A, "alice"),  # 9: A's swarm is cleared
    AnnounceRefused(at(11), HASH_A, IP1, 6881, TRANSMISSION, RefusalReason.FLAGGED),  # 10
    TorrentUnflagged(at(12), HASH_A, "alice"),  # 11
    TorrentDropped(at(13), HASH_B, "carol"),  # 12
    announce(14, HASH_A, IP2, 51413, QBITTORRENT, AnnounceEvent.STARTED, 0),  # 13
]


def write_log(path: Path, events: Sequence[Event], snapshots: Sequence[int] = ()) -> Path:
    """A log holding ``events``, with snapshots taken at the given sequence numbers.

    One batch per event, so that damage tests can remove or overwrite one event's value.
    """
    with EventLog(path, sync=False) as log:
        for event in events:
            log.append_events([event])
        for seq in snapshots:
            take_snapshot(log, seq)
    return path


@pytest.fixture
def history_log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "log", HISTORY, snapshots=(5, 9))


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The tool in its own process, as ``python tools/replay.py ...`` from the repository root."""
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        cwd=REPO,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_json(
    tool: ModuleType, capsys: pytest.CaptureFixture[str], *args: str | Path, status: int = 0
) -> dict:
    """``main(args + --json)`` in-process: checks the exit status, returns the parsed output."""
    assert tool.main([*map(str, args), "--json"]) == status
    return orjson.loads(capsys.readouterr().out)


def state_at(path: Path, seq: int) -> TrackerState:
    with EventLog(path, readonly=True) as log:
        return replay(log, seq, use_snapshots=False).state


def snapshot_fields(torrent: Torrent) -> tuple[object, ...]:
    """What a snapshot holds of one torrent: its fields and its peers in table order."""
    swarm = torrent.swarm
    fields = (torrent.flagged, torrent.registered, torrent.completed, torrent.last_announce_ms)
    return (*fields, swarm.counts(), swarm.pack())


def delete_record(path: Path, seq: int) -> None:
    """Remove one event behind the log's back, as a damaged or hand-edited copy would."""
    with lmdb.open(str(path), max_dbs=4) as env:
        events = env.open_db(b"events")
        with env.begin(write=True) as txn:
            assert txn.delete(seq.to_bytes(8, "big"), db=events)


def overwrite_record(path: Path, seq: int, record: bytes) -> None:
    with lmdb.open(str(path), max_dbs=4) as env:
        events = env.open_db(b"events")
        with env.begin(write=True) as txn:
            txn.put(seq.to_bytes(8, "big"), record, db=events)


# -- a log written by the live daemon ------------------------------------------------


async def test_replay_of_a_live_daemons_log_matches_what_the_daemon_reports(
    tmp_path: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db"
    clock = ManualClock(START.timestamp())
    async with running_tracker(make_config(db), clock=clock) as running:
        address = running.udp_addresses[0]
        async with (
            await TrackerClient.open(address) as leecher,
            await TrackerClient.open(address) as seeder,
        ):
            await leecher.connect()
            await seeder.connect()
            await leecher.announce(HASH_A, port=6881, left=1000)
            await seeder.announce(HASH_A, port=6882, left=0)
            await seeder.announce(HASH_B, port=6882, left=0)
            await leecher.announce(HASH_A, port=6881, left=0, event=1)  # completed
            clock.advance(2800)  # past the peer timeout and the cleanup interval
            await seeder.connect()
            await seeder.announce(HASH_B, port=6882, left=0, event=0)  # expiry runs first
        await record(running, TorrentFlagged(at(50), HASH_B, "alice"))
        state = running.state
        assert state.stats.by_kind["PeersExpired"] == 1  # the case covers expiry

        # The tool reads the log of the running daemon from another process.
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TOOL),
            str(db),
            "--json",
            "--no-snapshot",
            cwd=REPO,
            env=tool_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert (child.returncode, err) == (0, b"")  # no progress output: stderr is a pipe
        summary = orjson.loads(out)
        seeders, leechers, completed = state.totals()
        assert summary["last_seq"] == state.last_seq == summary["events"]
        assert (
            summary["torrents"],
            summary["seeders"],
            summary["leechers"],
            summary["completed"],
        ) == (len(state.torrents), seeders, leechers, completed)
        assert summary["events_by_type"] == state.stats.by_kind
        assert summary["flagged"] == 1
        live_bytes = state.snapshot()

    # Once it stops: the rebuild from nothing is byte for byte the daemon's state,
    # on the log and on a copy of it, and the daemon's shutdown snapshot verifies.
    copy = shutil.copytree(db, tmp_path / "copy")
    for path in (db, copy):
        with EventLog(path, readonly=True) as log:
            assert replay(log, use_snapshots=False).state.snapshot() == live_bytes
    assert tool.main([str(copy), "--verify"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")

    assert tool.main([str(db), "--torrent", HASH_B.hex()]) == 0
    flag_line = next(
        line for line in capsys.readouterr().out.splitlines() if "TorrentFlagged" in line
    )
    assert flag_line.startswith("2026-11-29T14:50:00.000Z")
    assert flag_line.endswith("by 'alice'")


async def test_the_daemon_starts_from_a_log_whose_snapshots_were_deleted(tmp_path: Path) -> None:
    db = tmp_path / "db"
    config = make_config(db)
    async with running_tracker(config) as running:
        async with await TrackerClient.open(running.udp_addresses[0]) as client:
            await client.connect()
            await client.announce(HASH_A, port=6881, left=0)
            await client.announce(HASH_A, port=6882, left=10)
        before = running.state.snapshot()
    with EventLog(db) as log:
        assert log.snapshot_seqs()  # the shutdown snapshot
        log.delete_snapshots()

    async with running_tracker(config) as running:
        assert running.state.snapshot() == before
        async with await TrackerClient.open(running.udp_addresses[0]) as client:
            await client.connect()
            reply = await client.scrape(HASH_A)
    assert reply.entries == ((1, 0, 1),)  # seeders, completed, leechers survived the restart


# -- summary and --until ------------------------------------------------------------


def test_summary_reports_counts_times_size_and_replay_speed(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main([str(history_log), "--no-snapshot"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].startswith(f"log          {history_log}  (")
    assert "13 records)" in lines[0]
    assert lines[1] == "first        event 1  2026-11-29T14:00:00.000Z"
    assert lines[2] == "as of        event 13  2026-11-29T14:14:00.000Z"
    assert ["AnnounceAccepted", "5"] in [line.split() for line in lines]
    assert "torrents     2  (1 flagged, 2 registered)" in lines  # A and C; B was dropped
    assert "seeders      1" in lines
    assert lines[-1].startswith("replayed 13 events in ")
    assert lines[-1].endswith(" events/s) from the first event")

    assert tool.main([str(history_log), "--until", "2026-11-29T15:05:30+01:00"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == (
        "as of        event 5  2026-11-29T14:04:00.000Z  "
        "(the last event at or before 2026-11-29T14:05:30.000Z)"
    )
    assert lines[-1].startswith("replayed 0 events in ")
    assert lines[-1].endswith(" events/s) after the snapshot at event 5")


def test_until_a_sequence_number_gives_the_state_after_that_event(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_json(tool, capsys, history_log, "--until", "5")

    assert summary["last_seq"] == 5
    assert summary["last_time"] == "2026-11-29T14:04:00.000Z"
    assert summary["snapshot_seq"] == 5  # the snapshot at 5 served, nothing replayed
    assert (summary["torrents"], summary["seeders"], summary["leechers"], summary["completed"]) == (
        2,
        2,
        1,
        1,
    )
    assert summary["events_by_type"]["AnnounceAccepted"] == 4

    full = run_json(tool, capsys, history_log, "--until", "7", "--no-snapshot")
    assert (full["last_seq"], full["snapshot_seq"], full["replayed"]) == (7, 0, 7)


@pytest.mark.parametrize(
    ("until", "seq"),
    [
        ("2026-11-29T14:05", 5),
        ("2026-11-29T14:05:00Z", 5),
        ("2026-11-29T16:05:00+02:00", 5),
        ("2026-11-29T14:03", 4),  # an event exactly at that time is included
        ("2026-11-29T14:02:59.999", 3),
        ("2026-11-29T13:59", 0),  # before the first event: the empty state
        ("2030-01-01", 13),
    ],
)
def test_until_a_time_gives_the_state_after_the_last_event_at_or_before_it(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str], until: str, seq: int
) -> None:
    summary = run_json(tool, capsys, history_log, "--until", until)

    assert summary["last_seq"] == seq
    seeders, leechers, completed = state_at(history_log, seq).totals()
    assert (summary["seeders"], summary["leechers"], summary["completed"]) == (
        seeders,
        leechers,
        completed,
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.integers(0, 3), min_size=0, max_size=30),
    missing=st.sets(st.integers(1, 30), max_size=5),
    query=st.integers(-1, 70),
)
def test_seq_at_time_finds_the_last_event_at_or_before_a_time_despite_gaps(
    tmp_path_factory: pytest.TempPathFactory, steps: list[int], missing: set[int], query: int
) -> None:
    times = [sum(steps[: i + 1]) for i in range(len(steps))]  # never decreasing, often equal
    path = write_log(tmp_path_factory.mktemp("log"), [PeersExpired(t, 0, 0) for t in times])
    for seq in missing & set(range(1, len(times) + 1)):
        delete_record(path, seq)
    present = [seq for seq in range(1, len(times) + 1) if seq not in missing]

    with EventLog(path, readonly=True) as log:
        found = seq_at_time(log, query)

    assert found == max((seq for seq in present if times[seq - 1] <= query), default=0)


# -- --torrent ------------------------------------------------------------------------


def test_torrent_history_shows_every_event_with_its_time_and_who_flagged_it(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main([str(history_log), "--torrent", HASH_A.hex().upper()]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0] == f"torrent {HASH_A.hex()}, history to event 13"
    history = lines[1:10]
    assert [line.split()[2] for line in history] == [
        "TorrentAdded",
        "AnnounceAccepted",
        "AnnounceAccepted",
        "AnnounceAccepted",
        "PeersExpired",
        "TorrentFlagged",
        "AnnounceRefused",
        "TorrentUnflagged",
        "AnnounceAccepted",
    ]
    assert history[0] == "2026-11-29T14:00:00.000Z           1  TorrentAdded      by 'bob'"
    assert history[1] == (
        "2026-11-29T14:01:00.000Z           2  AnnounceAccepted  192.0.2.1:6881  "
        "-TR4050-000000000001 (Transmission)  started, left 1,000, uploaded 0, downloaded 0"
    )
    assert history[4].endswith("PeersExpired      1 peer not seen since 2026-11-29T14:03:00.000Z")
    assert history[5] == "2026-11-29T14:10:00.000Z           9  TorrentFlagged    by 'alice'"
    assert history[6].endswith("-TR4050-000000000001 (Transmission)  refused: flagged")
    assert lines[10] == "state: registered; 1 seeder, 0 leechers, completed 1"
    assert lines[11:] == [
        "peers (1), most recently seen first:",
        "  [2001:db8::2]:51413      -qB4630-000000000002 (qBittorrent)  seeder   "
        "last seen 2026-11-29T14:14:00.000Z  left 0",
    ]


def test_torrent_until_a_time_lists_who_was_in_the_swarm_then(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        tool.main(
            [str(history_log), "--torrent", HASH_A.hex(), "--until", "2026-11-29T14:05", "--json"]
        )
        == 0
    )
    report = orjson.loads(capsys.readouterr().out)

    assert report["as_of_seq"] == 5
    assert [entry["seq"] for entry in report["history"]] == [1, 2, 3, 5]
    assert report["history"][0] == {
        "seq": 1,
        "type": "TorrentAdded",
        "at_ms": at(0),
        "info_hash": HASH_A.hex(),
        "actor": "bob",
        "time": "2026-11-29T14:00:00.000Z",
    }
    assert report["torrent"] == {
        "flagged": False,
        "registered": True,
        "completed": 1,
        "seeders": 2,
        "leechers": 0,
    }
    assert [
        (p["address"], bytes.fromhex(p["peer_id"]), p["client"], p["seeder"], p["last_seen"])
        for p in report["peers"]
    ] == [
        ("192.0.2.1:6881", TRANSMISSION, "Transmission", True, "2026-11-29T14:04:00.000Z"),
        ("[2001:db8::2]:51413", QBITTORRENT, "qBittorrent", True, "2026-11-29T14:02:00.000Z"),
    ]


def test_torrent_that_was_dropped_shows_who_dropped_it_and_no_state(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main([str(history_log), "--torrent", HASH_B.hex()]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[-2].endswith("TorrentDropped    by 'carol'")
    assert lines[-1].startswith("state: not tracked")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=tracker_histories(max_events=40), data=st.data())
def test_one_torrents_history_ends_in_the_same_state_as_a_full_replay(
    tmp_path_factory: pytest.TempPathFactory, history: list[Event], data: st.DataObject
) -> None:
    path = write_log(tmp_path_factory.mktemp("log"), history)
    hashes = sorted({e.info_hash for e in history if hasattr(e, "info_hash")}) or [HASH_A]
    info_hash = data.draw(st.sampled_from(hashes))
    to_seq = data.draw(st.integers(0, len(history)))

    with EventLog(path, readonly=True) as log:
        result = torrent_history(log, info_hash, to_seq)
    full = state_at(path, to_seq).torrents.get(info_hash)

    assert (result.torrent is None) == (full is None)
    if full is not None and result.torrent is not None:
        assert snapshot_fields(result.torrent) == snapshot_fields(full)
    assert [entry.seq for entry in result.entries if type(entry.event) is not PeersExpired] == [
        seq
        for seq, e in enumerate(history[:to_seq], 1)
        if getattr(e, "info_hash", None) == info_hash
    ]


def test_torrent_history_of_a_log_with_a_missing_event_says_so_and_still_gives_the_state(
    history_log: Path,
) -> None:
    delete_record(history_log, 12)  # the drop of B: B is still tracked after all

    with EventLog(history_log, readonly=True) as log:
        result = torrent_history(log, HASH_B)

    assert not result.complete
    assert result.torrent is not None and result.torrent.swarm.leechers == 1


# -- --verify ---------------------------------------------------------------------------


def test_verify_passes_a_sound_log_and_checks_every_snapshot(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main([str(history_log), "--verify"]) == 0
    assert capsys.readouterr().out == "OK: 13 events (to event 13) and 2 snapshots verified\n"


def test_verify_names_a_snapshot_that_differs_from_the_log(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventLog(history_log) as log:
        damaged = TrackerState.restore(log.get_snapshot(9) or b"")
        damaged.torrents[HASH_C].completed = 13
        log.put_snapshot(9, damaged.snapshot())

    assert tool.main([str(history_log), "--verify"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"FAILED at event 9: snapshot at seq 9 differs from the replay: torrent "
        f"{HASH_C.hex()}: completed is 13 in the snapshot, 12 in the log"
    )


def test_verify_names_a_snapshot_that_cannot_be_restored(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventLog(history_log) as log:
        log.put_snapshot(5, (log.get_snapshot(5) or b"")[:-3])

    report = run_json(tool, capsys, history_log, "--verify", status=1)

    assert (report["ok"], report["first_problem_seq"]) == (False, 5)
    assert report["problems"][0]["message"].startswith(
        "snapshot at seq 5 differs from the replay: it cannot be restored"
    )


def test_verify_exits_1_naming_the_first_missing_event(history_log: Path) -> None:
    delete_record(history_log, 4)
    delete_record(history_log, 5)  # the event of a snapshot

    result = run_tool(history_log, "--verify")

    assert result.returncode == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "FAILED at event 4: events 4..5 are missing"
    assert "           5  snapshot at seq 5, but event 5 is missing" in lines


def test_verify_stops_at_a_record_it_cannot_decode(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    overwrite_record(history_log, 7, b"\xee garbage")

    assert tool.main([str(history_log), "--verify"]) == 1
    assert capsys.readouterr().out.startswith(
        "FAILED at event 7: event 7 cannot be decoded (unknown record type 0xee)"
    )
    for args in (["--no-snapshot"], ["--until", "2026-11-29T14:07"], ["--export", "-"]):
        assert tool.main([str(history_log), *args]) == 1, args  # no mode gets past it
        assert capsys.readouterr().err == (
            "replay: event 7 cannot be decoded: unknown record type 0xee; "
            "--verify lists every problem\n"
        )


def test_verify_reports_a_clock_that_went_backwards(
    tmp_path: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = write_log(tmp_path / "log", [PeersExpired(at(5), 0, 0), PeersExpired(at(4), 0, 0)])

    assert tool.main([str(log_path), "--verify"]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        "FAILED at event 2: event 2 at 2026-11-29T14:04:00.000Z is earlier than event 1 at "
        "2026-11-29T14:05:00.000Z"
    )


# -- --export -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda kind: kind.__name__)
@settings(max_examples=50, deadline=None)
@given(data=st.data(), seq=st.integers(1, (1 << 64) - 1))
def test_every_field_of_every_event_type_survives_a_json_round_trip(
    kind: type, data: st.DataObject, seq: int
) -> None:
    event = data.draw(EVENT_STRATEGIES[kind])

    line = orjson.dumps(event_to_json(seq, event))

    assert event_from_json(orjson.loads(line)) == (seq, event)


def test_export_writes_one_json_line_per_event_that_reads_back_into_the_log(
    history_log: Path, tool: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"

    assert tool.main([str(history_log), "--export", str(out)]) == 0

    lines = out.read_bytes().splitlines()
    assert orjson.loads(lines[1]) == {
        "seq": 2,
        "type": "AnnounceAccepted",
        "at_ms": at(1),
        "info_hash": HASH_A.hex(),
        "ip": "192.0.2.1",
        "port": 6881,
        "peer_id": TRANSMISSION.hex(),
        "key": 7,
        "event": "started",
        "uploaded": 0,
        "downloaded": 0,
        "left": 1000,
    }
    assert [event_from_json(orjson.loads(line)) for line in lines] == list(enumerate(HISTORY, 1))


def test_export_to_stdout_of_one_torrent_until_a_point(
    history_log: Path, tool: ModuleType, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert (
        tool.main([str(history_log), "--export", "-", "--torrent", HASH_C.hex(), "--until", "10"])
        == 0
    )

    exported = [
        event_from_json(orjson.loads(line)) for line in capsysbinary.readouterr().out.splitlines()
    ]
    assert exported == [(6, HISTORY[5]), (7, HISTORY[6])]


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"seq": 1, "type": "TorrentLost", "at_ms": 0}, "unknown event type 'TorrentLost'"),
        (
            {"seq": 1, "type": "TorrentAdded", "at_ms": 0, "info_hash": "aa" * 20},
            "TorrentAdded needs the field 'actor'",
        ),
        (
            {
                "seq": 1,
                "type": "TorrentAdded",
                "at_ms": 0,
                "info_hash": "aa" * 20,
                "actor": "x",
                "color": "red",
            },
            "TorrentAdded has no field 'color'",
        ),
        (
            {"seq": 1, "type": "TorrentAdded", "at_ms": "0", "info_hash": "aa" * 20, "actor": "x"},
            "TorrentAdded.at_ms: bad value '0'",
        ),
        (
            {"seq": 1, "type": "TorrentAdded", "at_ms": 0, "info_hash": "aa" * 19, "actor": "x"},
            "info_hash and peer_id must be 20 bytes",
        ),
        (
            {
                "seq": True,
                "type": "PeersExpired",
                "at_ms": 0,
                "peer_cutoff_ms": 0,
                "torrent_cutoff_ms": 0,
            },
            "seq: expected an integer",
        ),
    ],
)
def test_a_line_that_no_event_exports_to_is_refused(obj: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        event_from_json(obj)


def test_long_scans_read_in_chunks_that_join_without_losing_or_repeating_an_event(
    history_log: Path, tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delete_record(history_log, 6)  # a gap that falls inside a chunk
    delete_record(history_log, 9)  # and one at the start of a chunk
    monkeypatch.setattr(event_log_module, "READ_CHUNK_ENTRIES", 3)
    out = tmp_path / "events.jsonl"

    assert tool.main([str(history_log), "--export", str(out)]) == 0

    exported = [event_from_json(orjson.loads(line)) for line in out.read_bytes().splitlines()]
    assert exported == [(seq, e) for seq, e in enumerate(HISTORY, 1) if seq not in (6, 9)]
    with EventLog(history_log, readonly=True) as log:
        assert [p.seq for p in verify(log).problems] == [6, 9, 9]


# -- --rebuild --------------------------------------------------------------------------


def test_rebuild_replaces_a_lost_snapshot_with_one_computed_from_the_log(
    history_log: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with EventLog(history_log) as log:
        log.delete_snapshots()

    assert tool.main([str(history_log), "--rebuild"]) == 0

    assert capsys.readouterr().out.startswith("wrote a snapshot at event 13 (")
    expected = state_at(history_log, 13).snapshot()
    with EventLog(history_log, readonly=True) as log:
        assert log.snapshot_seqs() == [13]
        assert log.get_snapshot(13) == expected
    summary = run_json(tool, capsys, history_log)
    assert (summary["snapshot_seq"], summary["replayed"]) == (13, 0)


# -- the command line ---------------------------------------------------------------


def test_help_explains_every_option_with_an_example(tool: ModuleType) -> None:
    text = tool.build_parser().format_help()

    for option in (
        "--until",
        "--torrent",
        "--json",
        "--no-snapshot",
        "--verify",
        "--export",
        "--rebuild",
    ):
        action = next(a for a in tool.build_parser()._actions if option in a.option_strings)
        assert "e.g. " in action.help, option
    assert "A time without an offset is UTC." in text
    for kind in EVENT_TYPES:
        assert f"{kind.__name__:<18}{' '.join(kind._fields)}" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--until", "yesterday"], "'yesterday' is neither a sequence number nor an ISO time"),
        (["--torrent", "abc"], "an info hash is 40 hex digits, got 3"),
        (["--verify", "--until", "3"], "--verify checks the whole log"),
        (["--verify", "--rebuild"], "not allowed with argument"),
        (["--export", "-", "--json"], "--export always writes JSON lines"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    history_log: Path,
    tool: ModuleType,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(history_log), *args])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_directory_without_a_log_exits_2_and_creates_nothing(
    tmp_path: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in ([], ["--rebuild"]):
        assert tool.main([str(tmp_path / "nothing"), *args]) == 2
        assert capsys.readouterr().err == (
            f"replay: {tmp_path / 'nothing'}: no udpt log here (no data.mdb)\n"
        )
    assert not (tmp_path / "nothing").exists()
