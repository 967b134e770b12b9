"""The compiled core keeps no reference it should have dropped, on good input and on bad.

Runs only on a debug build of CPython (``sys.gettotalrefcount``; CI runs it with
Debian's ``python3.11-dbg``, ``.ci/debug-suite``): a workload over compiled paths runs
once to fill the caches, then ``ROUNDS`` times more, and the interpreter's total
reference count must come back to where it was, less than one reference a round (the
measurement's own references are taken off). A path that leaks one reference a call
leaks dozens to hundreds a round. The daemon's own path (the compiled lane, the fold of
what it committed, the replies) is measured round by round in a fresh interpreter with
each core and compared with the reference's. The debug build also checks every
reference count dropped and every block handed back to the allocator, so the rest of
the suite run there is the rest of the check.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from random import Random

import pytest

from tests.support.bep15 import announce_request, connect_request, scrape_request
from tests.support.refcount_rounds import total_references
from udpt import wire
from udpt.core import COMPILED, COMPILED_SOCKETS
from udpt.events import batch, codec
from udpt.events.hash_index import HashIndex, new_dictionary
from udpt.events.log import EventLog
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)
from udpt.history.apply import apply_batch
from udpt.history.recovery import recover
from udpt.projections import TrackerState
from udpt.projections.torrents import Torrent, TorrentTable

pytestmark = [
    pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"), reason="needs a debug CPython"),
    pytest.mark.skipif(not COMPILED, reason="the compiled core is not built"),
]

ROUNDS = 10
AT_MS = 1_700_000_000_000
HASHES = [bytes([n]) * 20 for n in range(1, 5)]


def references_gained(workload: Callable[[], object]) -> int:
    """The total reference count's growth over ``ROUNDS`` runs of ``workload`` after a first."""
    workload()
    before = total_references()
    for _ in range(ROUNDS):
        workload()
    return total_references() - before


def leaked(workload: Callable[[], object]) -> int:
    """References ``workload`` left behind in ``ROUNDS`` runs, the measurement's own taken off."""
    return references_gained(workload) - references_gained(lambda: None)


def test_the_names_called_below_are_the_compiled_ones() -> None:
    called = [wire.parse_request, wire.build_announce_response, codec.decode_event]
    called += [batch.encode_batch, batch.decode_batch, HashIndex]
    assert {name.__module__ for name in called} == {"udpt._core"}


def announces(count: int) -> list[Event]:
    """Peers joining, updating, completing and stopping over a few torrents, both families."""
    return [
        AnnounceAccepted(
            AT_MS + n,
            HASHES[n % len(HASHES)],
            bytes([10, 0, 0, n % 7]) if n % 3 else bytes(15) + bytes([n % 5]),
            6881 + n % 4,
            bytes([n % 11]) * 20,
            n,
            AnnounceEvent(n % 4),
            n * 10,
            n * 20,
            0 if n % 2 else 1000,
        )
        for n in range(count)
    ]


def history() -> list[Event]:
    """Every kind of event, in an order a tracker could log them."""
    return [
        TorrentAdded(AT_MS, HASHES[0], "ops"),
        *announces(40),
        AnnounceRefused(AT_MS + 50, HASHES[1], bytes(4), 1, bytes(20), RefusalReason.FLAGGED),
        TorrentFlagged(AT_MS + 51, HASHES[1], "ops"),
        TorrentUnflagged(AT_MS + 52, HASHES[1], "ops"),
        TorrentImported(AT_MS + 53, bytes(20), True, 7, "import"),
        TorrentDropped(AT_MS + 54, HASHES[2], "ops"),
        PeersExpired(AT_MS + 55, AT_MS + 20, AT_MS),
        *announces(10),
    ]


def datagrams() -> list[bytes]:
    """Requests of every kind, each with every prefix of it, and garbage."""
    whole = [
        connect_request(b"tid!"),
        announce_request(bytes(8), b"tid!", HASHES[0], b"p" * 20),
        announce_request(bytes(8), b"tid!", HASHES[0], b"p" * 20) + b"\x02\x05/path\x01\x00",
        scrape_request(bytes(8), b"tid!", *HASHES),
    ]
    return [d[:end] for d in whole for end in range(len(d) + 1)] + [b"\xff" * 100]


