"""The append-only event log: records in LMDB, keyed by 8-byte big-endian sequence numbers.

One LMDB environment (a directory) holds three named databases:

* ``events``    seq -> record bytes (``udpt.events.codec``); sequence numbers start at 1;
* ``snapshots`` seq -> projection snapshot taken after applying event ``seq``;
* ``meta``      schema version, the connection-id secret, ...

Writes happen on one thread only (``udpt.events.writer``); any number of
readers, in this process or others, may read at the same time (LMDB MVCC).
The map grows on demand: a full map never stops the log.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import lmdb

from udpt.events.codec import decode_event, encode_event
from udpt.events.types import Event

__all__ = ["SCHEMA_VERSION", "EventLog", "LogError"]

SCHEMA_VERSION = b"1"
SNAPSHOTS_KEPT = 2
_SEQ = struct.Struct(">Q")


class LogError(RuntimeError):
    """The log cannot be opened or would be damaged by the requested write."""


def seq_key(seq: int) -> bytes:
    return _SEQ.pack(seq)


def key_seq(key: bytes) -> int:
    return _SEQ.unpack(key)[0]


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
                max_dbs=4,
                sync=sync,
                readonly=readonly,
                metasync=sync,
                max_readers=256,
            )
        except lmdb.Error as exc:
            raise LogError(f"{self.path}: cannot open the log: {exc}") from exc
        self.env.reader_check()
        create = not readonly
        self._events = self.env.open_db(b"events", create=create)
        self._snapshots = self.env.open_db(b"snapshots", create=create)
        self._meta = self.env.open_db(b"meta", create=create)
        self._check_schema()

    def _check_schema(self) -> None:
        version = self.get_meta(b"schema")
        if version is None and not self.readonly:
            self.put_meta(b"schema", SCHEMA_VERSION)
        elif version not in (None, SCHEMA_VERSION):
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

    def _read_txn(self) -> lmdb.Transaction:
        """A read transaction, adopting a map another process has grown meanwhile."""
        try:
            return self.env.begin()
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin()

    def last_seq(self) -> int:
        """The sequence number of the last committed event (0 for an empty log)."""
        with self._read_txn() as txn:
            cursor = txn.cursor(self._events)
            return key_seq(cursor.key()) if cursor.last() else 0

    def first_seq(self) -> int:
        with self._read_txn() as txn:
            cursor = txn.cursor(self._events)
            return key_seq(cursor.key()) if cursor.first() else 0

    def count(self) -> int:
        with self._read_txn() as txn:
            return txn.stat(self._events)["entries"]

    def records(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, record) pairs with from_seq <= seq <= to_seq, in order, from one read snapshot."""
        with self._read_txn() as txn:
            cursor = txn.cursor(self._events)
            if not cursor.set_range(seq_key(max(from_seq, 0))):
                return
            stop = None if to_seq is None else seq_key(to_seq)
            for key, value in cursor:
                if stop is not None and key > stop:
                    return
                yield key_seq(key), value

    def events(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, Event]]:
        for seq, record in self.records(from_seq, to_seq):
            yield seq, decode_event(record)

    def get_meta(self, key: bytes) -> bytes | None:
        with self._read_txn() as txn:
            return txn.get(key, db=self._meta)

    def latest_snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """The newest snapshot taken at or before ``max_seq`` (any, if None)."""
        with self._read_txn() as txn:
            cursor = txn.cursor(self._snapshots)
            if max_seq is None:
                found = cursor.last()
            elif cursor.set_range(seq_key(max_seq + 1)):
                found = cursor.prev()
            else:
                found = cursor.last()
            return (key_seq(cursor.key()), cursor.value()) if found else None

    def snapshot_seqs(self) -> list[int]:
        with self._read_txn() as txn:
            return [key_seq(k) for k in txn.cursor(self._snapshots).iternext(values=False)]

    def get_snapshot(self, seq: int) -> bytes | None:
        with self._read_txn() as txn:
            return txn.get(seq_key(seq), db=self._snapshots)

    def size_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*.mdb"))

    # -- writing (one thread only) ---------------------------------------

    def _write(self, work: Callable[[lmdb.Transaction], object]) -> None:
        """Run ``work(txn)`` in one write transaction, growing the map and redoing on MapFull."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    work(txn)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def append_records(self, first_seq: int, records: Sequence[bytes]) -> None:
        """Append ``records`` as first_seq, first_seq+1, ... in one transaction (one fsync).

        ``first_seq`` must directly follow the last event: the log has no gaps. And
        py-lmdb's ``append=True`` returns False instead of raising on an out-of-order
        key, so the count of records written is checked too: a short count aborts.
        """
        items = [(seq_key(first_seq + i), record) for i, record in enumerate(records)]

        def work(txn: lmdb.Transaction) -> None:
            cursor = txn.cursor(self._events)
            last = key_seq(cursor.key()) if cursor.last() else 0
            if first_seq != last + 1:
                raise LogError(f"sequence {first_seq} does not follow the log's last, {last}")
            _consumed, added = cursor.putmulti(items, append=True)
            if added != len(items):
                raise LogError(f"sequence {first_seq} is not after the log's last event")

        self._write(work)

    def append_events(self, events: Sequence[Event]) -> tuple[int, int]:
        """Encode and append; returns (first, last) seq. For single-writer tools and tests."""
        first = self.last_seq() + 1
        self.append_records(first, [encode_event(e) for e in events])
        return first, first + len(events) - 1

    def put_meta(self, key: bytes, value: bytes) -> None:
        self._write(lambda txn: txn.put(key, value, db=self._meta))

    def put_snapshot(self, seq: int, data: bytes) -> None:
        """Store a snapshot and keep only the newest ``SNAPSHOTS_KEPT``."""

        def work(txn: lmdb.Transaction) -> None:
            txn.put(seq_key(seq), data, db=self._snapshots)
            keys = list(txn.cursor(self._snapshots).iternext(values=False))
            for key in keys[:-SNAPSHOTS_KEPT]:
                txn.delete(key, db=self._snapshots)

        self._write(work)

    def delete_snapshots(self) -> None:
        self._write(lambda txn: txn.drop(self._snapshots, delete=False))
