"""The append-only event log: batches in LMDB, keyed by 8-byte big-endian sequence numbers.

One LMDB environment (a directory) holds these named databases:

* ``events``    first seq -> one group commit as one batch value (``udpt.events.batch``);
                event ``i`` of a batch is ``first + i``. Logs written before batches hold
                one record per event (``udpt.events.codec``), keyed by its own seq; both
                kinds of value are read forever, and a tag byte tells them apart. Sequence
                numbers start at 1 and have no gaps.
* ``hashes``    number (4 bytes) -> info hash: the dictionary batches refer to, so that
                an announce costs two bytes of hash instead of twenty. Written in the
                transaction of the first batch that uses the hash; never pruned.
* ``admin``     seq -> record (per-event layout) of every event that is not an announce,
                a refused announce or an expiry: added, flagged, unflagged, dropped,
                imported, and any kind added later. A copy, written in the transaction of
                its batch (or, for a log of schema 1, in the transaction that prunes its
                record), so that pruning, which removes whole batches, never takes the
                history of who changed what.
* ``snapshots`` seq + chunk number -> a chunk of the projection snapshot taken after
                applying event ``seq`` (schema 1 stored it whole, under seq alone);
* ``meta``      schema version, the connection-id secret, ``pruned_to`` (the last
                sequence number pruning removed: the live history starts after it), ...

Batches are pruned whole, oldest first, and never the newest one, so that the
last sequence number and the time of the last event are always on record.

Writes happen on one thread only (``udpt.events.writer``); any number of
readers, in this process or others, may read at the same time (LMDB MVCC).
The map grows on demand: a full map never stops the log.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, TypeVar

import lmdb

from udpt.events.batch import (
    BATCH_TAGS,
    HashIntern,
    HashTable,
    StoredRun,
    StoredRunPy,
    batch_count,
    compiled_stored_run,
    decode_batch,
    encode_batch,
)
from udpt.events.codec import DecodeError, decode_event, encode_event
from udpt.events.hash_index import Dictionary, HashIndex, new_dictionary
from udpt.events.types import AnnounceAccepted, AnnounceRefused, Event, PeersExpired

__all__ = [
    "PRUNABLE",
    "SCHEMA_VERSION",
    "CorruptEntry",
    "EventLog",
    "LogError",
    "LogReader",
    "decode_entry",
    "entry_count",
]

SCHEMA_VERSION = b"2"
"""2: batches and the hash dictionary. A log of schema 1 (one record per event) is
read as it is and becomes 2 with its first batch, so that an older udpt, which
cannot read batches, refuses it at open instead of failing in the middle."""
READABLE_SCHEMAS = (b"1", SCHEMA_VERSION)
SNAPSHOTS_KEPT = 2
READ_CHUNK_ENTRIES = 256
PRUNABLE: frozenset[type] = frozenset((AnnounceAccepted, AnnounceRefused, PeersExpired))
"""The kinds retention may remove; every other kind is kept forever in ``admin``."""
PRUNED_TO = b"pruned_to"
_SEQ = struct.Struct(">Q")
_HASH_ID = struct.Struct(">I")
_CHUNK = struct.Struct(">I")
SNAPSHOT_CHUNK = 2000
"""Bytes per snapshot chunk: two fit in a 4 KiB leaf page (LMDB's largest node is 2040)."""
SNAPSHOT_TXN_CHUNKS = 2048
"""Chunks stored (or deleted) per transaction: LMDB keeps a transaction's dirty pages in
memory until it commits, so a snapshot in one transaction cost its size again in memory."""
SNAPSHOT_UNFINISHED = b"snapshot_unfinished:"
"""Meta key prefix (+ seq key) of a snapshot being stored or deleted across transactions:
never listed, so neither recovery nor pruning relies on it; swept by the next store."""


_T = TypeVar("_T")


class LogError(RuntimeError):
    """The log cannot be opened or would be damaged by the requested write."""


class CorruptEntry(DecodeError):
    """A value of the log that cannot be decoded; ``seq`` is its first event."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event {seq} cannot be decoded: {reason}")
        self.seq = seq


class LogReader(Protocol):
    """What reading a history needs (and storing a rebuilt snapshot): the live log
    (``EventLog``), or archive and log as one (``udpt.events.archive.History``)."""

    path: Path

    def first_seq(self) -> int: ...
    def last_seq(self) -> int: ...
    def count(self) -> int: ...
    def size_on_disk(self) -> int: ...
    def replayable_from(self) -> int: ...
    def event_batches(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, list[Event]]]: ...
    def events(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, Event]]: ...
    def admin_events(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, Event]]: ...
    def snapshot_seqs(self) -> list[int]: ...
    def get_snapshot(self, seq: int) -> bytes | None: ...
    def put_snapshot(self, seq: int, data: bytes) -> None: ...


def seq_key(seq: int) -> bytes:
    return _SEQ.pack(seq)


def key_seq(key: bytes | memoryview) -> int:
    seq: int = _SEQ.unpack(key)[0]
    return seq


def entry_count(value: bytes | memoryview) -> int:
    """Events in one value of the events database: a batch's count, or 1 for a record."""
    return batch_count(value) if value[0] in BATCH_TAGS else 1


def decode_entry(value: bytes, hashes: HashTable) -> list[Event]:
    """The events of one value of the events database (a batch, or one old record)."""
    if value and value[0] in BATCH_TAGS:
        return decode_batch(value, hashes)
    return [decode_event(value)]


def _last_seq(cursor: lmdb.Cursor[Any]) -> int:
    return key_seq(cursor.key()) + entry_count(cursor.value()) - 1 if cursor.last() else 0


def _entries_from(
    cursor: lmdb.Cursor[bytes], from_seq: int, to_seq: int | None
) -> Iterator[tuple[int, bytes]]:
    """(first seq, value) of the values holding an event in from_seq..to_seq, in order."""
    if cursor.set_range(seq_key(from_seq)):
        if key_seq(cursor.key()) > from_seq:
            if not cursor.prev():  # nothing before: start at the first value
                cursor.first()
            elif key_seq(cursor.key()) + entry_count(cursor.value()) <= from_seq:
                cursor.next()  # the value before ends before from_seq
    elif not cursor.last() or key_seq(cursor.key()) + entry_count(cursor.value()) <= from_seq:
        return
    for key, value in cursor:
        first = key_seq(key)
        if to_seq is not None and first > to_seq:
            return
        yield first, value


def _snapshot_seqs(
    txn: lmdb.Transaction, db: lmdb._Database, meta: lmdb._Database, *, unfinished: bool = False
) -> list[int]:
    """The seqs of the snapshots stored; with ``unfinished``, of those half stored or
    half deleted (``SNAPSHOT_UNFINISHED``) instead, which are otherwise left out."""
    seqs: list[int] = []
    for key in txn.cursor(db).iternext(values=False):
        seq = key_seq(key[:8])
        if (not seqs or seqs[-1] != seq) and (
            txn.get(SNAPSHOT_UNFINISHED + key[:8], db=meta) is not None
        ) == unfinished:
            seqs.append(seq)
    return seqs


def _read_snapshot(txn: lmdb.Transaction, db: lmdb._Database, seq: int) -> bytes | None:
    """A snapshot's bytes: its chunks joined, or one value as schema 1 stored it."""
    prefix = seq_key(seq)
    cursor = txn.cursor(db)
    if not cursor.set_range(prefix):
        return None
    chunks = []
    for key, value in cursor:
        if key[:8] != prefix:
            break
        chunks.append(value)
    return b"".join(chunks) if chunks else None


def _delete_snapshot(cursor: lmdb.Cursor[Any], seq: int, limit: int) -> bool:
    """Delete up to ``limit`` chunks of snapshot ``seq``; whether it is all gone."""
    prefix = seq_key(seq)
    for _ in range(limit):
        if not (cursor.set_range(prefix) and cursor.key()[:8] == prefix):
            return True
        cursor.delete()
    return not (cursor.set_range(prefix) and cursor.key()[:8] == prefix)


PAGE_HEADER = 16
"""LMDB's page header: a value of up to a page less this takes exactly one overflow page."""
FULL = 0.9
"""A value this close to a page is left as it is by compaction (udpt.events.maintenance)."""

RAW_MARGIN = 1.25
"""A batch estimated (from the bytes per event of the last one) at more than this many
``FULL`` pages uncompressed is compressed at once: under load the writer's batches are
bigger than a page, and encoding each one uncompressed first, to find that out, cost
the writer a quarter of its encoding time."""


class EventLog:
    """An LMDB-backed event log. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        path: str | Path,
        *,
        sync: bool = True,
        readonly: bool = False,
        map_size: int = 1 << 30,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / "data.mdb").exists():
            raise LogError(f"{self.path}: no udpt log here (no data.mdb)")
        try:
            self.env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=8,
                sync=sync,
                readonly=readonly,
                metasync=sync,
                max_readers=256,
            )
        except lmdb.Error as exc:
            raise LogError(f"{self.path}: cannot open the log: {exc}") from exc
        self.env.reader_check()
        self._events = self.env.open_db(b"events", create=not readonly)
        self._snapshots = self.env.open_db(b"snapshots", create=not readonly)
        self._meta = self.env.open_db(b"meta", create=not readonly)
        self._hash_db = self._open_db(b"hashes")
        self._admin = self._open_db(b"admin")
        self._hashes = new_dictionary()
        """The hash dictionary by number, as far as this process has read it."""
        self._hash_ids: HashIndex | None = None
        """Number by hash, for writing: an index of ``_hashes`` (hash_index.py), built at
        the first append or restore."""
        self._hashes_lock = threading.Lock()
        """Held while ``_hashes`` grows, and while its index is made: the writer and
        maintenance threads share both, or a hash would be listed or numbered twice."""
        self._snapshot_lock = threading.Lock()
        self.value_limit = self.env.stat()["psize"] - PAGE_HEADER
        """The largest value that fits one page."""
        self._raw_bytes_per_event = 0.0
        """Of the writer's last uncompressed value (``_batch_value``); 0: none yet."""
        self._check_schema()

    def _open_db(self, name: bytes) -> lmdb._Database | None:
        """A database added after schema 1; None when a read-only open finds an older log."""
        try:
            return self.env.open_db(name, create=not self.readonly)
        except lmdb.NotFoundError:
            return None

    def _check_schema(self) -> None:
        version = self.get_meta(b"schema")
        if version is None and not self.readonly:
            self.put_meta(b"schema", SCHEMA_VERSION)
            version = SCHEMA_VERSION
        self._schema = version
        if version not in (None, *READABLE_SCHEMAS):
            raise LogError(
                f"{self.path}: log schema {version!r} is newer than this udpt "
                f"understands ({SCHEMA_VERSION!r})"
            )

    # -- lifecycle -------------------------------------------------------

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------

    def _read_txn(self) -> lmdb.Transaction[bytes]:
        """A read transaction, adopting a map another process has grown meanwhile."""
        try:
            return self.env.begin()
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin()

    def _header_txn(self) -> lmdb.Transaction[memoryview]:
        """A read transaction giving values as memoryviews: reading a batch's header then
        touches one page, not the whole value."""
        try:
            return self.env.begin(buffers=True)
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin(buffers=True)

    def last_seq(self) -> int:
        """The sequence number of the last committed event (0 for an empty log)."""
        with self._header_txn() as txn:
            return _last_seq(txn.cursor(self._events))

    def first_seq(self) -> int:
        """The first event the log holds in full (0 for an empty log)."""
        with self._read_txn() as txn:
            cursor = txn.cursor(self._events)
            return key_seq(cursor.key()) if cursor.first() else 0

    def count(self) -> int:
        """Events held (from their batches' headers: no batch is decoded)."""
        with self._header_txn() as txn:
            return sum(entry_count(value) for value in txn.cursor(self._events).iternext(False))

    def _load_hashes(self, txn: lmdb.Transaction) -> Dictionary:
        """The hash dictionary as of ``txn``: numbers added since the last call are read."""
        with self._hashes_lock:
            return self._read_hashes(txn)

    def _read_hashes(self, txn: lmdb.Transaction) -> Dictionary:
        hashes = self._hashes
        if self._hash_db is not None and txn.stat(self._hash_db)["entries"] > len(hashes):
            cursor = txn.cursor(self._hash_db)
            if cursor.set_range(_HASH_ID.pack(len(hashes))):
                hashes.extend(bytes(h) for h in cursor.iternext(keys=False))
        return hashes

    def _values(
        self, from_seq: int, to_seq: int | None
    ) -> Iterator[tuple[int, bytes, Dictionary, int]]:
        """(first seq, value, hash dictionary, lowest seq wanted) of every value holding an
        event in range. The lowest seq wanted moves on from chunk to chunk: maintenance may
        merge values between two chunks, and a merged value can start before it.

        Values are read in short read transactions of ``READ_CHUNK_ENTRIES`` and
        handed out after each one ends, so that a long scan never keeps LMDB from
        reusing the pages the daemon frees (pruned batches, old snapshots).
        """
        start = max(from_seq, 0)
        while to_seq is None or start <= to_seq:
            with self._read_txn() as txn:
                hashes = self._load_hashes(txn)
                chunk = list(
                    islice(
                        _entries_from(txn.cursor(self._events), start, to_seq), READ_CHUNK_ENTRIES
                    )
                )
            for first, value in chunk:
                yield first, value, hashes, start
            if len(chunk) < READ_CHUNK_ENTRIES:
                return
            start = chunk[-1][0] + entry_count(chunk[-1][1])

    def event_batches(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, list[Event]]]:
        """(first seq, events) with from_seq <= seq <= to_seq, a batch at a time, in order.

        The fast way to read: a whole batch is decoded in one call. Raises
        ``CorruptEntry`` for a value that cannot be decoded.
        """
        for first, value, hashes, low in self._values(from_seq, to_seq):
            events = self.decode_stored(first, value, hashes)
            last = first + len(events) - 1
            if first < low or (to_seq is not None and last > to_seq):
                high = len(events) if to_seq is None else to_seq - first + 1
                events = events[max(low - first, 0) : high]
                first = max(first, low)
            if events:
                yield first, events

    def stored_batches(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, bytes, HashTable, int, int]]:
        """What ``event_batches`` gives, undecoded: (first seq, value, hash dictionary, start,
        stop) of each value holding an event in range, whose events ``start`` to ``stop - 1``
        are wanted. ``decode_stored`` decodes one; the compiled fold reads it as it is.
        """
        for first, value, hashes, low in self._values(from_seq, to_seq):
            count = entry_count(value)
            stop = count if to_seq is None else min(count, to_seq - first + 1)
            start = max(low - first, 0)
            if start < stop:
                yield first, value, hashes, start, stop

    @staticmethod
    def decode_stored(first: int, value: bytes, hashes: HashTable) -> list[Event]:
        """All the events of a value ``stored_batches`` gave; ``CorruptEntry`` if it cannot be
        decoded."""
        try:
            return decode_entry(value, hashes)
        except DecodeError as exc:
            raise CorruptEntry(first, str(exc)) from exc

    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, Event]]:
        """(seq, event) pairs with from_seq <= seq <= to_seq, in order."""
        for first, events in self.event_batches(from_seq, to_seq):
            yield from enumerate(events, first)

    def records(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, record) pairs as ``events`` gives, each in its per-event layout (codec.py).

        For tools that look at record bytes. An old record comes as stored; the
        events of a batch are re-encoded, which gives the bytes an old log held. A
        batch that cannot be decoded comes whole, as one record at its first seq,
        so that decoding it fails there, where a reader reports it.
        """
        for first, value, hashes, low in self._values(from_seq, to_seq):
            if value[0] not in BATCH_TAGS:
                yield first, value
                continue
            try:
                events = decode_batch(value, hashes)
            except DecodeError:
                yield first, value
                continue
            for seq, event in enumerate(events, first):
                if seq >= low and (to_seq is None or seq <= to_seq):
                    yield seq, encode_event(event)

    def pruned_to(self) -> int:
        """The last sequence number pruning removed (0: none); live history starts after it."""
        value = self.get_meta(PRUNED_TO)
        return key_seq(value) if value else 0

    def replayable_from(self) -> int:
        """The first sequence number whose state can be rebuilt (0: any, nothing was pruned).

        After pruning, the state at ``seq`` needs a snapshot taken at or after the
        pruned events and at or before ``seq``: the oldest such snapshot is the
        horizon of replays.
        """
        pruned = self.pruned_to()
        if not pruned:
            return 0
        usable = [seq for seq in self.snapshot_seqs() if seq >= pruned]
        return usable[0] if usable else self.last_seq() + 1

    def admin_events(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, Event]]:
        """The kept-forever copies of admin events (``admin``), pruned or not, in order.

        Events of a schema-1 log that was never pruned are not copied there (their
        records are still in ``events``).
        """
        if self._admin is None:
            return
        with self._read_txn() as txn:
            cursor = txn.cursor(self._admin)
            items = []
            if cursor.set_range(seq_key(max(from_seq, 0))):
                for key, record in cursor:
                    seq = key_seq(key)
                    if to_seq is not None and seq > to_seq:
                        break
                    items.append((seq, record))
        for seq, record in items:
            yield seq, decode_event(record)

    def decode(self, value: bytes) -> list[Event]:
        """The events of a value that ``entries`` gave (its hash dictionary is loaded)."""
        return decode_entry(value, self._hashes)

    def entries(self, from_seq: int, limit: int) -> tuple[list[tuple[int, bytes]], int]:
        """Up to ``limit`` (first seq, value) from the one holding ``from_seq``, never the
        newest value of the log; and the seq of the newest snapshot. One short read."""
        with self._read_txn() as txn:
            self._load_hashes(txn)
            cursor = txn.cursor(self._events)
            last_key = cursor.key() if cursor.last() else b""
            found: list[tuple[int, bytes]] = []
            for first, value in _entries_from(txn.cursor(self._events), from_seq, None):
                if seq_key(first) == last_key or len(found) == limit:
                    break
                found.append((first, value))
            snapshots = txn.cursor(self._snapshots)
            snapshot_seq = key_seq(snapshots.key()[:8]) if snapshots.last() else 0
        return found, snapshot_seq

    def dictionary(self, numbers: Sequence[int]) -> list[tuple[int, bytes]]:
        """(number, info hash) of ``numbers``, from the dictionary ``entries`` loaded."""
        return [(number, self._hashes[number]) for number in numbers]

    def stored_run(self, values: list[bytes]) -> StoredRun:
        """The events of ``values`` (consecutive values ``entries`` gave), to be cut again.

        The compiled ``StoredRun`` holds them as the encoder takes them; values it does not
        read exactly as the reference does go to the reference, which decodes them (or
        raises) as ``decode`` would.
        """
        numbers = self._writer_hash_ids()
        if compiled_stored_run is not None:
            run = compiled_stored_run(values, self._hashes, numbers)
            if run is not None:
                return run
        return StoredRunPy([e for value in values for e in self.decode(value)], numbers)

    def hash_numbers(self) -> HashIndex:
        """The dictionary's number of each hash in the log; the writer adds to it as it commits."""
        return self._writer_hash_ids()

    def known_hash(self) -> Callable[[bytes], bytes]:
        """A function giving the dictionary's own object for an info hash (or the hash given).

        A restart restores its torrents' info hashes from the snapshot while the
        dictionary holds them too: two objects of 64 bytes for each info hash, where
        one does. A state restored through this function keys its torrents by the
        dictionary's.
        """
        numbers, hashes = self._writer_hash_ids(), self._hashes

        def known(info_hash: bytes) -> bytes:
            number = numbers.get(info_hash)
            return info_hash if number is None else hashes[number]

        return known

    def get_meta(self, key: bytes) -> bytes | None:
        with self._read_txn() as txn:
            return txn.get(key, db=self._meta)

    def latest_snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """The newest snapshot taken at or before ``max_seq`` (any, if None)."""
        with self._read_txn() as txn:
            seqs = [
                seq
                for seq in _snapshot_seqs(txn, self._snapshots, self._meta)
                if max_seq is None or seq <= max_seq
            ]
            if not seqs:
                return None
            data = _read_snapshot(txn, self._snapshots, seqs[-1])
        return None if data is None else (seqs[-1], data)

    def snapshot_seqs(self) -> list[int]:
        with self._read_txn() as txn:
            return _snapshot_seqs(txn, self._snapshots, self._meta)

    def get_snapshot(self, seq: int) -> bytes | None:
        with self._read_txn() as txn:
            return _read_snapshot(txn, self._snapshots, seq)

    def size_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*.mdb"))

    # -- writing (one thread only) ---------------------------------------

    def _write(self, work: Callable[[lmdb.Transaction], _T]) -> _T:
        """``work(txn)`` in one write transaction, growing the map and redoing on MapFull."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    result = work(txn)
                return result
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def append_records(self, first_seq: int, records: Sequence[bytes]) -> None:
        """Append ``records`` (per-event layout) as first_seq, first_seq+1, ... in one batch.

        What the group-commit writer calls: its events arrive encoded (and so
        checked) one by one, and are stored as one batch value, in one
        transaction (one fsync).
        """
        self.append_batch(first_seq, [decode_event(record) for record in records])

    def append_batch(self, first_seq: int, events: Sequence[Event]) -> None:
        """Append ``events`` as first_seq, first_seq+1, ... : one batch value, one transaction.

        ``first_seq`` must directly follow the last event: the log has no gaps.
        py-lmdb's ``append=True`` returns False instead of raising on an
        out-of-order key, so its result is checked. Info hashes new to the log
        get their numbers in the same transaction, so a batch is never on disk
        without the dictionary entries it refers to.
        """
        self.append_batches(first_seq, [events])

    def append_batches(
        self,
        first_seq: int,
        batches: Sequence[Sequence[Event]],
        meta: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """Append each of ``batches`` as one batch value, from ``first_seq`` on, in one
        transaction (one fsync), as ``append_batch`` does one.

        ``meta`` (key, value) pairs are put in the same transaction: a cluster node
        records the stream position its batches came from, so that log and position
        never disagree after a crash.
        """
        known = self._writer_hash_ids()
        numbered = len(known)  # the list holds every number committed: only this thread adds
        new: dict[bytes, int] = {}

        def intern(info_hash: bytes) -> int:
            number = known.get(info_hash)
            if number is None:
                number = new.get(info_hash)
                if number is None:
                    number = new[info_hash] = numbered + len(new)
            return number

        def work(txn: lmdb.Transaction) -> None:
            new.clear()  # a redo after MapFull starts from what is committed
            cursor = txn.cursor(self._events)
            last = _last_seq(cursor)
            if first_seq != last + 1:
                raise LogError(f"sequence {first_seq} does not follow the log's last, {last}")
            admin = txn.cursor(self._admin)
            seq = first_seq
            for events in batches:
                if not events:
                    continue
                value = self._batch_value(events, intern)
                if not cursor.put(seq_key(seq), value, append=True):
                    raise LogError(f"sequence {seq} is not after the log's last event")
                for offset, event in enumerate(events):
                    if type(event) not in PRUNABLE and not admin.put(
                        seq_key(seq + offset), encode_event(event), append=True
                    ):
                        raise LogError(f"admin event {seq + offset} is not after the last one")
                seq += len(events)
            hash_cursor = txn.cursor(self._hash_db)
            for info_hash, number in new.items():
                if not hash_cursor.put(_HASH_ID.pack(number), info_hash, append=True):
                    raise LogError(f"info hash number {number} is taken")
            if self._schema != SCHEMA_VERSION:
                txn.put(b"schema", SCHEMA_VERSION, db=self._meta)
            for key, value in meta:
                txn.put(key, value, db=self._meta)

        if not meta and not any(batches):
            return
        self._write(work)
        with self._hashes_lock:  # the index reads the new numbers from the list
            if len(self._hashes) == numbered:  # else a reader has read them from the log
                self._hashes.extend(new)
        self._schema = SCHEMA_VERSION

    def _batch_value(self, events: Sequence[Event], intern: HashIntern) -> bytes:
        """``events`` as one value: as is when compaction will re-cut it, compressed otherwise.

        The live writer's small batches are merged (and compressed) by compaction
        soon after their commit; compressing them on the commit path as well took
        most of the writer's encoding time.
        """
        page = self.value_limit * FULL
        if len(events) * self._raw_bytes_per_event <= page * RAW_MARGIN:
            value = encode_batch(events, intern, False)
            self._raw_bytes_per_event = len(value) / len(events)
            if len(value) <= page:
                return value
        return encode_batch(events, intern)  # too big uncompressed: not encoded so first

    def _writer_hash_ids(self) -> HashIndex:
        """Number by hash: the index of ``_hashes``, made once, when the list is read
        whole."""
        with self._hashes_lock:
            if self._hash_ids is None:
                with self._read_txn() as txn:
                    self._hash_ids = HashIndex(self._read_hashes(txn))
            return self._hash_ids

    def append_events(self, events: Sequence[Event]) -> tuple[int, int]:
        """Append one batch; returns (first, last) seq. For single-writer tools and tests."""
        first = self.last_seq() + 1
        self.append_batch(first, events)
        return first, first + len(events) - 1

    def _check_entries(self, txn: lmdb.Transaction, entries: Sequence[tuple[int, bytes]]) -> None:
        """Raise LogError unless ``entries`` are still in the log, consecutive, as read."""
        expected = entries[0][0]
        for first, value in entries:
            if first != expected or txn.get(seq_key(first), db=self._events) != value:
                raise LogError(f"the value at {first} changed under maintenance")
            expected = first + entry_count(value)

    def _keep_admin(self, txn: lmdb.Transaction, entries: Sequence[tuple[int, bytes]]) -> None:
        """Copy the admin records of a schema-1 log into ``admin`` (batches did at append)."""
        for first, value in entries:
            if value[0] not in BATCH_TAGS and type(decode_event(value)) not in PRUNABLE:
                txn.put(seq_key(first), value, db=self._admin)

    def prune(self, entries: Sequence[tuple[int, bytes]]) -> None:
        """Delete ``entries`` (the oldest values of the log), keeping their admin events.

        One transaction: the admin copies of a schema-1 log's records are made,
        the values deleted and ``pruned_to`` moved on, together or not at all.
        """
        if not entries:
            return
        first_key = seq_key(entries[0][0])

        def work(txn: lmdb.Transaction) -> None:
            self._check_entries(txn, entries)
            cursor = txn.cursor(self._events)
            if not cursor.first() or cursor.key() != first_key:
                raise LogError("pruning must start at the oldest value")
            self._keep_admin(txn, entries)
            for first, _ in entries:
                txn.delete(seq_key(first), db=self._events)
            last_first, last_value = entries[-1]
            txn.put(PRUNED_TO, seq_key(last_first + entry_count(last_value) - 1), db=self._meta)

        self._write(work)

    def replace(
        self, entries: Sequence[tuple[int, bytes]], values: Sequence[tuple[int, bytes]]
    ) -> None:
        """Put ``values`` (first seq, value), holding the events of ``entries``, in their place."""
        if not entries:
            return

        def work(txn: lmdb.Transaction) -> None:
            self._check_entries(txn, entries)
            self._keep_admin(txn, entries)
            for first, _ in entries:
                txn.delete(seq_key(first), db=self._events)
            for first, value in values:
                txn.put(seq_key(first), value, db=self._events)

        self._write(work)

    def put_meta(self, key: bytes, value: bytes) -> None:
        self._write(lambda txn: txn.put(key, value, db=self._meta))

    def put_snapshot(self, seq: int, data: bytes) -> None:
        """Store a snapshot in chunks and keep only the newest ``SNAPSHOTS_KEPT``.

        Chunks of ``SNAPSHOT_CHUNK`` bytes fit in leaf pages. One value of a few
        MiB would need that many *contiguous* free pages, which a freelist
        fragmented by the writer's single pages rarely has: every snapshot then
        grew the file (with ``snapshot_interval = 2``, 18 MB to 63 MB in 20 s).
        The chunks go in ``SNAPSHOT_TXN_CHUNKS`` at a time, the snapshot marked
        unfinished until the last is in, and old ones are deleted the same way.
        """
        self._store_snapshot(seq, io.BytesIO(data))

    def put_snapshot_file(self, seq: int, path: Path) -> None:
        """``put_snapshot`` of the bytes in the file at ``path``, read a chunk at a time."""
        with path.open("rb") as source:
            self._store_snapshot(seq, source)

    def _store_snapshot(self, seq: int, source: BinaryIO) -> None:
        """One store at a time (a second would sweep the first's unfinished chunks away)."""
        with self._snapshot_lock:
            self._store_snapshot_parts(seq, source)
            with self._read_txn() as txn:
                old = _snapshot_seqs(txn, self._snapshots, self._meta)[:-SNAPSHOTS_KEPT]
            self._write(lambda txn: self._mark_unfinished(txn, old))
            self._delete_unfinished()

    def _store_snapshot_parts(self, seq: int, source: BinaryIO) -> None:
        prefix = seq_key(seq)
        self._write(lambda txn: self._mark_unfinished(txn, [seq]))
        self._delete_chunks(seq)  # a snapshot of this seq stored before, or cut short
        index = offset = 0
        last = False
        while not last:
            index, offset, last = self._write(
                partial(self._put_chunks, prefix=prefix, source=source, index=index, offset=offset)
            )
        self._write(partial(self._unmark, seq=seq))

    def _put_chunks(
        self, txn: lmdb.Transaction, prefix: bytes, source: BinaryIO, index: int, offset: int
    ) -> tuple[int, int, bool]:
        """Up to ``SNAPSHOT_TXN_CHUNKS`` chunks, chunk ``index`` from byte ``offset`` of
        ``source`` on (a redo after MapFull starts there again); where the next starts,
        and whether ``source`` is used up."""
        source.seek(offset)
        cursor = txn.cursor(self._snapshots)
        for _ in range(SNAPSHOT_TXN_CHUNKS):
            chunk = source.read(SNAPSHOT_CHUNK)
            if not chunk and index:
                return index, offset, True
            key = prefix + _CHUNK.pack(index)
            # Appending fills each leaf page; a plain put splits pages in half, leaving
            # one chunk per page. An older seq than one stored cannot append.
            if not cursor.put(key, chunk, append=True):
                cursor.put(key, chunk)
            index, offset = index + 1, offset + len(chunk)
            if len(chunk) < SNAPSHOT_CHUNK:
                return index, offset, True
        return index, offset, False

    def _mark_unfinished(self, txn: lmdb.Transaction, seqs: Sequence[int]) -> None:
        for seq in seqs:
            txn.put(SNAPSHOT_UNFINISHED + seq_key(seq), b"", db=self._meta)

    def _unmark(self, txn: lmdb.Transaction, seq: int) -> None:
        txn.delete(SNAPSHOT_UNFINISHED + seq_key(seq), db=self._meta)

    def _delete_unfinished(self) -> None:
        """Delete the snapshots marked unfinished, then their marks."""
        with self._read_txn() as txn:
            seqs = _snapshot_seqs(txn, self._snapshots, self._meta, unfinished=True)
        for seq in seqs:
            self._delete_chunks(seq)
            self._write(partial(self._unmark, seq=seq))

    def _delete_chunks(self, seq: int) -> None:
        """Delete snapshot ``seq``'s chunks, ``SNAPSHOT_TXN_CHUNKS`` per transaction."""
        while not self._write(
            lambda txn: _delete_snapshot(txn.cursor(self._snapshots), seq, SNAPSHOT_TXN_CHUNKS)
        ):
            pass

    def delete_snapshots(self) -> None:
        self._write(lambda txn: txn.drop(self._snapshots, delete=False))