def test_the_wire_codec_leaks_nothing() -> None:
    corpus = datagrams()

    def workload() -> None:
        for data in corpus:
            wire.parse_request(data)
            wire.parse_request(data, 2)
            wire.may_be_request(data)
        wire.build_connect_response(b"tid!", bytes(8))
        wire.build_announce_response(b"tid!", 1800, 3, 4, bytes(6 * 5))
        wire.build_scrape_response(b"tid!", [(1, 2, 3), (4, 5, 6)])
        wire.build_error_response(b"tid!", "torrent not registered")
        for bad in ((b"tid!", "1800", 0, 0, b""), (b"tid!", 1800, 0, 0, "not bytes")):
            with pytest.raises(TypeError):
                wire.build_announce_response(*bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            wire.build_scrape_response(b"tid!", [(1, 2)])  # type: ignore[list-item]

    assert leaked(workload) < ROUNDS


def test_records_and_batches_leak_nothing_whole_or_damaged() -> None:
    events = history()
    records = [codec.encode_event(event) for event in events]
    numbers: dict[bytes, int] = {}
    packed = batch.encode_batch(events, lambda h: numbers.setdefault(h, len(numbers)), False)
    table = list(numbers)
    compressed = batch.encode_batch(events)

    def workload() -> None:
        for event, record in zip(events, records, strict=True):
            assert codec.decode_event(codec.encode_event(event)) == event
            for end in range(len(record)):
                with contextlib.suppress(ValueError):
                    codec.decode_event(record[:end])
        assert batch.decode_batch(packed, table) == events
        assert batch.decode_batch(compressed) == events
        for at in range(0, len(packed), 7):
            damaged = packed[:at] + bytes([packed[at] ^ 0x5A]) + packed[at + 1 :]
            with contextlib.suppress(ValueError):
                batch.decode_batch(damaged, table)
        index = HashIndex(table)
        assert [index.get(h) for h in table] == list(range(len(table)))
        assert b"missing" not in index

    assert leaked(workload) < ROUNDS


def test_the_packed_dictionary_leaks_nothing_read_indexed_or_refused() -> None:
    events = history()
    numbers: dict[bytes, int] = {}
    packed = batch.encode_batch(events, lambda h: numbers.setdefault(h, len(numbers)), False)

    def workload() -> None:
        hashes = new_dictionary()
        hashes.extend(iter(numbers))
        hashes.extend([b"odd", memoryview(bytes(20))])
        with contextlib.suppress(TypeError):
            hashes.extend([7])  # type: ignore[list-item]
        assert [hashes[n] for n in range(len(hashes))][:-2] == list(numbers)
        assert hashes[-2] == b"odd"
        with contextlib.suppress(IndexError):
            hashes[len(hashes)]
        assert batch.decode_batch(packed, hashes) == events
        index = HashIndex(hashes)
        assert index.get(b"odd") == len(hashes) - 2 and index.get(b"missing") is None

    assert leaked(workload) < ROUNDS


def test_the_fold_peer_selection_and_snapshots_leak_nothing() -> None:
    events = history()

    def workload() -> None:
        state = TrackerState()
        apply_batch(state, 1, events)
        for torrent in state.torrents.values():
            torrent.swarm.select(bytes([10, 0, 0, 1, 0x1A, 0xE1]), False, 50, Random(1))
            torrent.swarm.items()
            torrent.swarm.expire(AT_MS + 45)
        restored = TrackerState.restore(state.snapshot())
        assert restored.snapshot() == state.snapshot()

    assert leaked(workload) < ROUNDS


def test_the_torrent_table_leaks_nothing_on_any_path() -> None:
    """Storing, replacing, paging, walking, forgetting, and every refusal."""
    keys = [n.to_bytes(20, "big") for n in range(0, 3000, 3)]

    def workload() -> None:
        table = TorrentTable()
        for info_hash in keys:
            table[info_hash] = Torrent()
        table[keys[0]] = Torrent()  # replaces
        assert table.page(500, 20) == keys[500:520] and table.get(b"short") is None
        assert len(list(table.items())) == len(list(table.values())) == len(keys)
        for key, torrent in [(b"short", Torrent()), (keys[1], "x"), (keys[2], table[keys[3]])]:
            with contextlib.suppress(TypeError, ValueError):
                table[key] = torrent  # type: ignore[assignment]
        with contextlib.suppress(RuntimeError):
            for info_hash in table:
                del table[info_hash]
        for info_hash in keys[1:]:
            table.pop(info_hash)

    assert leaked(workload) < ROUNDS


def test_a_replay_from_the_log_leaks_nothing(tmp_path: Path) -> None:
    events = history()
    with EventLog(tmp_path / "log", sync=False) as log:
        for start in range(0, len(events), 9):
            log.append_batch(start + 1, events[start : start + 9])

        def workload() -> None:
            state, _ = recover(log, use_snapshots=False)
            assert state.last_seq == len(events)

        assert leaked(workload) < ROUNDS


def daemon_round_deltas(work: Path, core: dict[str, str]) -> list[int]:
    """``tests/support/refcount_rounds.py`` in a fresh interpreter with the core ``core``
    selects."""
    root = Path(__file__).resolve().parents[2]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("UDPT_")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.refcount_rounds", str(work)],
        cwd=root,
        env={**environment, **core},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    deltas: list[int] = json.loads(done.stdout.splitlines()[-1])
    return deltas


@pytest.mark.skipif(not COMPILED_SOCKETS, reason="udpt._sockets is not built")
def test_the_daemon_answering_every_kind_of_datagram_leaks_no_more_than_the_reference(
    tmp_path: Path,
) -> None:
    """The compiled lane, the fold of what it committed and the replies, in the daemon.

    The total reference count drifts the same in both cores (about -19 a round here:
    the interpreter's own accounting, not the core's), so the compiled core's median
    round is compared with the reference's; the median ignores a one-off growth
    (a table resized) in either. One reference left a round moves the median by one.
    """
    pure = daemon_round_deltas(tmp_path / "pure", {"UDPT_PURE_PYTHON": "1"})
    compiled = daemon_round_deltas(tmp_path / "compiled", {"UDPT_REQUIRE_CORE": "1"})
    assert statistics.median(compiled) <= statistics.median(pure), (compiled, pure)
