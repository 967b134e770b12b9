"""The group-commit writer: replies after commit, in log order, with few fsyncs."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest

from udpt.events.log import EventLog
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    Event,
    PeersExpired,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentUnflagged,
)
from udpt.events.writer import GroupCommitWriter, WriterClosed
from udpt.projections import TrackerState

HASHES = [bytes([n]) * 20 for n in range(1, 4)]


def history(count: int, seed: int = 1) -> list[Event]:
    """A reproducible mix of announces, admin changes and expiries on a few torrents."""
    rng = Random(seed)
    events: list[Event] = []
    for n in range(count):
        at_ms = 1_000_000 + 10 * n
        info_hash = rng.choice(HASHES)
        roll = rng.random()
        if roll < 0.05:
            events.append(PeersExpired(at_ms, at_ms - 200, at_ms - 400))
        elif roll < 0.10:
            kind = rng.choice([TorrentAdded, TorrentFlagged, TorrentUnflagged, TorrentDropped])
            events.append(kind(at_ms, info_hash, "admin"))
        else:
            ip = bytes([10, 0, 0, rng.randrange(1, 6)])
            event = rng.choice(list(AnnounceEvent))
            left = rng.choice([0, 500])
            peer_id = bytes(20)
            events.append(
                AnnounceAccepted(at_ms, info_hash, ip, 6881, peer_id, 0, event, 0, 0, left)
            )
    return events


def replay(event_log: EventLog) -> TrackerState:
    state = TrackerState()
    state.apply_all(event_log.events())
    return state


async def test_callbacks_run_after_commit_and_apply_in_seq_order(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply, max_batch=7)
    observed: list[tuple[int, bool, bool]] = []

    def on_committed(seq: int) -> None:
        observed.append((seq, tmp_log.last_seq() >= seq, state.last_seq >= seq))

    events = history(100)
    for event in events:
        assert writer.submit(event, on_committed)
    await writer.close()
    assert observed == [(seq, True, True) for seq in range(1, 101)]
    assert writer.batches >= 100 // 7


async def test_the_applied_state_is_a_replay_of_the_log(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply, max_batch=50)
    events = history(600)
    for start in range(0, len(events), 40):
        for event in events[start : start + 40]:
            writer.submit(event)
        await asyncio.sleep(0)  # let commits interleave with submissions
    await writer.close()
    assert tmp_log.count() == len(events)
    assert replay(tmp_log).snapshot() == state.snapshot()


async def test_many_concurrent_appends_share_few_commits(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply)
    events = history(500)
    seqs = await asyncio.gather(*(writer.append(event) for event in events))
    await writer.close()
    assert sorted(seqs) == list(range(1, 501))
    assert [event for _, event in tmp_log.events()] == [events[seq - 1] for seq in range(1, 501)]
    assert writer.committed == 500
    assert writer.batches * 10 <= 500


async def test_append_returns_the_seq_and_continues_an_existing_log(tmp_log: EventLog) -> None:
    tmp_log.append_events(history(5))
    state = replay(tmp_log)
    writer = GroupCommitWriter(tmp_log, state.apply)
    first, second = history(2, seed=2)
    assert await writer.append(first) == 6
    assert await writer.append(second) == 7
    assert writer.last_committed_seq == 7
    await writer.close()
    assert [event for _, event in tmp_log.events(6)] == [first, second]


async def test_a_full_writer_refuses_instead_of_queueing(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply, max_pending=10)
    events = history(12)
    assert all(writer.submit(event) for event in events[:10])
    assert not writer.submit(events[10])
    with pytest.raises(WriterClosed):
        await writer.append(events[10])
    assert writer.pending == 10
    await writer.drain()
    assert await writer.append(events[11]) == 11
    await writer.close()
    assert [event for _, event in tmp_log.events()] == [*events[:10], events[11]]


async def test_close_commits_everything_pending_then_refuses(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply, linger_s=0.05)
    acknowledged: list[int] = []
    for event in history(100):
        writer.submit(event, acknowledged.append)
    await writer.close()
    assert acknowledged == list(range(1, 101))
    assert tmp_log.count() == 100
    assert state.last_seq == 100
    assert not writer.submit(history(1)[0])
    with pytest.raises(WriterClosed):
        await writer.append(history(1)[0])


async def test_a_failed_commit_acknowledges_nothing_and_stops_the_writer(
    tmp_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer took seq 1 behind our back: our batch cannot be appended."""
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply)
    intruder, *ours = history(4)
    tmp_log.append_events([intruder])
    acknowledged: list[int] = []
    for event in ours:
        writer.submit(event, acknowledged.append)
    with caplog.at_level(logging.ERROR), pytest.raises(WriterClosed):
        await writer.append(ours[0])
    assert acknowledged == [0, 0, 0]
    assert state.last_seq == 0
    assert not writer.submit(ours[0])
    assert [event for _, event in tmp_log.events()] == [intruder]
    await writer.close()


async def test_an_event_the_codec_cannot_record_is_refused_alone(tmp_log: EventLog) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply)
    with pytest.raises(ValueError):
        writer.submit(TorrentAdded(1, HASHES[0], "x" * 256))
    assert writer.pending == 0
    assert await writer.append(TorrentAdded(2, HASHES[0], "admin")) == 1
    await writer.close()


async def test_a_failing_callback_does_not_stop_the_others(
    tmp_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    state = TrackerState()
    writer = GroupCommitWriter(tmp_log, state.apply)
    acknowledged: list[int] = []

    def broken(seq: int) -> None:
        raise RuntimeError("reply failed")

    events = history(3)
    writer.submit(events[0], acknowledged.append)
    writer.submit(events[1], broken)
    writer.submit(events[2], acknowledged.append)
    with caplog.at_level(logging.ERROR):
        await writer.close()
    assert acknowledged == [1, 3]
    assert "reply callback for event 2 failed" in caplog.text
    assert state.last_seq == 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs), to fill up; needs root, as CI has."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_full_disk_refuses_events_until_space_is_freed(small_disk: Path) -> None:
    filler = small_disk / "filler"
    with EventLog(small_disk / "log", map_size=4 << 20) as event_log:
        state = TrackerState()
        writer = GroupCommitWriter(event_log, state.apply, linger_s=0, retry_after_s=0.05)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(bytes(free - 16_384))
        outcomes: list[int] = []
        for event in history(2_000):
            if not writer.submit(event, outcomes.append):
                break
            await writer.drain()
        assert 0 in outcomes  # a commit failed: those events were not acknowledged
        assert not writer.submit(history(1)[0])  # and new ones are refused meanwhile

        filler.unlink()
        deadline = asyncio.get_running_loop().time() + 10
        while not writer.submit(history(1)[0]):
            assert asyncio.get_running_loop().time() < deadline, "the writer never resumed"
            await asyncio.sleep(0.01)
        await writer.drain()
        assert await writer.append(history(2)[1]) == state.last_seq
        assert replay(event_log).snapshot() == state.snapshot()
        await writer.close()
