"""The LMDB event log: append, read back, reopen, meta, snapshots, map growth, other readers."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest

import udpt
from udpt.events import log as log_module
from udpt.events.codec import encode_event
from udpt.events.log import SCHEMA_VERSION, SNAPSHOT_CHUNK, EventLog, LogError
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event, TorrentAdded

TINY_MAP = 64 * 1024


def announce(n: int) -> AnnounceAccepted:
    """The n-th test announce; ``at_ms == n`` so a reader can tell which one it holds."""
    ip = (n % 250 + 1).to_bytes(4, "big")
    peer_id = n.to_bytes(20, "big")
    return AnnounceAccepted(
        n, bytes(19) + b"\x01", ip, 6881, peer_id, n & 0xFFFF, AnnounceEvent.NONE, n, 0, 1000
    )


def announces(first: int, count: int) -> list[Event]:
    return [announce(n) for n in range(first, first + count)]


def test_a_new_log_is_empty_and_records_its_schema(tmp_log: EventLog) -> None:
    assert (tmp_log.first_seq(), tmp_log.last_seq(), tmp_log.count()) == (0, 0, 0)
    assert list(tmp_log.records()) == []
    assert tmp_log.latest_snapshot() is None
    assert tmp_log.get_meta(b"schema") == SCHEMA_VERSION


def test_appended_events_read_back_in_order_with_sequence_numbers_from_1(
    tmp_log: EventLog,
) -> None:
    events = [*announces(1, 3), TorrentAdded(4, bytes(20), "admin"), announce(5)]
    assert tmp_log.append_events(events[:3]) == (1, 3)
    assert tmp_log.append_events(events[3:]) == (4, 5)
    assert list(tmp_log.events()) == list(enumerate(events, 1))
    assert list(tmp_log.records()) == [(n, encode_event(e)) for n, e in enumerate(events, 1)]
    assert (tmp_log.first_seq(), tmp_log.last_seq(), tmp_log.count()) == (1, 5, 5)


@pytest.mark.parametrize(
    ("from_seq", "to_seq", "expected"),
    [
        (1, None, [1, 2, 3, 4, 5]),
        (0, None, [1, 2, 3, 4, 5]),
        (2, 4, [2, 3, 4]),
        (4, None, [4, 5]),
        (1, 2, [1, 2]),
        (3, 3, [3]),
        (5, 99, [5]),
        (6, None, []),
        (4, 3, []),
    ],
)
def test_ranges_include_both_ends(
    tmp_log: EventLog, from_seq: int, to_seq: int | None, expected: list[int]
) -> None:
    tmp_log.append_events(announces(1, 5))
    assert [seq for seq, _ in tmp_log.records(from_seq, to_seq)] == expected
    assert [(seq, e.at_ms) for seq, e in tmp_log.events(from_seq, to_seq)] == [
        (n, n) for n in expected
    ]


def test_a_reopened_log_keeps_its_events_meta_and_last_seq(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append_events(announces(1, 10))
        log.put_meta(b"secret", b"\x00" * 32)
        log.put_snapshot(7, b"state at 7")
    with EventLog(tmp_path) as log:
        assert log.last_seq() == 10
        assert [e for _, e in log.events()] == announces(1, 10)
        assert log.get_meta(b"secret") == b"\x00" * 32
        assert log.latest_snapshot() == (7, b"state at 7")
        assert log.append_events(announces(11, 1)) == (11, 11)
    with EventLog(tmp_path, readonly=True) as log:
        assert log.last_seq() == 11


def test_meta_values_are_stored_overwritten_and_missing_keys_are_none(tmp_log: EventLog) -> None:
    assert tmp_log.get_meta(b"missing") is None
    tmp_log.put_meta(b"key", b"one")
    tmp_log.put_meta(b"key", b"two")
    tmp_log.put_meta(b"other", b"")
    assert (tmp_log.get_meta(b"key"), tmp_log.get_meta(b"other")) == (b"two", b"")


def test_a_log_from_a_newer_udpt_is_refused(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.put_meta(b"schema", b"3")
    with pytest.raises(LogError, match="newer"):
        EventLog(tmp_path)


def test_opening_a_missing_log_read_only_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no udpt log"):
        EventLog(tmp_path / "nothing", readonly=True)


def test_snapshots_keep_the_newest_two(tmp_log: EventLog) -> None:
    for seq in (3, 5, 9):
        tmp_log.put_snapshot(seq, f"state at {seq}".encode())
    assert tmp_log.snapshot_seqs() == [5, 9]
    assert tmp_log.get_snapshot(3) is None
    assert tmp_log.get_snapshot(5) == b"state at 5"
    assert tmp_log.latest_snapshot() == (9, b"state at 9")
    tmp_log.delete_snapshots()
    assert (tmp_log.snapshot_seqs(), tmp_log.latest_snapshot()) == ([], None)


def test_a_snapshot_stored_over_many_transactions_reads_back_whole(
    tmp_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SNAPSHOT_TXN_CHUNKS", 3)
    sizes = {4: 0, 6: SNAPSHOT_CHUNK * 6, 8: SNAPSHOT_CHUNK * 7 + 5}
    for seq, size in sizes.items():
        tmp_log.put_snapshot(seq, bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    assert tmp_log.snapshot_seqs() == [6, 8]
    for seq in (6, 8):
        assert len(tmp_log.get_snapshot(seq) or b"") == sizes[seq]
    assert tmp_log.get_snapshot(4) is None


def test_a_snapshot_whose_store_was_cut_short_is_never_listed_and_is_swept_later(
    tmp_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed, it could be trusted by recovery, or by pruning to drop the events before it."""
    tmp_log.put_snapshot(5, b"five")
    monkeypatch.setattr(log_module, "SNAPSHOT_TXN_CHUNKS", 1)
    write = tmp_log._write
    calls = 0

    def killed_after_three(work: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 3:  # the mark, one delete pass, one part: then the process dies
            raise KeyboardInterrupt("killed")
        return write(work)

    monkeypatch.setattr(tmp_log, "_write", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        tmp_log.put_snapshot(9, b"n" * (SNAPSHOT_CHUNK * 5))
    monkeypatch.setattr(tmp_log, "_write", write)
    assert tmp_log.get_snapshot(9) is not None  # some of its chunks are in
    assert tmp_log.snapshot_seqs() == [5]
    assert tmp_log.latest_snapshot() == (5, b"five")
    tmp_log.put_snapshot(12, b"twelve")
    assert tmp_log.snapshot_seqs() == [5, 12]
    assert tmp_log.get_snapshot(9) is None


@pytest.mark.parametrize(
    ("max_seq", "expected"),
    [(None, 9), (100, 9), (9, 9), (8, 5), (5, 5), (4, None), (0, None)],
)
def test_latest_snapshot_at_or_before_a_seq(
    tmp_log: EventLog, max_seq: int | None, expected: int | None
) -> None:
    tmp_log.put_snapshot(5, b"five")
    tmp_log.put_snapshot(9, b"nine")
    found = tmp_log.latest_snapshot(max_seq)
    assert (found[0] if found else None) == expected


def test_the_map_grows_from_a_tiny_size_and_nothing_is_lost(tmp_path: Path) -> None:
    batches, size = 30, 500
    with EventLog(tmp_path, map_size=TINY_MAP) as log:
        for batch in range(batches):
            log.append_events(announces(batch * size + 1, size))
        log.put_snapshot(batches * size, bytes(1_000_000))  # one value larger than the first map
        assert log.env.info()["map_size"] >= 16 * TINY_MAP  # at least four doublings
        assert log.count() == batches * size
    with EventLog(tmp_path, map_size=TINY_MAP) as log:
        assert [e for _, e in log.events()] == announces(1, batches * size)
        assert log.latest_snapshot() == (batches * size, bytes(1_000_000))
        assert log.append_events(announces(batches * size + 1, size))[1] == (batches + 1) * size


@pytest.mark.parametrize(
    "first_seq", [1, 2, 3], ids=["rewrite-start", "rewrite-middle", "repeat-last"]
)
def test_an_append_that_is_not_after_the_last_event_fails_and_writes_nothing(
    tmp_log: EventLog, first_seq: int
) -> None:
    tmp_log.append_events(announces(1, 3))
    with pytest.raises(LogError):
        tmp_log.append_records(first_seq, [encode_event(announce(n)) for n in (97, 98, 99)])
    assert [e for _, e in tmp_log.events()] == announces(1, 3)
    assert tmp_log.append_events(announces(4, 1)) == (4, 4)


READER = """
import sys
from udpt.events.log import EventLog

path, batch, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with EventLog(path, readonly=True, map_size=64 * 1024) as log:
    print("ready", flush=True)
    seen = -1
    while seen < total:
        seqs = [seq for seq, event in log.events() if event.at_ms == seq]
        if seqs != list(range(1, len(seqs) + 1)) or len(seqs) % batch:
            print("inconsistent", len(seqs), seqs[-3:], flush=True)
            sys.exit(1)
        if len(seqs) != seen:
            seen = len(seqs)
            print("seen", seen, flush=True)
"""


def _stdout_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's stdout lines as they come (None at the end), so reads can have deadlines."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str | None], timeout: float = 20.0) -> str | None:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no output from the child process within {timeout} s")


def _child_env() -> dict[str, str]:
    """The environment for a child ``python -c`` that imports udpt from this tree."""
    root = str(Path(udpt.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }


def test_a_reader_in_another_process_sees_only_whole_batches_while_we_append(
    tmp_path: Path,
) -> None:
    """The reader starts with a map smaller than the data will need, so it also adopts growth."""
    batch, batches = 250, 40
    with (
        EventLog(tmp_path, map_size=TINY_MAP) as log,
        subprocess.Popen(
            [sys.executable, "-c", READER, str(tmp_path), str(batch), str(batch * batches)],
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        ) as reader,
    ):
        try:
            lines = _stdout_lines(reader)
            assert _next_line(lines) == "ready"
            assert _next_line(lines) == "seen 0"
            for n in range(batches):
                log.append_events(announces(n * batch + 1, batch))
                if n < 3:  # in lock step first: the reader sees each of these batches alone
                    assert _next_line(lines) == f"seen {(n + 1) * batch}"
            rest = []
            while (line := _next_line(lines)) is not None:
                rest.append(line)
            assert reader.wait(timeout=10) == 0, rest
            assert log.env.info()["map_size"] > TINY_MAP  # the reader had to adopt growth
        finally:
            if reader.poll() is None:
                reader.kill()
    counts = [int(line.split()[1]) for line in rest]
    assert counts == sorted(counts)
    assert counts[-1] == batch * batches


# -- batches and old logs --------------------------------------------------------


def write_old_format_log(path: Path, events: list[Event]) -> None:
    """A log as udpt wrote it before batches (schema 1): one record per event, keyed by seq."""
    with lmdb.open(str(path), max_dbs=4) as env:
        db, meta = env.open_db(b"events"), env.open_db(b"meta")
        env.open_db(b"snapshots")
        with env.begin(write=True) as txn:
            txn.put(b"schema", b"1", db=meta)
            for seq, event in enumerate(events, 1):
                assert txn.put(seq.to_bytes(8, "big"), encode_event(event), db=db, append=True)


@pytest.mark.parametrize(("from_seq", "to_seq"), [(1, None), (2, 9), (4, 4), (5, 6), (9, 30)])
def test_ranges_address_single_events_inside_batches(
    tmp_log: EventLog, from_seq: int, to_seq: int | None
) -> None:
    for first, count in ((1, 4), (5, 1), (6, 5)):
        tmp_log.append_events(announces(first, count))
    expected = list(range(from_seq, min(to_seq or 10, 10) + 1))
    assert [(seq, e.at_ms) for seq, e in tmp_log.events(from_seq, to_seq)] == [
        (n, n) for n in expected
    ]
    assert [seq for seq, _ in tmp_log.records(from_seq, to_seq)] == expected
    batches = list(tmp_log.event_batches(from_seq, to_seq))
    assert [seq for first, events in batches for seq in range(first, first + len(events))] == (
        expected
    )
    assert (tmp_log.first_seq(), tmp_log.last_seq(), tmp_log.count()) == (1, 10, 10)


def test_a_group_commit_is_one_value_and_its_hashes_are_numbered_once(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append_records(1, [encode_event(e) for e in announces(1, 100)])
        log.append_events([announce(101)._replace(info_hash=b"\x02" * 20)])
        assert log.env.stat()["entries"] >= 1
        with log.env.begin() as txn:
            assert txn.stat(log._events)["entries"] == 2
            assert list(txn.cursor(log._hash_db).iternext(keys=False)) == [
                bytes(19) + b"\x01",
                b"\x02" * 20,
            ]
    with EventLog(tmp_path, readonly=True) as log:
        assert [e for _, e in log.events()] == [
            *announces(1, 100),
            announce(101)._replace(info_hash=b"\x02" * 20),
        ]


def test_an_old_format_log_opens_grows_in_batches_and_reads_across_the_boundary(
    tmp_path: Path,
) -> None:
    old = [*announces(1, 5), TorrentAdded(6, bytes(20), "alice")]
    write_old_format_log(tmp_path, old)
    with EventLog(tmp_path, readonly=True) as log:
        assert log.get_meta(b"schema") == b"1"
        assert (log.first_seq(), log.last_seq(), log.count()) == (1, 6, 6)
        assert list(log.events()) == list(enumerate(old, 1))
    with EventLog(tmp_path) as log:
        assert log.get_meta(b"schema") == b"1"  # opening alone changes nothing
        assert log.append_events(announces(7, 3)) == (7, 9)
        assert log.get_meta(b"schema") == SCHEMA_VERSION
        assert list(log.events(5, 8)) == list(enumerate([*old[4:], *announces(7, 2)], 5))
        assert list(log.records(6, 7)) == [
            (6, encode_event(old[5])),
            (7, encode_event(announce(7))),
        ]
        with pytest.raises(LogError, match="does not follow"):
            log.append_events([])  # nothing to append is fine
            log.append_records(9, [encode_event(announce(9))])
    with EventLog(tmp_path, readonly=True) as log:
        assert (log.first_seq(), log.last_seq(), log.count()) == (1, 9, 9)
