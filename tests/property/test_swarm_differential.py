"""The compiled swarm and snapshot writer against the reference: the same answers and bytes.

docs/DESIGN.md §11. Every step of a random history (announces, removals, expiry,
selection with the same random source, source counts) goes to a
``udpt._core.Swarm`` and a ``SwarmPy``; after each, everything either can tell
is compared: counts, the oldest peer, every record in table order, the packed
snapshot bytes. Pools of a few dozen peers push tables past the size where the
compiled one keeps an index, and removals make it squeeze out its gaps. The
compiled snapshot writer must write what ``snapshot_parts`` joins to.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import tracker_histories
from udpt.core import COMPILED
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event
from udpt.projections import TrackerState
from udpt.projections.swarms import SwarmPy

if not COMPILED:
    pytest.skip("the compiled core is not selected", allow_module_level=True)
CompiledSwarm = importlib.import_module("udpt._core").Swarm

IH = bytes(20)
IPS = [bytes([10, 0, n // 4, n % 4]) for n in range(8)] + [
    bytes(14) + bytes([n // 4, n % 4]) for n in range(4)
]
PEERS = [ip + port.to_bytes(2, "big") for ip in IPS for port in (1, 2, 3, 6881)]

announces = st.tuples(
    st.just("announce"),
    st.integers(0, len(PEERS) - 1),
    st.integers(0, 3),  # milliseconds since the previous change: times never go back
    st.sampled_from(list(AnnounceEvent)),
    st.sampled_from([0, 0, 1, 5000, -1]),
    st.binary(min_size=0, max_size=24),  # peer ids the fold never sees: padded or cut alike
    st.integers(0, 2**32 - 1),
)
changes = st.lists(
    st.one_of(
        announces,
        announces,
        announces,
        st.tuples(st.just("remove"), st.integers(0, len(PEERS) - 1)),
        st.tuples(st.just("expire"), st.integers(0, 40)),
        st.tuples(
            st.just("select"),
            st.integers(0, len(PEERS) - 1),
            st.booleans(),
            st.integers(-1, 20),
            st.integers(0, 2**16),
        ),
        st.tuples(
            st.just("peers_from"),
            st.integers(0, len(IPS) - 1),
            st.integers(0, 5),
            st.integers(0, 17),
        ),
        st.tuples(st.just("clear")),
    ),
    max_size=300,
)


def observed(swarm: object) -> tuple[object, ...]:
    """Everything a reader can learn of a swarm."""
    return (
        len(swarm),  # type: ignore[arg-type]
        swarm.seeders,  # type: ignore[attr-defined]
        swarm.leechers,  # type: ignore[attr-defined]
        swarm.counts(),  # type: ignore[attr-defined]
        swarm.oldest_ms(),  # type: ignore[attr-defined]
        swarm.items(),  # type: ignore[attr-defined]
        swarm.pack(),  # type: ignore[attr-defined]
        [(swarm.record(peer), peer in swarm) for peer in PEERS],  # type: ignore[attr-defined,operator]
    )


def step(swarm: object, change: tuple, now: int) -> object:  # type: ignore[type-arg]
    kind, *args = change
    if kind == "announce":
        index, _, event, left, peer_id, key = args
        peer = PEERS[index]
        e = AnnounceAccepted(now, IH, peer[:-2], 0, peer_id, key, event, 7, 8, left)
        return swarm.announce(peer, e)  # type: ignore[attr-defined]
    if kind == "remove":
        return swarm.remove(PEERS[args[0]])  # type: ignore[attr-defined]
    if kind == "expire":
        return swarm.expire(now - args[0])  # type: ignore[attr-defined]
    if kind == "select":
        index, is_seeder, count, seed = args
        return swarm.select(PEERS[index], is_seeder, count, Random(seed))  # type: ignore[attr-defined]
    if kind == "peers_from":
        ip, v4_bytes, v6_bytes = args
        return swarm.peers_from(IPS[ip], v4_bytes, v6_bytes)  # type: ignore[attr-defined]
    return swarm.clear()  # type: ignore[attr-defined]


@settings(max_examples=250, deadline=None)
@given(changes)
def test_both_swarms_answer_alike_after_every_change(history: list[tuple]) -> None:  # type: ignore[type-arg]
    compiled, reference = CompiledSwarm(), SwarmPy()
    now = 100
    for change in history:
        if change[0] == "announce":
            now += change[2]
        assert step(compiled, change, now) == step(reference, change, now), change
        assert observed(compiled) == observed(reference), change
    restored = CompiledSwarm()
    restored.load(reference.pack(), reference.counts())
    assert observed(restored) == observed(reference)


def test_a_big_swarm_answers_alike_through_growth_squeezes_and_expiry() -> None:
    """Thousands of peers: the index, its rebuilds and the gaps, well past what the pools reach."""
    compiled, reference = CompiledSwarm(), SwarmPy()
    rng = Random(7)
    peers = [bytes([10, 1, n >> 8, n & 255, 0, 1]) for n in range(3000)]
    for now in range(1, 20_000):
        peer = peers[int(rng.paretovariate(1.2)) % len(peers)]
        e = AnnounceAccepted(now, IH, peer[:-2], 1, b"p" * 20, 0, 0, 0, 0, rng.choice([0, 1]))
        if now % 7 == 0:
            assert compiled.remove(peer) == reference.remove(peer)
        else:
            assert compiled.announce(peer, e) == reference.announce(peer, e)
        if now % 1000 == 0:
            assert compiled.expire(now - 2000) == reference.expire(now - 2000)
            assert compiled.select(peer, False, 50, Random(now)) == reference.select(
                peer, False, 50, Random(now)
            )
            assert observed(compiled) == observed(reference)
    assert observed(compiled) == observed(reference)


def test_index_slots_of_every_width_find_every_peer() -> None:
    """Past 254 and 65,534 entries a table's index slots widen (1, 2, then 4 bytes): every
    peer is still found as the reference finds it, through growth and removals."""
    compiled, reference = CompiledSwarm(), SwarmPy()
    peers = [bytes([10, n >> 16, n >> 8 & 255, n & 255, 0, 1]) for n in range(70_000)]
    for now, peer in enumerate(peers, 1):
        e = AnnounceAccepted(now, IH, peer[:-2], 1, b"p" * 20, 0, 0, 0, 0, 1)
        compiled.announce(peer, e)
        reference.announce(peer, e)
        if now in (254, 255, 256, 65_534, 65_535, 65_536):
            assert all(p in compiled for p in peers[:now])
    for peer in peers[::3]:
        assert compiled.remove(peer) == reference.remove(peer)
    assert len(compiled) == len(reference)
    assert [p in compiled for p in peers] == [p in reference for p in peers]


def count_sources_that_keep_coming() -> None:
    """Counts built at 64 peers have room for 128 sources; the swarm then gains a
    thousand peers from distinct addresses, of both families."""
    compiled, reference = CompiledSwarm(), SwarmPy()
    for n in range(1100):
        ip = (0x0A000000 + n).to_bytes(4, "big") if n % 4 else bytes(12) + n.to_bytes(4, "big")
        e = AnnounceAccepted(n, IH, ip, 1, b"p" * 20, 0, 0, 0, 0, n % 2)
        assert compiled.announce(ip + b"\x1a\xe1", e) == reference.announce(ip + b"\x1a\xe1", e)
        if n >= 63:
            assert compiled.peers_from(ip, 4, 16) == reference.peers_from(ip, 4, 16) == 1
            stranger = ip[:-1] + bytes([255 - ip[-1]])
            assert compiled.peers_from(stranger, 4, 16) == reference.peers_from(stranger, 4, 16)


def test_counts_per_source_make_room_for_sources_that_keep_coming() -> None:
    """In a process of its own: counts that never made room again would fill up, and a
    lookup in them would never end, in C, where no timeout in this process reaches."""
    script = "from tests.property.test_swarm_differential import count_sources_that_keep_coming; "
    script += "count_sources_that_keep_coming()"
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_a_big_swarm_counts_peers_per_source_alike_through_every_change() -> None:
    """Past INDEXED_SWARM peers both keep counts per source: kept by announces, removals,
    expiry and clearing, built again when the prefixes change, dropped when it shrinks."""
    compiled, reference = CompiledSwarm(), SwarmPy()
    rng = Random(11)
    v4 = [bytes([10, 2, n % 7, n % 5]) for n in range(40)]
    v6 = [bytes(12) + bytes([0, n % 3, n % 4, n]) for n in range(20)]
    prefixes = [(4, 16), (3, 8), (2, 6), (0, 0)]
    for now in range(1, 6000):
        ip = rng.choice(v4 if rng.random() < 0.7 else v6)
        peer = ip + rng.randrange(1, 40).to_bytes(2, "big")
        e = AnnounceAccepted(now, IH, ip, 1, b"p" * 20, 0, 0, 0, 0, rng.choice([0, 1]))
        roll = rng.random()
        if roll < 0.15:
            assert compiled.remove(peer) == reference.remove(peer)
        elif roll < 0.16:
            assert compiled.expire(now - 300) == reference.expire(now - 300)
        elif roll < 0.161:
            compiled.clear()
            reference.clear()
        else:
            assert compiled.announce(peer, e) == reference.announce(peer, e)
        if now % 7 == 0:
            v4_bytes, v6_bytes = prefixes[(now // 1000) % len(prefixes)]
            asked = rng.choice(v4 + v6)
            assert compiled.peers_from(asked, v4_bytes, v6_bytes) == reference.peers_from(
                asked, v4_bytes, v6_bytes
            ), (now, asked, len(reference))
    assert observed(compiled) == observed(reference)


def outcome(function, *args):  # type: ignore[no-untyped-def]
    try:
        return ("value", function(*args))
    except ValueError as exc:
        return ("error", str(exc))


@settings(max_examples=200, deadline=None)
@given(
    changes,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    st.integers(-2, 2),
)
def test_damaged_swarm_bytes_load_alike_or_fail_alike(
    history: list[tuple],  # type: ignore[type-arg]
    edits: list[tuple[int, int]],
    miscount: int,
) -> None:
    reference = SwarmPy()
    for now, change in enumerate(history, start=1):
        step(reference, change, now)
    data = bytearray(reference.pack())
    for position, byte in edits:
        if data:
            data[position % len(data)] = byte
    sizes = list(reference.counts())
    sizes[0] = max(0, sizes[0] + miscount)
    compiled_result, reference_result = CompiledSwarm(), SwarmPy()
    got = outcome(compiled_result.load, bytes(data), tuple(sizes))
    assert got == outcome(reference_result.load, bytes(data), tuple(sizes))
    assert observed(compiled_result) == observed(reference_result)


@settings(max_examples=150, deadline=None)
@given(tracker_histories())
def test_the_compiled_snapshot_writer_writes_the_bytes_of_snapshot(events: list[Event]) -> None:
    """``write_snapshot`` (C, for the forked child) against ``snapshot_parts`` (the reference)."""
    state = TrackerState()
    state.apply_all(enumerate(events, 1))
    with tempfile.TemporaryFile() as out:
        state.write_snapshot(out)
        out.seek(0)
        assert out.read() == b"".join(state.snapshot_parts())


def reference_state() -> TrackerState:
    """A state that folds announces with the reference ``_announced``, not ``fold_announce``."""
    state = TrackerState()
    state._handlers[AnnounceAccepted] = state._announced  # type: ignore[assignment]
    return state


@settings(max_examples=300, deadline=None)
@given(tracker_histories(max_events=80))
def test_the_compiled_fold_of_announces_gives_the_reference_state_after_every_event(
    events: list[Event],
) -> None:
    compiled, reference = TrackerState(), reference_state()
    for seq, event in enumerate(events, 1):
        compiled.apply(seq, event)
        reference.apply(seq, event)
        assert compiled.snapshot() == reference.snapshot(), (seq, event)
        assert compiled.peer_count() == reference.peer_count()
