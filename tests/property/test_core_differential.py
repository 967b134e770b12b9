"""The compiled core against the pure Python reference: same values, bytes and errors.

docs/DESIGN.md §11. Skipped when the compiled core is not selected (not built, or
UDPT_PURE_PYTHON=1); CI's compiled run requires it (tests/unit/test_core_selection.py).
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import strategies as s
from tests.support import bep15
from udpt import wire
from udpt.core import COMPILED
from udpt.events import batch, codec

if not COMPILED:  # the modules bind the extension only when it is selected
    pytest.skip("the compiled core is not selected", allow_module_level=True)
core = importlib.import_module("udpt._core")

EXAMPLES = settings(max_examples=300, deadline=None)


def outcome(function, *args):  # type: ignore[no-untyped-def]
    try:
        return ("value", function(*args))
    except Exception as exc:
        return ("error", type(exc), str(exc))


def mutated(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    raw = bytearray(data)
    for position, byte in edits:
        if raw:
            raw[position % len(raw)] = byte
    return bytes(raw[: len(raw) - cut % (len(raw) + 1)] if cut else raw)


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)
datagrams = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda tid, url: bep15.announce_request(bytes(8), tid, bytes(20), bytes(20)) + url,
        st.binary(min_size=4, max_size=4),
        st.binary(max_size=300),
    ),
    st.builds(lambda tid: bep15.connect_request(tid), st.binary(min_size=4, max_size=4)),
    st.builds(  # any fixed announce part (every event, port, counter), then options
        lambda head, action, event, tail: (
            head[:8] + action + head[12:80] + event.to_bytes(4, "big") + head[84:] + tail
        ),
        st.binary(min_size=98, max_size=98),
        st.sampled_from([bytes([0, 0, 0, a]) for a in (1, 2)]),
        st.integers(0, 5),
        st.binary(max_size=60),
    ),
)


@EXAMPLES
@given(data=datagrams, edits=edits, cut=st.integers(0, 120), limit=st.integers(-2, 80))
def test_both_parsers_give_the_same_request(
    data: bytes, edits: list[tuple[int, int]], cut: int, limit: int
) -> None:
    datagram = mutated(data, edits, cut)
    assert core.parse_request(datagram, limit) == wire.parse_request_py(datagram, limit)
    assert core.may_be_request(datagram) == wire.may_be_request_py(datagram)


i32ish = st.one_of(st.integers(0, 2**31 + 5), st.integers(-(2**31) - 2, 2**40))


@EXAMPLES
@given(
    tid=st.binary(min_size=3, max_size=5),
    cid=st.binary(min_size=8, max_size=8),
    numbers=st.tuples(i32ish, i32ish, i32ish),
    peers=st.binary(max_size=60),
    entries=st.lists(st.tuples(i32ish, i32ish, i32ish), max_size=5),
    message=st.one_of(st.text(max_size=80), st.text(min_size=20, max_size=70).map(lambda t: t * 3)),
)
def test_both_builders_give_the_same_bytes(
    tid: bytes,
    cid: bytes,
    numbers: tuple[int, int, int],
    peers: bytes,
    entries: list[tuple[int, int, int]],
    message: str,
) -> None:
    pairs = [
        (core.build_connect_response, wire.build_connect_response_py, (tid, cid)),
        (core.build_announce_response, wire.build_announce_response_py, (tid, *numbers, peers)),
        (core.build_scrape_response, wire.build_scrape_response_py, (tid, entries)),
        (core.build_error_response, wire.build_error_response_py, (tid, message)),
    ]
    for compiled, reference, args in pairs:
        assert outcome(compiled, *args) == outcome(reference, *args)


crowded_announces = s.accepted_announces(  # peers that repeat, or differ in one field only
    info_hash=st.sampled_from([bytes([n]) * 20 for n in range(3)]),
    ip=st.sampled_from([b"\x7f\x00\x00\x01", bytes(15) + b"\x01"]),
    port=st.sampled_from([6881, 6882]),
    peer_id=st.sampled_from([b"A" * 20, b"B" * 20]),
    key=st.sampled_from([0, 7]),
)
batches = st.lists(
    st.one_of(s.accepted_announces(), crowded_announces, s.events()), min_size=1, max_size=30
)


@EXAMPLES
@given(events=batches, intern=st.booleans(), compress=st.booleans())
def test_both_batch_encoders_give_the_same_bytes_and_each_decodes_the_other(
    events: list, intern: bool, compress: bool
) -> None:
    table: dict[bytes, int] = {}
    numbers = (lambda h: table.setdefault(h, len(table))) if intern else None
    compiled = outcome(core.encode_batch, events, numbers, compress)
    reference = outcome(batch.encode_batch_py, events, numbers, compress)
    assert compiled == reference
    if compiled[0] == "error":
        return
    hashes = list(table)
    value = compiled[1]
    assert core.decode_batch_compiled_only(value, hashes) == events
    assert batch.decode_batch_py(value, hashes) == events


@EXAMPLES
@given(events=batches, edits=edits, cut=st.integers(0, 40), raw=st.booleans())
def test_damaged_batches_give_the_same_events_or_error(
    events: list, edits: list[tuple[int, int]], cut: int, raw: bool
) -> None:
    try:
        value = batch.encode_batch_py(events)
    except ValueError:
        return
    if raw:  # mutate the body itself, not the zlib stream
        body = batch.zlib.decompress(value[13:]) if value[0] == 0xB1 else value[13:]
        value = bytes([0xB0]) + value[1:13] + body
    damaged = mutated(value, edits, cut)
    assert outcome(core.decode_batch, damaged) == outcome(batch.decode_batch_py, damaged)


@EXAMPLES
@given(event=s.events(), edits=edits, cut=st.integers(0, 20))
def test_both_record_codecs_agree(event: object, edits: list[tuple[int, int]], cut: int) -> None:
    record = outcome(core.encode_event, event)
    assert record == outcome(codec.encode_event_py, event)
    if record[0] == "value":
        damaged = mutated(record[1], edits, cut)
        assert outcome(core.decode_event, damaged) == outcome(codec.decode_event_py, damaged)
