"""The one fold loop: what it yields, what it skips, and how it reports progress."""

from __future__ import annotations

import pytest

from udpt.events.log import EventLog
from udpt.events.types import TorrentAdded, TorrentFlagged
from udpt.history import Fold, fold, folding
from udpt.projections import TrackerState

T0 = 1_700_000_000_000
A, B = b"\xaa" * 20, b"\xbb" * 20
EVENTS = [
    TorrentAdded(T0, A, "ops"),
    TorrentAdded(T0 + 1, B, "ops"),
    TorrentFlagged(T0 + 2, A, "ops"),
    TorrentFlagged(T0 + 3, B, "ops"),
]


def test_the_fold_yields_each_event_once_applied(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS)
    state = TrackerState()
    seen = []
    for seq, event in Fold(tmp_log, state, 3):
        assert state.last_seq == seq
        seen.append((seq, event))
    assert seen == list(enumerate(EVENTS[:3], 1))
    assert fold(tmp_log, state) == 1  # it goes on from where the state is


def test_a_fold_passes_over_unwanted_records_without_applying_them(tmp_log: EventLog) -> None:
    tmp_log.append_events(EVENTS)
    state = TrackerState()
    run = Fold(tmp_log, state, wanted=lambda record: B in record)
    assert [seq for seq, _ in run] == [2, 4]
    assert set(state.torrents) == {B}
    assert run.missing == []


def test_progress_is_reported_every_so_many_records(
    tmp_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folding, "PROGRESS_EVERY", 2)
    tmp_log.append_events(EVENTS)
    reached: list[int] = []
    assert fold(tmp_log, TrackerState(), progress=reached.append) == 4
    assert reached == [2, 4]
