"""A real daemon with a tiny retention: it prunes into its archive, and nothing visible is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.test_replay_tool import HASH_A, HASH_B, START, run_json
from tests.support.bep15 import TrackerClient
from tests.support.daemon import make_config, record, running_tracker
from udpt.clock import ManualClock
from udpt.config import Config
from udpt.events.types import TorrentFlagged


def retention_config(db: Path, archive: Path) -> Config:
    config = make_config(db)
    log = dataclasses.replace(
        config.log, retention=2, snapshot_interval=1, archive_dir=str(archive)
    )
    return dataclasses.replace(config, log=log)


async def test_a_daemon_prunes_into_its_archive_and_keeps_flags_and_swarms_across_a_restart(
    tmp_path: Path,
    tool: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, archive = tmp_path / "db", tmp_path / "archive"
    config = retention_config(db, archive)
    clock = ManualClock(START.timestamp())
    async with running_tracker(config, clock=clock) as running:
        address = running.udp_addresses[0]
        async with await TrackerClient.open(address) as client:
            await client.connect()
            for port in range(6881, 6891):
                await client.announce(HASH_A, port=port, left=1000)
            await record(running, TorrentFlagged(int(clock() * 1000), HASH_B, "alice"))
            clock.advance(10)  # everything so far is past the retention
            await client.connect()
            await client.announce(HASH_A, port=6881, left=0)
        deadline = time.monotonic() + 30
        while running.event_log.pruned_to() == 0:  # a snapshot, then the maintenance
            assert time.monotonic() < deadline, "nothing was pruned within 30 s"
            await asyncio.sleep(0.05)
        peers = len(running.state.torrents[HASH_A].swarm)

    live = run_json(tool, capsys, db)
    assert live["first_seq"] > 1
    whole = run_json(tool, capsys, db, "--archive", archive)
    assert whole["first_seq"] == 1
    assert whole["events"] == whole["last_seq"] == live["last_seq"]
    assert tool.main([str(db), "--archive", str(archive), "--verify"]) == 0
    capsys.readouterr()
    assert tool.main([str(db), "--torrent", HASH_B.hex()]) == 0
    flag = [line for line in capsys.readouterr().out.splitlines() if "TorrentFlagged" in line]
    assert len(flag) == 1 and flag[0].endswith("by 'alice'")

    async with running_tracker(config, clock=clock) as restarted:
        assert restarted.state.torrents[HASH_B].flagged
        assert len(restarted.state.torrents[HASH_A].swarm) == peers == 10
