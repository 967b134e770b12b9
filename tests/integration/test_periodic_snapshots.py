"""A running daemon's periodic snapshots (forked from its live state) equal the fold of its log."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from tests.support.bep15 import TrackerClient
from tests.support.daemon import make_config, running_tracker
from udpt.config import load_config
from udpt.daemon import SNAPSHOT_FILE
from udpt.history import recover

HASHES = [bytes([n]) * 20 for n in range(1, 6)]


async def test_every_snapshot_the_daemon_stores_is_the_fold_of_the_log_at_its_seq(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db"
    log_config = dataclasses.replace(load_config(None).log, snapshot_interval=1)
    async with running_tracker(make_config(db, log=log_config)) as running:
        async with await TrackerClient.open(running.udp_addresses[0]) as client:
            await client.connect()
            for round_ in range(2):
                for n, info_hash in enumerate(HASHES):
                    for port in range(6881, 6881 + 10 * n):
                        await client.announce(info_hash, port=port, left=(port + round_) % 2)
                served = running.state.last_seq
                deadline = time.monotonic() + 30
                while max(running.event_log.snapshot_seqs(), default=0) < served:
                    assert time.monotonic() < deadline, f"no snapshot reached seq {served}"
                    await asyncio.sleep(0.05)
        log = running.event_log
        for seq in log.snapshot_seqs():
            folded, _ = recover(log, seq, use_snapshots=False)
            assert log.get_snapshot(seq) == folded.snapshot(), f"snapshot {seq}"
    assert not (db / SNAPSHOT_FILE).exists()
