"""``tools/replay.py`` on a pruned log: the horizon is visible; the archive gives it all back."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.test_replay_tool import (
    HASH_A,
    HISTORY,
    IP1,
    TRANSMISSION,
    announce,
    at,
    run_json,
)
from udpt.events.archive import Archive
from udpt.events.log import EventLog
from udpt.events.maintenance import LogMaintenance
from udpt.events.types import AnnounceEvent, Event
from udpt.history.recovery import take_snapshot

TAIL: list[Event] = [
    announce(20 + n, HASH_A, IP1, 7000 + n, TRANSMISSION, AnnounceEvent.NONE, n) for n in range(30)
]
EVENTS = HISTORY + TAIL  # the flag by alice is event 9


@pytest.fixture
def pruned(tmp_path: Path) -> tuple[Path, Path]:
    """A log pruned up to event 30 (a snapshot at 30), its archive holding 1..30."""
    db, archive = tmp_path / "log", tmp_path / "archive"
    with EventLog(db, sync=False) as log:
        for start in range(0, len(EVENTS), 5):
            log.append_events(EVENTS[start : start + 5])
        take_snapshot(log, 30)
        LogMaintenance(log, retention_ms=1, archive=Archive(archive)).run(now_ms=at(60))
        assert (log.first_seq(), log.pruned_to()) == (31, 30)
    return db, archive


def test_the_summary_names_the_horizon_and_the_archive_restores_the_whole_history(
    pruned: tuple[Path, Path], tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    db, archive = pruned
    live = run_json(tool, capsys, db)
    assert (live["first_seq"], live["last_seq"]) == (31, len(EVENTS))
    assert live["first_time"] == "2026-11-29T14:37:00.000Z"
    whole = run_json(tool, capsys, db, "--archive", archive, "--no-snapshot")
    assert (whole["first_seq"], whole["events"], whole["last_seq"]) == (1, 43, 43)
    assert whole["first_time"] == "2026-11-29T14:00:00.000Z"
    assert {k: v for k, v in whole.items() if k in ("seeders", "leechers", "torrents")} == {
        k: v for k, v in live.items() if k in ("seeders", "leechers", "torrents")
    }
    assert run_json(tool, capsys, db, "--archive", archive, "--verify")["ok"] is True
    alone = run_json(tool, capsys, db, "--verify")
    assert (alone["ok"], alone["from_snapshot"]) == (True, 30)  # checks what it holds


def test_a_point_before_the_horizon_is_a_one_line_error_unless_the_archive_is_read(
    pruned: tuple[Path, Path], tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    db, archive = pruned
    for until in ("12", "2026-11-29T14:05"):
        assert tool.main([str(db), "--until", until]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1
        assert "before the log's horizon: its history starts at event 31" in error
        assert "--archive" in error
    assert run_json(tool, capsys, db, "--archive", archive, "--until", "12")["last_seq"] == 12
    assert run_json(tool, capsys, db, "--until", "35")["last_seq"] == 35


def test_the_torrent_history_of_the_live_log_still_says_who_flagged_it(
    pruned: tuple[Path, Path], tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    db, archive = pruned
    history = run_json(tool, capsys, db, "--torrent", HASH_A.hex())
    kinds = [(entry["seq"], entry["type"], entry.get("actor")) for entry in history["history"]]
    assert (9, "TorrentFlagged", "alice") in kinds
    assert (11, "TorrentUnflagged", "alice") in kinds
    assert history["complete"] is False
    whole = run_json(tool, capsys, db, "--archive", archive, "--torrent", HASH_A.hex())
    assert whole["complete"] is True
    assert whole["torrent"] == history["torrent"]


def test_export_with_the_archive_gives_every_event_once(
    pruned: tuple[Path, Path], tool: ModuleType, tmp_path: Path
) -> None:
    db, archive = pruned
    out = tmp_path / "all.jsonl"
    assert tool.main([str(db), "--archive", str(archive), "--export", str(out)]) == 0
    assert len(out.read_bytes().splitlines()) == len(EVENTS)
    assert tool.main([str(db), "--rebuild"]) == 2  # would need the pruned events
