"""The archive: pruned events in immutable, compressed files, read as one history with the log.

With ``[log] archive_dir``, what retention prunes is first written here. One
file per pruning transaction, named by its sequence and time range::

    {first_seq:012d}-{last_seq:012d}_{first_ms}-{last_ms}.udptarc

Layout (big-endian)::

    8s  magic b"UDPTARC1"
    Q Q first and last seq;  q q first and last at_ms;  I number of values
    I   number of dictionary entries, then each: I number, 20s info hash
    per value:  Q first seq, I length, then the value as the live log held it
                (a batch, ``udpt.events.batch``, or a schema-1 record)
    I   CRC-32 of everything before it

Values are copied as they are, with the entries of the log's hash dictionary
they refer to, so a file stands alone. Copying rather than re-encoding keeps
the archiving thread's share of the GIL small: decoding and encoding batches
there stalled the daemon's event loop for tens of milliseconds.

A file is written under a temporary name, fsynced, renamed into place and its
directory fsynced, and only then may the live log let go of its events. So a
SIGKILL at any moment leaves every event in the live log, in the archive, or
in both; never in neither, and a reader never sees a torn file (temporary
names are ignored and removed by the next writer). Both may hold an event
(killed between the rename and the prune): readers take each sequence number
once, and the next pruning archives only what the archive lacks.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from udpt.events.batch import BATCH_TAGS, batch_last_ms
from udpt.events.codec import DecodeError, decode_event
from udpt.events.log import EventLog, decode_entry, entry_count
from udpt.events.types import Event

__all__ = ["Archive", "ArchiveFile", "History"]

MAGIC = b"UDPTARC1"
SUFFIX = ".udptarc"
TEMPORARY_PREFIX = ".tmp-"
_HEADER = struct.Struct("!8sQQqqI")
_HASH = struct.Struct("!I20s")
_VALUE = struct.Struct("!QI")
_U32 = struct.Struct("!I")
_NAME = re.compile(r"^(\d{12,})-(\d{12,})_(-?\d+)-(-?\d+)\.udptarc$")


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: Path
    first_seq: int
    last_seq: int
    first_ms: int
    last_ms: int


class Archive:
    """A directory of archive files. Writing is for one pruner at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def files(self) -> list[ArchiveFile]:
        """The complete files, by first sequence number."""
        if not self.path.is_dir():
            return []
        found = []
        for entry in self.path.iterdir():
            match = _NAME.match(entry.name)
            if match:
                first, last, first_ms, last_ms = map(int, match.groups())
                found.append(ArchiveFile(entry, first, last, first_ms, last_ms))
        found.sort(key=lambda f: (f.first_seq, f.last_seq))
        return found

    def first_seq(self) -> int:
        files = self.files()
        return files[0].first_seq if files else 0

    def last_seq(self) -> int:
        return max((f.last_seq for f in self.files()), default=0)

    # -- writing -----------------------------------------------------------

    def write(
        self,
        values: Sequence[tuple[int, bytes]],
        dictionary: Sequence[tuple[int, bytes]],
        first_ms: int,
    ) -> ArchiveFile:
        """Store consecutive (first seq, value) of the log as one new file, durably.

        ``dictionary`` holds the (number, info hash) entries the values refer to;
        ``first_ms`` is the time of the first event.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(TEMPORARY_PREFIX + "*"):
            stale.unlink()  # left by a writer killed before its rename
        first_seq = values[0][0]
        last_seq = values[-1][0] + entry_count(values[-1][1]) - 1
        last_ms = _last_ms(values[-1][1])
        parts = [
            _HEADER.pack(MAGIC, first_seq, last_seq, first_ms, last_ms, len(values)),
            _U32.pack(len(dictionary)),
            *(_HASH.pack(number, info_hash) for number, info_hash in dictionary),
            *(_VALUE.pack(first, len(value)) + value for first, value in values),
        ]
        body = b"".join(parts)
        data = body + _U32.pack(zlib.crc32(body))
        name = f"{first_seq:012d}-{last_seq:012d}_{first_ms}-{last_ms}{SUFFIX}"
        temporary = self.path / (TEMPORARY_PREFIX + name)
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, self.path / name)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return ArchiveFile(self.path / name, first_seq, last_seq, first_ms, last_ms)

    # -- reading -----------------------------------------------------------

    def event_batches(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, list[Event]]]:
        """(first seq, events) from from_seq to to_seq, each seq once, in order."""
        next_seq = from_seq
        for file in self.files():
            if file.last_seq < next_seq:
                continue
            if to_seq is not None and file.first_seq > to_seq:
                return
            for first, events in read_file(file.path):
                low = max(next_seq - first, 0)
                high = len(events) if to_seq is None else min(len(events), to_seq - first + 1)
                if low < high:
                    yield first + low, events[low:high]
                    next_seq = first + high


class _Dictionary(dict[int, bytes]):
    """The hash numbers one file refers to. ``len`` bounds the numbers, as the length of
    the log's dictionary does, for the range check of ``decode_batch``."""

    def __len__(self) -> int:
        return max(self, default=-1) + 1


