"""The road to the log: intake + group-commit writer.

Answers come after commit and apply, in log order, with few fsyncs; a lost
commit acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from random import Random
from typing import Any

import pytest

from tests.support.disks import small_tmpfs
from tests.support.unfoldable import refuse_torrents_of
from udpt.config import load_config
from udpt.connection_ids import ConnectionIds
from udpt.counters import Counters
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
from udpt.events.writer import GroupCommitWriter
from udpt.history.apply import ApplyFailures
from udpt.intake import Intake, NotRecorded, NotRecordedError
from udpt.projections import TrackerState
from udpt.tracker import Commit, Policy, Tracker
from udpt.wire import AnnounceRequest

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


class Road:
    """An intake and its writer over ``event_log``, answering each event with its seq."""

    def __init__(self, event_log: EventLog, **writer_options: Any) -> None:
        self.state = replay(event_log)
        # Sweeps are left out: these tests count the events they submit.
        policy = replace(Policy.from_config(load_config(None)), sweep_interval_ms=1 << 60)
        tracker = Tracker(self.state, ConnectionIds(b"k" * 32), policy)
        self.intake = Intake(self.state, tracker, Counters())
        self.writer = GroupCommitWriter(
            event_log, self.intake.committed, self.intake.failed, **writer_options
        )
        self.intake.attach(self.writer)

    def _seq(self, context: object) -> int:
        return self.state.last_seq

    def submit(self, event: Event, outcomes: list[object] | None = None) -> bool:
        """Queue ``event``; its seq (or its ``NotRecorded``) lands in ``outcomes``."""
        commit = Commit(event, self._seq, None)
        return self.intake.submit(commit, _collect, outcomes) is None

    async def append(self, event: Event) -> int:
        result: int = await self.intake.record(Commit(event, self._seq, None))
        return result


def _collect(outcomes: list[object] | None, outcome: object) -> None:
    if outcomes is not None:
        outcomes.append(outcome)


LOST = NotRecorded("commit_failed", "")


def lost(outcomes: list[object]) -> list[object]:
    """``outcomes`` with every NotRecorded shown as LOST (their details vary)."""
    return [LOST if type(o) is NotRecorded else o for o in outcomes]


async def test_callbacks_run_after_commit_and_apply_in_seq_order(tmp_log: EventLog) -> None:
    road = Road(tmp_log, max_batch=7)
    observed: list[tuple[int, bool]] = []

    def on_applied(context: object) -> None:
        seq = road.state.last_seq
        observed.append((seq, tmp_log.last_seq() >= seq))

    events = history(100)
    for event in events:
        assert road.intake.submit(Commit(event, on_applied, None), _collect, None) is None
    await road.writer.close()
    assert observed == [(seq, True) for seq in range(1, 101)]
    assert road.writer.batches >= 100 // 7


async def test_the_applied_state_is_a_replay_of_the_log(tmp_log: EventLog) -> None:
    road = Road(tmp_log, max_batch=50)
    events = history(600)
    for start in range(0, len(events), 40):
        for event in events[start : start + 40]:
            road.submit(event)
        await asyncio.sleep(0)  # let commits interleave with submissions
    await road.writer.close()
    assert tmp_log.count() == len(events)
    assert replay(tmp_log).snapshot() == road.state.snapshot()


async def test_many_concurrent_appends_share_few_commits(tmp_log: EventLog) -> None:
    road = Road(tmp_log)
    writer = road.writer
    events = history(500)
    seqs = await asyncio.gather(*(road.append(event) for event in events))
    await writer.close()
    assert sorted(seqs) == list(range(1, 501))
    assert [event for _, event in tmp_log.events()] == [events[seq - 1] for seq in range(1, 501)]
    assert writer.committed == 500
    assert writer.batches * 10 <= 500


async def test_append_returns_the_seq_and_continues_an_existing_log(tmp_log: EventLog) -> None:
    tmp_log.append_events(history(5))
    road = Road(tmp_log)
    first, second = history(2, seed=2)
    assert await road.append(first) == 6
    assert await road.append(second) == 7
    assert road.writer.last_committed_seq == 7
    await road.writer.close()
    assert [event for _, event in tmp_log.events(6)] == [first, second]


async def test_a_full_writer_refuses_instead_of_queueing(tmp_log: EventLog) -> None:
    road = Road(tmp_log, max_pending=10)
    writer = road.writer
    events = history(12)
    assert all(road.submit(event) for event in events[:10])
    assert not road.submit(events[10])
    with pytest.raises(NotRecordedError, match="too many events waiting"):
        await road.append(events[10])
    assert writer.pending == 10
    await writer.drain()
    assert await road.append(events[11]) == 11
    await writer.close()
    assert [event for _, event in tmp_log.events()] == [*events[:10], events[11]]


async def test_a_creation_the_full_writer_refuses_no_longer_counts_against_the_limit(
    tmp_log: EventLog,
) -> None:
    """``max_torrents`` counts creations in flight; one that never reaches the log is none."""
    road = Road(tmp_log, max_pending=1)
    tracker = road.intake.tracker
    assert road.submit(history(1)[0])  # the writer is full now
    ip, now_ms = bytes([10, 0, 0, 9]), 5_000_000
    request = AnnounceRequest(
        tracker.connection_ids.issue(ip, now_ms / 1000),
        b"tid0",
        b"\xaa" * 20,
        b"-XX0001-" + bytes(12),
        0,
        100,
        0,
        AnnounceEvent.STARTED,
        bytes(4),
        1,
        -1,
        6881,
        b"",
    )
    decision = tracker.decide(request, ip, now_ms)
    assert isinstance(decision, Commit)
    assert tracker.creating == {b"\xaa" * 20: 1}
    refused = road.intake.submit(decision, _collect, None)
    assert refused is not None and refused.reason == "writer_full"
    assert tracker.creating == {}
    await road.writer.close()


async def test_commits_submitted_together_are_taken_as_one_by_one_up_to_the_limit(
    tmp_log: EventLog,
) -> None:
    """``submit_all`` (the compiled lane's way in): the first commits that fit are queued in
    order and answered; the rest are refused, counted and delivered nothing, as ``submit``
    would have refused each of them."""
    road = Road(tmp_log, max_pending=3)
    events = history(5)
    outcomes: list[object] = []
    road.intake.submit_all([(e, (Commit(e, road._seq, None), _collect, outcomes)) for e in events])
    assert road.writer.pending == 3
    assert road.intake.counters.dropped["writer_full"] == 2
    await road.writer.drain()
    await road.intake.drain()
    assert outcomes == [1, 2, 3]
    road.intake.submit_all(
        [(e, (Commit(e, road._seq, None), _collect, outcomes)) for e in events[3:]]
    )
    await road.writer.close()
    assert outcomes == [1, 2, 3, 4, 5]
    assert [event for _, event in tmp_log.events()] == events


async def test_close_commits_everything_pending_then_refuses(tmp_log: EventLog) -> None:
    road = Road(tmp_log, linger_s=0.05)
    acknowledged: list[object] = []
    for event in history(100):
        road.submit(event, acknowledged)
    await road.writer.close()
    assert acknowledged == list(range(1, 101))
    assert tmp_log.count() == 100
    assert road.state.last_seq == 100
    assert not road.submit(history(1)[0])
    with pytest.raises(NotRecordedError, match="not accepting"):
        await road.append(history(1)[0])


async def test_a_failed_commit_acknowledges_nothing_and_stops_the_writer(
    tmp_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Another writer took seq 1 behind our back: our batch cannot be appended."""
    road = Road(tmp_log)
    intruder, *ours = history(4)
    tmp_log.append_events([intruder])
    acknowledged: list[object] = []
    for event in ours:
        road.submit(event, acknowledged)
    with caplog.at_level(logging.ERROR), pytest.raises(NotRecordedError, match="failed"):
        await road.append(ours[0])
    assert lost(acknowledged) == [LOST, LOST, LOST]
    assert road.state.last_seq == 0
    assert not road.submit(ours[0])
    assert [event for _, event in tmp_log.events()] == [intruder]
    await road.writer.close()


async def test_an_event_the_codec_cannot_record_is_refused_alone(tmp_log: EventLog) -> None:
    road = Road(tmp_log)
    with pytest.raises(ValueError):
        road.submit(TorrentAdded(1, HASHES[0], "x" * 256))
    assert road.writer.pending == 0
    assert await road.append(TorrentAdded(2, HASHES[0], "admin")) == 1
    await road.writer.close()


async def test_a_failing_callback_does_not_stop_the_others(
    tmp_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    road = Road(tmp_log)
    acknowledged: list[object] = []

    def broken(context: object) -> None:
        raise RuntimeError("reply failed")

    events = history(3)
    road.submit(events[0], acknowledged)
    road.intake.submit(Commit(events[1], broken, None), _collect, acknowledged)
    road.submit(events[2], acknowledged)
    with caplog.at_level(logging.ERROR):
        await road.writer.close()
    assert acknowledged == [1, 3]
    assert "answering event 2 failed" in caplog.text
    assert road.state.last_seq == 3


async def test_announces_that_cannot_be_folded_or_answered_are_told_and_the_rest_answered(
    tmp_log: EventLog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With either core: the compiled core folds and answers a run of announces in C."""
    refuse_torrents_of(monkeypatch, HASHES[1])  # its fold fails
    road = Road(tmp_log)
    acknowledged: list[object] = []

    def broken(context: object) -> None:
        raise RuntimeError("reply failed")

    def announce(at_ms: int, info_hash: bytes) -> AnnounceAccepted:
        return AnnounceAccepted(
            at_ms, info_hash, b"\x0a\x00\x00\x01", 6881, bytes(20), 0, AnnounceEvent.NONE, 0, 0, 1
        )

    road.submit(announce(1000, HASHES[0]), acknowledged)
    road.submit(announce(1001, HASHES[1]), acknowledged)  # not folded: still answered
    road.intake.submit(Commit(announce(1002, HASHES[0]), broken, None), _collect, acknowledged)
    road.submit(announce(1003, HASHES[2]), acknowledged)
    with caplog.at_level(logging.ERROR):
        await road.writer.close()
    assert acknowledged == [1, 2, 4]
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "applying committed event 2 (AnnounceAccepted) failed",
        "answering event 3 failed",
    ]
    assert [record.exc_info[0] for record in caplog.records if record.exc_info] == [
        TypeError,
        RuntimeError,
    ]
    assert road.intake.apply_failures == ApplyFailures(count=1, last_seq=2)
    assert road.state.last_seq == 4
    assert road.state.stats.by_kind["AnnounceAccepted"] == 3


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs), to fill up."""
    with small_tmpfs(tmp_path, "1m") as mount_point:
        yield mount_point


async def test_a_full_disk_refuses_events_until_space_is_freed(small_disk: Path) -> None:
    filler = small_disk / "filler"
    with EventLog(small_disk / "log", map_size=4 << 20) as event_log:
        road = Road(event_log, linger_s=0, retry_after_s=0.05)
        writer = road.writer
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(bytes(free - 16_384))
        outcomes: list[object] = []
        for event in history(2_000):
            if not road.submit(event, outcomes):
                break
            await writer.drain()
        assert LOST in lost(outcomes)  # a commit failed: those events were not acknowledged
        assert not road.submit(history(1)[0])  # and new ones are refused meanwhile

        filler.unlink()
        deadline = asyncio.get_running_loop().time() + 10
        while not road.submit(history(1)[0]):
            assert asyncio.get_running_loop().time() < deadline, "the writer never resumed"
            await asyncio.sleep(0.01)
        await writer.drain()
        assert await road.append(history(2)[1]) == road.state.last_seq
        assert replay(event_log).snapshot() == road.state.snapshot()
        await writer.close()


async def test_a_large_sweep_is_folded_in_steps_and_what_follows_it_sees_it_whole(
    tmp_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("udpt.intake.APPLY_SLICE_S", 0.0)  # pause at every step
    road = Road(tmp_log)
    ip = bytes([10, 0, 0, 1])
    for n in range(2_000):  # one-peer torrents, as a random-hash flood leaves them
        info_hash = n.to_bytes(20, "big")
        road.submit(
            AnnounceAccepted(
                1_000, info_hash, ip, 6881, bytes(20), 0, AnnounceEvent.STARTED, 0, 0, 1
            )
        )
    await road.writer.drain()
    await road.intake.drain()
    before = road.state.last_seq
    partly_swept: list[int] = []

    async def watch() -> None:  # runs only when the loop gets a turn
        while True:
            await asyncio.sleep(0)
            left = len(road.state.torrents)
            if road.state.last_seq == before and 0 < left < 2_000:
                partly_swept.append(left)

    watching = asyncio.create_task(watch())
    late = 10**9
    seen: list[int] = []
    road.submit(PeersExpired(late, late, late))
    last = AnnounceAccepted(late, HASHES[0], ip, 6881, bytes(20), 0, AnnounceEvent.STARTED, 0, 0, 1)
    answer = Commit(last, lambda _: seen.append(len(road.state.torrents)), None)
    road.intake.submit(answer, _collect, None)
    await road.writer.close()
    await road.intake.drain()
    watching.cancel()
    assert seen == [1]  # the announce after the sweep met every flood torrent gone
    assert len(partly_swept) >= 2_000 // 100 - 1  # the loop ran between the sweep's steps
    assert replay(tmp_log).snapshot() == road.state.snapshot()
