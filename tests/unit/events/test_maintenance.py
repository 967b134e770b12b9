"""Compaction, retention and the archive on a real LMDB log in a temp directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from udpt.events.archive import Archive, History, read_file
from udpt.events.batch import TAG_BATCH_RAW, TAG_BATCH_ZLIB, batch_count
from udpt.events.codec import DecodeError
from udpt.events.log import EventLog
from udpt.events.maintenance import LogMaintenance, MaintenanceReport
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    Event,
    PeersExpired,
    TorrentFlagged,
)

FLAG = TorrentFlagged(15, b"\x07" * 20, "alice")


def announce(n: int) -> AnnounceAccepted:
    return AnnounceAccepted(
        n,
        bytes([n % 5]) * 20,
        bytes((10, 0, n >> 8 & 255, n & 255)),
        6881,
        n.to_bytes(20, "big"),
        n,
        AnnounceEvent.NONE,
        n,
        0,
        1000,
    )


def history(count: int) -> list[Event]:
    """Events at_ms == seq; a flag at 15 and an expiry at 30."""
    events: list[Event] = [announce(n) for n in range(1, count + 1)]
    events[14] = FLAG
    events[29] = PeersExpired(30, 0, 0)
    return events


def write(log: EventLog, events: list[Event], per_batch: int) -> None:
    for start in range(0, len(events), per_batch):
        log.append_events(events[start : start + per_batch])


def entry_firsts(log: EventLog) -> list[int]:
    return [first for first, _ in log.event_batches()]


def test_nothing_is_pruned_that_no_snapshot_covers(tmp_log: EventLog) -> None:
    write(tmp_log, history(100), 10)
    LogMaintenance(tmp_log, retention_ms=1).prune(10_000, MaintenanceReport())
    assert tmp_log.first_seq() == 1
    tmp_log.put_snapshot(45, b"state")
    report = MaintenanceReport()
    LogMaintenance(tmp_log, retention_ms=1).prune(10_000, report)
    assert report.pruned == 40  # whole batches up to the snapshot: 1..40
    assert (tmp_log.first_seq(), tmp_log.pruned_to(), tmp_log.last_seq()) == (41, 40, 100)


def test_nothing_is_pruned_that_is_younger_than_the_retention(tmp_log: EventLog) -> None:
    write(tmp_log, history(100), 10)
    tmp_log.put_snapshot(100, b"state")
    maintenance = LogMaintenance(tmp_log, retention_ms=50)
    maintenance.run(now_ms=75)  # cutoff 25: batches ending at 10 and 20
    assert tmp_log.first_seq() == 21
    maintenance.run(now_ms=10_000)
    assert tmp_log.first_seq() == 91  # never the newest batch


def test_admin_events_outlive_the_batches_around_them(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        write(log, history(100), 10)
        log.put_snapshot(100, b"state")
        LogMaintenance(log, retention_ms=1).run(now_ms=10_000)
        assert log.first_seq() == 91
        assert list(log.admin_events()) == [(15, FLAG)]
    with EventLog(tmp_path, readonly=True) as log:
        assert list(log.admin_events(1, 20)) == [(15, FLAG)]
        assert list(log.admin_events(16)) == []


def values(log: EventLog) -> list[bytes]:
    with log.env.begin() as txn:
        return list(txn.cursor(log._events).iternext(keys=False))


def value_sizes(log: EventLog) -> list[int]:
    return [len(value) for value in values(log)]


def test_small_batches_are_merged_into_one_page_values_with_the_same_events(
    tmp_log: EventLog,
) -> None:
    events = history(5000)
    write(tmp_log, events, 37)
    before = value_sizes(tmp_log)
    maintenance = LogMaintenance(tmp_log, retention_ms=0)
    assert maintenance.run(now_ms=0).compacted  # a bounded amount per run
    while maintenance.run(now_ms=0).compacted:
        pass
    after = value_sizes(tmp_log)
    assert len(after) < len(before) / 2
    assert max(after) <= 4096 - 16  # one overflow page each
    merged = [value for value in values(tmp_log) if batch_count(value) > 37]
    assert merged and all(value[0] == TAG_BATCH_ZLIB for value in merged)
    assert sum(after) < sum(before)
    assert list(tmp_log.events()) == list(enumerate(events, 1))
    assert list(tmp_log.events(2000, 2100)) == list(enumerate(events[1999:2100], 2000))
    assert tmp_log.count() == len(events)


def test_the_writers_small_batches_wait_uncompressed_and_big_ones_are_compressed(
    tmp_log: EventLog,
) -> None:
    events = history(3000)
    write(tmp_log, events[:2000], 37)
    tmp_log.append_batch(2001, events[2000:])
    tags = [value[0] for value in values(tmp_log)]
    assert set(tags[:-1]) == {TAG_BATCH_RAW}  # compaction compresses them as it merges
    assert tags[-1] == TAG_BATCH_ZLIB  # more than a page: compaction leaves it as it is
    assert list(tmp_log.events()) == list(enumerate(events, 1))


def test_a_reader_between_chunks_sees_each_event_once_across_a_merge(
    tmp_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from udpt.events import log as log_module

    monkeypatch.setattr(log_module, "READ_CHUNK_ENTRIES", 2)
    events = history(20_000)
    write(tmp_log, events, 50)
    reader = tmp_log.events()
    seen = [next(reader) for _ in range(120)]  # inside the third chunk
    assert LogMaintenance(tmp_log, retention_ms=0).run(now_ms=0).compacted
    seen.extend(reader)
    assert seen == list(enumerate(events, 1))


def test_pruned_events_are_archived_and_history_joins_archive_and_log(tmp_path: Path) -> None:
    events = history(300)
    archive = Archive(tmp_path / "archive")
    with EventLog(tmp_path / "log") as log:
        write(log, events, 10)
        log.put_snapshot(200, b"state")
        report = LogMaintenance(log, retention_ms=1, archive=archive).run(now_ms=250)
        assert (report.pruned, report.archived) == (200, 200)  # up to the snapshot
        assert log.first_seq() == 201
        files = archive.files()
        assert [(f.first_seq, f.last_seq) for f in files] == [(1, 200)]
        assert files[0].path.name == "000000000001-000000000200_1-200.udptarc"
        joined = History(log, archive)
        assert joined.first_seq() == 1
        assert list(joined.events()) == list(enumerate(events, 1))
        assert list(joined.events(150, 210)) == list(enumerate(events[149:210], 150))
    assert [
        seq
        for f in archive.files()
        for first, b in read_file(f.path)
        for seq in range(first, first + len(b))
    ] == list(range(1, 201))


def test_an_event_in_both_archive_and_log_is_read_once_and_not_archived_twice(
    tmp_path: Path,
) -> None:
    """As after a kill between the archive's rename and the prune's commit."""
    events = history(100)
    archive = Archive(tmp_path / "archive")
    with EventLog(tmp_path / "log") as log:
        write(log, events, 10)
        log.put_snapshot(100, b"state")
        head, _ = log.entries(0, 2)
        LogMaintenance(log, retention_ms=1, archive=archive)._archive(head)  # never pruned
        (archive.path / ".tmp-torn").write_bytes(b"half a file")
        assert list(History(log, archive).events()) == list(enumerate(events, 1))
        LogMaintenance(log, retention_ms=1, archive=archive).run(now_ms=1000)
        assert [(f.first_seq, f.last_seq) for f in archive.files()] == [(1, 20), (21, 90)]
        assert not list(archive.path.glob(".tmp-*"))
        assert list(History(log, archive).events()) == list(enumerate(events, 1))


def test_an_old_format_log_is_compacted_and_pruned_keeping_its_admin_events(
    tmp_path: Path,
) -> None:
    from tests.unit.events.test_log import write_old_format_log

    events = history(3000)
    write_old_format_log(tmp_path, events)
    with EventLog(tmp_path) as log:
        maintenance = LogMaintenance(log, retention_ms=0)
        while maintenance.run(now_ms=0).compacted:
            pass
        # One value per event before; the newest few hundred wait for a full run to gather.
        assert len(entry_firsts(log)) < len(events) / 5
        assert list(log.events()) == list(enumerate(events, 1))
        assert list(log.admin_events()) == [(15, FLAG)]  # copied when its record was merged
        log.put_snapshot(3000, b"state")
        LogMaintenance(log, retention_ms=1).run(now_ms=10_000)
        assert log.first_seq() > 2000
        assert list(log.admin_events()) == [(15, FLAG)]


def test_a_damaged_archive_file_is_a_decode_error(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    with EventLog(tmp_path / "log") as log:
        write(log, history(100), 10)
        log.put_snapshot(100, b"state")
        LogMaintenance(log, retention_ms=1, archive=archive).run(now_ms=1000)
    path = archive.files()[0].path
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="checksum"):
        list(read_file(path))
