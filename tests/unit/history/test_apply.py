"""One rule for a committed event whose apply fails: logged, counted, passed over; live = replay."""

from __future__ import annotations

import logging

import pytest

from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event, TorrentAdded
from udpt.history import ApplyFailures, apply_committed, fold, recover, take_snapshot
from udpt.history.apply import apply_batch
from udpt.history.verification import verify
from udpt.projections import TrackerState

T0 = 1_700_000_000_000
BROKEN = b"\xee" * 20
FINE = b"\x11" * 20
EVENTS: list[Event] = [
    TorrentAdded(T0, FINE, "ops"),
    TorrentAdded(T0 + 1, BROKEN, "ops"),
    AnnounceAccepted(
        T0 + 2,
        FINE,
        b"\x0a\x00\x00\x01",
        6881,
        b"-TR4050-abcdefghijkl",
        7,
        AnnounceEvent.STARTED,
        0,
        0,
        100,
    ),
]


@pytest.fixture
def broken_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler bug: adding ``BROKEN`` marks it registered, then raises."""
    original = TrackerState._added

    def added(self: TrackerState, e: TorrentAdded) -> None:
        original(self, e)
        if e.info_hash == BROKEN:
            raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(TrackerState, "_added", added)


def live_state(failures: ApplyFailures) -> TrackerState:
    state = TrackerState()
    for seq, event in enumerate(EVENTS, 1):
        apply_committed(state, seq, event, failures)
    return state


def test_a_clean_apply_returns_true_and_counts_nothing(tmp_log: EventLog) -> None:
    state, failures = TrackerState(), ApplyFailures()
    assert apply_committed(state, 1, EVENTS[0], failures) is True
    assert (state.last_seq, failures) == (1, ApplyFailures())


@pytest.mark.usefixtures("broken_add")
def test_a_failed_apply_is_logged_counted_and_passed_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = ApplyFailures()
    with caplog.at_level(logging.ERROR, logger="udpt.history.apply"):
        state = live_state(failures)
    assert failures == ApplyFailures(count=1, last_seq=2)
    assert "applying committed event 2 (TorrentAdded) failed" in caplog.text
    assert "a bug in a handler" in caplog.text  # with its traceback
    assert state.last_seq == 3  # the events after it were applied
    assert len(state.torrents[FINE].swarm) == 1


@pytest.mark.usefixtures("broken_add")
def test_replay_applies_a_failing_event_by_the_same_rule_as_live(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS)
    live = live_state(ApplyFailures())
    replayed, failures = TrackerState(), ApplyFailures()
    assert fold(tmp_log, replayed, failures=failures) == 3
    assert failures == ApplyFailures(count=1, last_seq=2)
    assert replayed.snapshot() == live.snapshot()


@pytest.mark.usefixtures("broken_add")
def test_a_snapshot_after_a_failed_apply_is_filed_where_the_fold_stopped(
    tmp_log: EventLog,
) -> None:
    """Filed at seq 1 instead, recovery would apply event 2's partial effects twice."""
    tmp_log.append_events(EVENTS[:2])
    assert take_snapshot(tmp_log) == 2
    tmp_log.append_events(EVENTS[2:])
    state, snapshot_seq = recover(tmp_log)
    assert snapshot_seq == 2
    assert state.snapshot() == live_state(ApplyFailures()).snapshot()


@pytest.mark.usefixtures("broken_add")
def test_verify_names_the_event_that_could_not_be_applied(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS)
    result = verify(tmp_log)
    assert [(p.seq, p.message) for p in result.problems] == [
        (2, "event 2 could not be applied (see the log)")
    ]


def test_a_batch_applies_a_failing_announce_by_the_same_rule_as_one_at_a_time() -> None:
    """The compiled core folds a run of announces in one call: a failure inside the run
    is counted at its own seq, and the announces after it are still applied."""
    good = EVENTS[2]
    events: list[Event] = [
        good,
        good._replace(port=70_000),  # no peer address: cannot be folded
        good._replace(port=6882),
        good._replace(port=6883, event=AnnounceEvent.STOPPED),
    ]
    one_at_a_time, failures = TrackerState(), ApplyFailures()
    for seq, event in enumerate(events, 1):
        apply_committed(one_at_a_time, seq, event, failures)
    batched, batch_failures = TrackerState(), ApplyFailures()
    apply_batch(batched, 1, events, batch_failures)
    assert batch_failures == failures == ApplyFailures(count=1, last_seq=2)
    assert batched.last_seq == 4
    assert batched.snapshot() == one_at_a_time.snapshot()
    assert len(batched.torrents[FINE].swarm) == 2


def test_a_batch_reaching_back_before_the_state_fails_those_events_and_applies_the_rest() -> None:
    """Events at or below ``last_seq`` are refused one by one, as ``apply_committed`` refuses
    each; the first one after it must still be applied, not counted as the failure."""
    good = EVENTS[2]
    events: list[Event] = [good._replace(port=6881 + i, at_ms=T0 + i) for i in range(8)]
    ahead = TrackerState()
    for seq, event in enumerate(events[:6], 5):  # the state is at seq 10
        apply_committed(ahead, seq, event)
    one_at_a_time, failures = ahead.restore(ahead.snapshot()), ApplyFailures()
    for seq, event in enumerate(events, 5):
        apply_committed(one_at_a_time, seq, event, failures)
    batched, batch_failures = ahead.restore(ahead.snapshot()), ApplyFailures()
    apply_batch(batched, 5, events, batch_failures)
    assert batch_failures == failures == ApplyFailures(count=6, last_seq=10)
    assert batched.last_seq == one_at_a_time.last_seq == 12
    assert batched.snapshot() == one_at_a_time.snapshot()
    assert len(batched.torrents[FINE].swarm) == 8
