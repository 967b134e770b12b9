"""The compiled fold of stored batch values against the reference: the same state, the same
failures.

docs/DESIGN.md §11. ``apply_stored`` folds the announces of a value straight from
its columns, without the event objects ``decode_batch`` makes; replay and
recovery fold a live log that way. Random histories are cut into values (with
their own hash table or the log's dictionary, compressed or not), each folded in
one or two parts; the state must be the one the reference fold of the decoded
events gives, and an announce that cannot be folded must be told and counted as
``apply_batch`` tells and counts it.
"""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import tracker_histories
from tests.support.unfoldable import refuse_torrents_of
from udpt.core import COMPILED
from udpt.events.batch import encode_batch
from udpt.events.codec import encode_event
from udpt.events.hash_index import Dictionary, new_dictionary
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event
from udpt.history.apply import ApplyFailures, apply_batch, apply_stored
from udpt.projections import TrackerState

pytestmark = pytest.mark.skipif(not COMPILED, reason="the compiled core is not built")


def reference_state() -> TrackerState:
    """A state that folds announces with the reference ``_announced``, not ``fold_announce``."""
    state = TrackerState()
    state._handlers[AnnounceAccepted] = state._announced  # type: ignore[assignment]
    return state


def stored(events: list[Event], dictionary: Dictionary | None, compress: bool) -> bytes:
    """``events`` as the log stores them: with the log's dictionary (grown as needed) or not."""
    if dictionary is None:
        return encode_batch(events, compress=compress)
    numbers = {dictionary[n]: n for n in range(len(dictionary))}

    def intern(info_hash: bytes) -> int:
        if info_hash not in numbers:
            numbers[info_hash] = len(dictionary)
            dictionary.extend([info_hash])
        return numbers[info_hash]

    return encode_batch(events, intern, compress)


def observed(state: TrackerState) -> tuple[object, ...]:
    return state.snapshot(), dict(state.stats.by_kind), state.last_seq, state.peer_count()


@settings(max_examples=300, deadline=None)
@given(
    tracker_histories(max_events=120),
    st.randoms(use_true_random=False),
    st.sampled_from(["own table", "list", "the log's"]),
    st.booleans(),
)
def test_stored_values_fold_to_the_reference_state(
    events: list[Event], rng: Random, hashes: str, compress: bool
) -> None:
    """The log's own dictionary is packed: the fold makes an info hash object only when it
    creates or files a torrent."""
    compiled, reference = TrackerState(), reference_state()
    dictionary = {"own table": None, "list": [], "the log's": new_dictionary()}[hashes]
    first = 1
    while first <= len(events):
        size = rng.randint(1, 40)
        chunk = events[first - 1 : first - 1 + size]
        value = stored(chunk, dictionary, compress)
        cut = rng.randint(0, len(chunk))
        for part in ((0, cut), (cut, len(chunk))):
            assert apply_stored(
                compiled, first, value, () if dictionary is None else dictionary, part
            )
        for seq, event in enumerate(chunk, first):
            reference.apply(seq, event)
        assert observed(compiled) == observed(reference), (first, chunk)
        first += len(chunk)


def announce(at_ms: int, info_hash: bytes, port: int) -> AnnounceAccepted:
    return AnnounceAccepted(
        at_ms, info_hash, b"\x0a\x00\x00\x01", port, b"p" * 20, 7, AnnounceEvent.NONE, 0, 0, 5
    )


def test_an_announce_that_cannot_be_folded_is_counted_and_passed_over_as_apply_batch_does(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = b"g" * 20, b"x" * 20
    refuse_torrents_of(monkeypatch, bad)
    events: list[Event] = [
        announce(1000, good, 1),
        announce(1001, bad, 2),
        announce(1002, good, 3),
        announce(1003, bad, 4),
        announce(1004, good, 5),
    ]
    value = encode_batch(events)
    by_columns, by_events = TrackerState(), TrackerState()
    columns_failures, events_failures = ApplyFailures(), ApplyFailures()
    assert apply_stored(by_columns, 1, value, (), (0, 5), columns_failures)
    apply_batch(by_events, 1, events, events_failures)
    assert columns_failures == events_failures == ApplyFailures(count=2, last_seq=4)
    assert observed(by_columns) == observed(by_events)
    assert by_columns.last_seq == 5
    told = [r for r in caplog.records if "applying committed event" in r.getMessage()]
    assert [r.getMessage() for r in told] == 2 * [
        "applying committed event 2 (AnnounceAccepted) failed",
        "applying committed event 4 (AnnounceAccepted) failed",
    ]
    assert all(r.exc_info is not None and r.exc_info[0] is TypeError for r in told)


@pytest.mark.parametrize(
    "value",
    [
        encode_event(announce(1, b"g" * 20, 1)),  # one old per-event record, not a batch
        encode_batch([announce(1, b"g" * 20, 1)])[:-3],  # cut short
        b"\xb1" + bytes(20),  # compressed, but not zlib
    ],
)
def test_a_value_the_compiled_decoder_does_not_read_is_left_to_the_reference(
    value: bytes,
) -> None:
    state = TrackerState()
    assert not apply_stored(state, 1, value, (), (0, 1))
    assert observed(state) == observed(TrackerState())


def test_a_value_numbering_hashes_past_the_dictionary_is_left_to_the_reference() -> None:
    value = encode_batch([announce(1, b"g" * 20, 1)], lambda info_hash: 3)
    state = TrackerState()
    assert not apply_stored(state, 1, value, [b"a" * 20], (0, 1))
    assert observed(state) == observed(TrackerState())