def read_file(path: Path) -> Iterator[tuple[int, list[Event]]]:
    """The values of one archive file, decoded; DecodeError if it is damaged."""
    data = path.read_bytes()
    if len(data) < _HEADER.size + 2 * _U32.size or not data.startswith(MAGIC):
        raise DecodeError(f"{path}: not an archive file")
    body, (crc,) = data[: -_U32.size], _U32.unpack(data[-_U32.size :])
    if zlib.crc32(body) != crc:
        raise DecodeError(f"{path}: checksum mismatch")
    _, first_seq, last_seq, _, _, count = _HEADER.unpack_from(body)
    offset = _HEADER.size
    (entries,) = _U32.unpack_from(body, offset)
    offset += _U32.size
    dictionary = _Dictionary()
    for _ in range(entries):
        number, info_hash = _HASH.unpack_from(body, offset)
        dictionary[number] = info_hash
        offset += _HASH.size
    expected = first_seq
    for _ in range(count):
        first, length = _VALUE.unpack_from(body, offset)
        offset += _VALUE.size
        events = decode_entry(body[offset : offset + length], dictionary)
        offset += length
        if first != expected:
            raise DecodeError(f"{path}: value at {first}, expected {expected}")
        expected = first + len(events)
        yield first, events
    if expected != last_seq + 1 or offset != len(body):
        raise DecodeError(f"{path}: does not hold what its header says")


def _last_ms(value: bytes) -> int:
    return batch_last_ms(value) if value[0] in BATCH_TAGS else decode_event(value).at_ms


class History:
    """The archive and the live log as one history: the archive up to where the log starts.

    The live log wins where both hold an event (they are equal: the archive is
    a copy). ``first_seq`` is the archive's when there is one. Reads as an
    ``EventLog`` does (``LogReader``); snapshots and admin events are the log's.
    """

    def __init__(self, log: EventLog, archive: Archive | None) -> None:
        self.log = log
        self.archive = archive
        self.path = log.path

    def first_seq(self) -> int:
        archived = self.archive.first_seq() if self.archive is not None else 0
        return archived or self.log.first_seq()

    def last_seq(self) -> int:
        return self.log.last_seq()

    def count(self) -> int:
        live_first = self.log.first_seq()
        first = self.first_seq()
        return self.log.count() + (live_first - first if live_first and first else 0)

    def size_on_disk(self) -> int:
        return self.log.size_on_disk()

    def replayable_from(self) -> int:
        """0 when the archive holds every event before the log's first."""
        if self.archive is not None and self.archive.first_seq() == 1:
            return 0
        return self.log.replayable_from()

    def admin_events(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, Event]]:
        return self.log.admin_events(from_seq, to_seq)

    def snapshot_seqs(self) -> list[int]:
        return self.log.snapshot_seqs()

    def get_snapshot(self, seq: int) -> bytes | None:
        return self.log.get_snapshot(seq)

    def put_snapshot(self, seq: int, data: bytes) -> None:
        self.log.put_snapshot(seq, data)

    def event_batches(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, list[Event]]]:
        """Pruning may go on while this reads: what the log lost meanwhile is in the archive."""
        next_seq = from_seq
        for first, events in self.log.event_batches(from_seq, to_seq):
            if first > next_seq and self.archive is not None:
                yield from self.archive.event_batches(next_seq, first - 1)
            yield first, events
            next_seq = first + len(events)
        if self.archive is not None and (to_seq is None or next_seq <= to_seq):
            yield from self.archive.event_batches(next_seq, to_seq)  # all before the log

    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, Event]]:
        for first, events in self.event_batches(from_seq, to_seq):
            yield from enumerate(events, first)
