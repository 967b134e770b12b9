"""Compaction's compiled ``StoredRun`` against the reference: the same values, byte for byte.

docs/DESIGN.md §11. ``udpt._core.stored_run`` holds the events of stored values as the
batch encoder takes them; ``StoredRunPy`` decodes them and encodes each slice with
``encode_batch``, and the pure Python encoder's bytes are the reference. Random events
(crowded, so that hashes and peers repeat and differ in one field only) are stored as
the writer and compaction store them: raw or compressed, numbered by the log's
dictionary or with their own table, mixed with other events. Every slice must encode
to the same bytes through both; values the compiled run does not take (damaged ones
among them) must be left to the reference.
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import strategies as s
from udpt.core import COMPILED
from udpt.events import batch
from udpt.events.batch import StoredRunPy, decode_batch, encode_batch
from udpt.events.codec import encode_event
from udpt.events.types import AnnounceAccepted, Event

if not COMPILED:
    pytest.skip("the compiled core is not selected", allow_module_level=True)
core = importlib.import_module("udpt._core")

HASHES = [bytes([n]) * 20 for n in range(5)]

crowded_announces = s.accepted_announces(
    at_ms=st.integers(0, 50) | s.i64s,
    info_hash=st.sampled_from(HASHES),
    ip=st.sampled_from([b"\x7f\x00\x00\x01", b"\x0a\x00\x00\x02", bytes(15) + b"\x01"]),
    port=st.sampled_from([6881, 6882]),
    peer_id=st.sampled_from([b"A" * 20, b"B" * 20]),
    key=st.sampled_from([0, 7]),
)
events = st.lists(
    st.one_of(crowded_announces, crowded_announces, s.accepted_announces(), s.events()),
    min_size=1,
    max_size=40,
)


def stored(
    history: list[Event], cuts: list[int], numbered: list[bool], compress: bool, table: list[bytes]
) -> list[bytes]:
    """``history`` cut into values; hashes numbered in ``table`` where the value is numbered."""

    def intern(info_hash: bytes) -> int:
        if info_hash not in table:
            table.append(info_hash)
        return table.index(info_hash)

    values, start = [], 0
    for i, cut in enumerate([*sorted(set(cuts)), len(history)]):
        if start < cut <= len(history):
            part = history[start:cut]
            values.append(
                encode_batch(part, intern if numbered[i % len(numbered)] else None, compress)
            )
            start = cut
    return values


def encodable(history: list[Event]) -> bool:
    try:
        encode_batch(history)
    except ValueError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    history=events,
    cuts=st.lists(st.integers(1, 39), max_size=4),
    numbered=st.lists(st.booleans(), min_size=1, max_size=3),
    compress=st.booleans(),
    slices=st.lists(st.tuples(st.integers(0, 39), st.integers(1, 40)), min_size=1, max_size=6),
)
def test_both_runs_encode_every_slice_to_the_same_bytes(
    history: list[Event],
    cuts: list[int],
    numbered: list[bool],
    compress: bool,
    slices: list[tuple[int, int]],
) -> None:
    if not encodable(history):
        return
    table: list[bytes] = []
    values = stored(history, cuts, numbered, compress, table)
    for event in history:  # the log numbers every hash it stores, in whatever layout
        if type(event) is AnnounceAccepted and event.info_hash not in table:
            table.append(event.info_hash)
    numbers = {info_hash: number for number, info_hash in enumerate(table)}
    compiled = core.stored_run(values, table, numbers)
    reference = StoredRunPy([e for value in values for e in decode_batch(value, table)], numbers)
    assert compiled is not None
    assert len(compiled) == len(reference) == len(history)
    for start, count in [(0, len(history)), *slices]:
        if start + count > len(history):
            with pytest.raises(ValueError, match="not a slice of the run"):
                compiled.encode(start, count)
            with pytest.raises(ValueError, match="not a slice of the run"):
                reference.encode(start, count)
            continue
        value = compiled.encode(start, count)
        assert value == reference.encode(start, count)
        part = history[start : start + count]  # and the pure Python encoder's bytes:
        assert value == batch.encode_batch_py(part, numbers.__getitem__)
        assert batch.decode_batch_py(value, table) == part


def test_a_hash_the_log_has_not_numbered_is_left_to_the_reference() -> None:
    announce = AnnounceAccepted(1, HASHES[0], b"\x7f\x00\x00\x01", 1, b"A" * 20, 0, 0, 0, 0, 0)
    value = encode_batch([announce])  # its own table, and the log does not know the hash
    assert core.stored_run([value], [], {}) is None
    reference = StoredRunPy([announce], {})
    assert reference.encode(0, 1) == encode_batch([announce])  # a table of its own again


@pytest.mark.parametrize(
    "values",
    [
        [
            encode_event(
                AnnounceAccepted(1, HASHES[0], b"\x7f\x00\x00\x01", 1, b"A" * 20, 0, 0, 0, 0, 0)
            )
        ],
        [b"\xb0\x00\x00\x00\x05" + bytes(8) + b"\x00"],  # a damaged body
        [b"\xb1\xff\xff\xff\xff" + bytes(8)],  # a count past any run, not compressed data
        [b""],
    ],
    ids=["a schema-1 record", "a damaged batch", "a damaged header", "nothing"],
)
def test_values_the_compiled_run_does_not_read_go_to_the_reference(values: list[bytes]) -> None:
    assert core.stored_run(values, [], {}) is None


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)


@settings(max_examples=300, deadline=None)
@given(history=events, edits=edits, cut=st.integers(0, 40))
def test_a_damaged_value_is_left_to_the_reference_or_read_as_it_reads_it(
    history: list[Event], edits: list[tuple[int, int]], cut: int
) -> None:
    if not encodable(history):
        return
    value = bytearray(encode_batch(history, compress=False))
    for position, byte in edits:
        value[position % len(value)] = byte
    damaged = bytes(value[: len(value) - cut % len(value)] if cut else value)
    table = list(HASHES)
    for event in history:
        if type(event) is AnnounceAccepted and event.info_hash not in table:
            table.append(event.info_hash)
    numbers = {info_hash: number for number, info_hash in enumerate(table)}
    compiled = core.stored_run([damaged], table, numbers)
    if compiled is None:
        return
    decoded = batch.decode_batch_py(damaged, table)  # what the compiled run took must decode
    assert len(compiled) == len(decoded)
    assert compiled.encode(0, len(decoded)) == batch.encode_batch_py(decoded, numbers.__getitem__)
