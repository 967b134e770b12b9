"""A group commit as one compact value: the batch codec (pure: bytes in, events out).

One LMDB value holds the events of one group commit. Its key is the batch's
first sequence number; event ``i`` of the batch is ``first_seq + i``. Layout,
version 1 (every integer big-endian)::

    header   B  tag: 0xB1 = body is zlib-compressed, 0xB0 = body stored as is
             I  count: events in the batch
             q  at_ms of the batch's last event (pruning reads it without decoding)
    body     I  n: accepted announces; the other ``count - n`` events are "others"
             -- only when both kinds are present --
             count bytes: 0 = the next announce, 1 = the next other, in log order
             -- only when there are others --
             per other: I length, then its record in the per-event layout (codec.py)
             -- only when n > 0: the announces, as columns --
             q  at_ms of the first announce
             column  at_ms deltas from the announce before (the first is 0), or
                     the absolute times if a delta is negative or too large
             B  hash mode: 0 = local table, 1 = ids of the log's hash dictionary
             I  k, then k * 20 bytes (the local table; k = 0 in mode 1)
             column  hash references, one per announce
             I  p: distinct peers (ip, port, peer_id, key), in order of first use
             B  1 if peer ``i`` is announce ``i`` (no peer repeats), else 0 + column
             column  of peer references
             p bytes: 1 if that peer's ip is IPv6 (16 bytes), 0 if IPv4
             the IPv4 addresses (4 bytes each), then the IPv6 ones (16), shuffled
             column  ports; p * 20 bytes of peer ids, shuffled; column  keys
             column  announce events (0..3); columns uploaded, downloaded, left

A *column* is one byte naming its ``struct`` format (``B H I Q`` unsigned, ``q``
signed: the narrowest that holds every value), then the values, *shuffled*:
byte 0 of every value, then byte 1, and so on. Shuffling puts the bytes that
barely change (the high bytes of counters and times, the client prefix of peer
ids) next to each other, where zlib takes them for almost nothing.

Why this shape: an announce costs 71 bytes of fields, most of them repeated or
predictable. Info hashes repeat across the whole log but rarely inside one
small batch (a daemon at 15,000 announces/s commits about 36 per batch), so
the log keeps one dictionary of info hashes (``udpt.events.log``) and batches
refer to it by number (mode 1); a batch that must stand alone (the archive)
carries its own table (mode 0). Peers are interned per batch only: a peer
announces about once an interval, so a log-wide table would grow with every
peer ever seen. Counters are columns without deltas for the same reason: a
peer seldom announces twice in one batch. Events other than accepted
announces are rare, so they keep their per-event records.

Decoding runs at C speed but for one tuple per event: zlib, slice assignment
to unshuffle, one ``struct.unpack`` per column, then ``zip`` and ``map``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from itertools import accumulate, pairwise
from typing import Protocol

from udpt.core import COMPILED
from udpt.events.codec import DecodeError, decode_event, encode_event
from udpt.events.types import AnnounceAccepted, AnnounceEvent, Event

__all__ = [
    "BATCH_TAGS",
    "HashIntern",
    "HashTable",
    "StoredRun",
    "StoredRunPy",
    "batch_count",
    "batch_last_ms",
    "compiled_stored_run",
    "decode_batch",
    "encode_batch",
    "hash_numbers",
]

TAG_BATCH_RAW = 0xB0
TAG_BATCH_ZLIB = 0xB1
BATCH_TAGS = frozenset((TAG_BATCH_RAW, TAG_BATCH_ZLIB))

ZLIB_LEVEL = 1
"""zlib's fastest level. Compaction compresses every event once or more, on a thread that
shares the tracker's core: on page-sized batches level 1 takes 0.9 µs an event where
level 6 took 1.45 µs, for 2 % more bytes (BENCHMARKS.md, "Compaction's zlib level")."""
_HEADER = struct.Struct("!BIq")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_LOCAL, _GLOBAL = 0, 1
_WIDTHS = {ord("B"): 1, ord("H"): 2, ord("I"): 4, ord("Q"): 8, ord("q"): 8}
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_ANNOUNCE_EVENTS = tuple(AnnounceEvent)
_new_announce = partial(tuple.__new__, AnnounceAccepted)


class HashTable(Protocol):
    """The log's hash dictionary by number (a list), or the part of it an archive file holds."""

    def __len__(self) -> int: ...
    def __getitem__(self, number: int, /) -> bytes: ...


HashIntern = Callable[[bytes], int]
"""Gives an info hash its number in the log's dictionary (assigning one if new)."""


class HashNumbers(Protocol):
    """The log's number of each info hash it has numbered (``hash_index.HashIndex``)."""

    def __getitem__(self, info_hash: bytes, /) -> int: ...


class StoredRun(Protocol):
    """The events of a run of stored values, to be encoded again in other cuts: what
    compaction (``udpt.events.maintenance``) re-cuts. ``StoredRunPy`` is the reference,
    ``udpt._core.StoredRun`` its compiled twin (``EventLog.stored_run`` picks)."""

    def __len__(self) -> int: ...
    def encode(self, start: int, count: int, /) -> bytes: ...


class StoredRunPy:
    """The reference ``StoredRun``: the decoded events, and ``encode_batch`` of a slice.

    A slice is encoded with the hashes numbered by ``numbers`` (the log's dictionary),
    or with a table of its own when one of them has no number yet.
    """

    def __init__(self, events: list[Event], numbers: HashNumbers) -> None:
        self._events = events
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._events)

    def encode(self, start: int, count: int, /) -> bytes:
        """The value of events ``[start, start + count)``, compressed."""
        if start < 0 or count < 1 or start + count > len(self._events):
            raise ValueError("not a slice of the run")
        events = self._events[start : start + count]
        try:
            return encode_batch(events, self._numbers.__getitem__)
        except KeyError:
            return encode_batch(events)


# -- encoding ------------------------------------------------------------------


def _shuffle(packed: bytes, width: int) -> bytes:
    if width == 1:
        return packed
    return b"".join([packed[j::width] for j in range(width)])


def _column(out: list[bytes], values: Sequence[int]) -> None:
    """Append ``values`` as a column: the narrowest format, then the shuffled bytes."""
    low, high = (min(values), max(values)) if values else (0, 0)
    if low < 0:
        if low < _I64_MIN or high > _I64_MAX:
            raise ValueError("a value does not fit in 64 signed bits")
        code = "q"
    elif high < 1 << 8:
        code = "B"
    elif high < 1 << 16:
        code = "H"
    elif high < 1 << 32:
        code = "I"
    elif high <= _I64_MAX:
        code = "Q"
    else:
        raise ValueError("a value does not fit in 64 signed bits")
    out.append(code.encode())
    out.append(_shuffle(struct.pack(f"!{len(values)}{code}", *values), _WIDTHS[ord(code)]))


def _fixed_column(out: list[bytes], values: Sequence[int], code: str, name: str) -> None:
    """A column of a field whose range is fixed by its per-event layout (key, port)."""
    try:
        packed = struct.pack(f"!{len(values)}{code}", *values)
    except struct.error as exc:
        raise ValueError(f"{name}: {exc}") from exc
    out.append(code.encode())
    out.append(_shuffle(packed, _WIDTHS[ord(code)]))


def encode_batch(
    events: Sequence[Event], intern: HashIntern | None = None, compress: bool = True
) -> bytes:
    """The value holding ``events`` (at least one), in log order.

    With ``intern``, info hashes of announces are stored as numbers of the log's
    dictionary (``decode_batch`` then needs that dictionary); without, the batch
    carries its own table. ``compress=False`` stores the body as is: the live
    writer's small batches are re-cut (and compressed) by compaction soon after,
    so compressing them on the commit path too would be paid twice. Raises
    ValueError for an event the per-event layout could not hold either, so both
    layouts accept exactly the same events.
    """
    if not events:
        raise ValueError("a batch holds at least one event")
    try:
        return _encode(events, intern, compress)
    except struct.error as exc:
        raise ValueError(str(exc)) from exc


def _encode(events: Sequence[Event], intern: HashIntern | None, compress: bool) -> bytes:
    announces = [e for e in events if type(e) is AnnounceAccepted]
    out: list[bytes] = [_U32.pack(len(announces))]
    if len(announces) != len(events):
        if announces:
            out.append(bytes(0 if type(e) is AnnounceAccepted else 1 for e in events))
        for event in events:
            if type(event) is not AnnounceAccepted:
                record = encode_event(event)
                out.append(_U32.pack(len(record)))
                out.append(record)
    if announces:
        _encode_announces(out, announces, intern)
    body = b"".join(out)
    compressed = zlib.compress(body, ZLIB_LEVEL) if compress else body
    tag, payload = (
        (TAG_BATCH_ZLIB, compressed) if len(compressed) < len(body) else (TAG_BATCH_RAW, body)
    )
    return _HEADER.pack(tag, len(events), events[-1].at_ms) + payload


def _encode_announces(
    out: list[bytes], announces: list[AnnounceAccepted], intern: HashIntern | None
) -> None:
    times = [a.at_ms for a in announces]
    out.append(_I64.pack(times[0]))
    deltas = [0, *(b - a for a, b in pairwise(times))]
    if min(deltas) >= 0 and max(deltas) < 1 << 32:
        _column(out, deltas)  # B, H or I: never q, which marks absolute times
    else:
        _fixed_column(out, times, "q", "at_ms")

    refs: list[int] = []
    if intern is None:
        table: dict[bytes, int] = {}
        for a in announces:
            _check_announce(a)
            refs.append(table.setdefault(a.info_hash, len(table)))
        out.append(bytes((_LOCAL,)))
        out.append(_U32.pack(len(table)))
        out.append(b"".join(table))
    else:
        for a in announces:
            _check_announce(a)
            refs.append(intern(a.info_hash))
        out.append(bytes((_GLOBAL,)))
        out.append(_U32.pack(0))
    _column(out, refs)

    peers: dict[tuple[bytes, int, bytes, int], int] = {}
    peer_refs = [peers.setdefault((a.ip, a.port, a.peer_id, a.key), len(peers)) for a in announces]
    out.append(_U32.pack(len(peers)))
    if len(peers) == len(announces):
        out.append(b"\x01")
    else:
        out.append(b"\x00")
        _column(out, peer_refs)
    ips = [ip for ip, _, _, _ in peers]
    out.append(bytes(len(ip) == 16 for ip in ips))
    out.append(_shuffle(b"".join(ip for ip in ips if len(ip) == 4), 4))
    out.append(_shuffle(b"".join(ip for ip in ips if len(ip) == 16), 16))
    _fixed_column(out, [port for _, port, _, _ in peers], "H", "port")
    out.append(_shuffle(b"".join(peer_id for _, _, peer_id, _ in peers), 20))
    _fixed_column(out, [key for _, _, _, key in peers], "I", "key")

    _column(out, [a.event for a in announces])
    _column(out, [a.uploaded for a in announces])
    _column(out, [a.downloaded for a in announces])
    _column(out, [a.left for a in announces])


def _check_announce(a: AnnounceAccepted) -> None:
    """What ``struct`` would not catch: wrong-sized bytes would shift every column after."""
    if len(a.info_hash) != 20 or len(a.peer_id) != 20:
        raise ValueError("info_hash and peer_id must be 20 bytes")
    if len(a.ip) not in (4, 16):
        raise ValueError("ip must be 4 or 16 bytes")
    if not 0 <= a.event <= 3:
        raise ValueError(f"announce event {a.event} is not 0..3")


# -- decoding ------------------------------------------------------------------


def batch_count(value: bytes | memoryview) -> int:
    """How many events the batch ``value`` holds (reads the header only)."""
    count: int = _U32.unpack_from(value, 1)[0]
    return count


def batch_last_ms(value: bytes) -> int:
    """The time of the batch's last event (reads the header only)."""
    at_ms: int = _I64.unpack_from(value, 5)[0]
    return at_ms


class _Reader:
    """A cursor over the body; every read checks that the bytes are there."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        start = self.offset
        end = start + size
        if end > len(self.data):
            raise DecodeError("batch is shorter than its layout")
        self.offset = end
        return self.data[start:end]

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def unshuffle(self, count: int, width: int) -> bytes:
        raw = self.take(count * width)
        if width == 1 or count == 0:
            return raw
        out = bytearray(len(raw))
        for j in range(width):
            out[j::width] = raw[j * count : (j + 1) * count]
        return bytes(out)

    def column(self, count: int) -> tuple[int, ...]:
        code = self.take(1)[0]
        width = _WIDTHS.get(code)
        if width is None:
            raise DecodeError(f"unknown column format 0x{code:02x}")
        return struct.unpack(f"!{count}{chr(code)}", self.unshuffle(count, width))


def decode_batch(value: bytes, hashes: HashTable = ()) -> list[Event]:
    """The events of the batch ``value``, in order; raises DecodeError if it cannot.

    ``hashes`` is the log's info-hash dictionary (by number), needed by batches
    that refer to it.
    """
    if len(value) < _HEADER.size or value[0] not in BATCH_TAGS:
        raise DecodeError("not a batch")
    tag, count, _ = _HEADER.unpack_from(value)
    payload = value[_HEADER.size :]
    if tag == TAG_BATCH_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise DecodeError(f"batch does not decompress: {exc}") from exc
    try:
        events = _decode_body(_Reader(payload), count, hashes)
    except (struct.error, LookupError, ValueError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"batch is damaged: {exc}") from exc
    return events


def hash_numbers(value: bytes) -> set[int]:
    """The numbers of the log's hash dictionary that a batch refers to (none in mode 0).

    Reads the body only up to the hash references: the archive copies batches
    as they are, with just the dictionary entries they need.
    """
    _, count, _ = _HEADER.unpack_from(value)
    body = _Reader(
        zlib.decompress(value[_HEADER.size :])
        if value[0] == TAG_BATCH_ZLIB
        else value[_HEADER.size :]
    )
    n = body.u32()
    if 0 < n < count:
        body.take(count)
    for _ in range(count - n):
        body.take(body.u32())
    if not n:
        return set()
    body.take(8)
    body.column(n)
    mode = body.take(1)[0]
    body.take(20 * body.u32())
    refs = body.column(n)
    return set(refs) if mode == _GLOBAL else set()


def _decode_body(body: _Reader, count: int, hashes: HashTable) -> list[Event]:
    n = body.u32()
    if n > count:
        raise DecodeError("batch says it holds more announces than events")
    kinds = body.take(count) if 0 < n < count else b""
    others = []
    for _ in range(count - n):
        others.append(decode_event(body.take(body.u32())))
    announces = _decode_announces(body, n, hashes) if n else []
    if body.offset != len(body.data):
        raise DecodeError("batch has bytes after its layout")
    if not others:
        return announces
    if not announces:
        return others
    if kinds.count(0) != n:
        raise DecodeError("batch's kinds do not match its counts")
    next_announce, next_other = iter(announces).__next__, iter(others).__next__
    return [next_other() if kind else next_announce() for kind in kinds]


def _decode_announces(body: _Reader, n: int, hashes: HashTable) -> list[Event]:
    first_ms = _I64.unpack(body.take(8))[0]
    code = body.data[body.offset] if body.offset < len(body.data) else 0
    times = body.column(n)
    if code != ord("q"):
        times = tuple(accumulate(times, initial=first_ms))[1:]

    mode = body.take(1)[0]
    local = body.take(20 * body.u32())
    refs = body.column(n)
    if mode == _LOCAL:
        table: HashTable = [local[i : i + 20] for i in range(0, len(local), 20)]
    elif mode == _GLOBAL and not local:
        table = hashes
    else:
        raise DecodeError(f"unknown hash mode {mode}")
    if refs and max(refs) >= len(table):
        raise DecodeError("batch refers to an info hash it does not know")
    info_hashes = map(table.__getitem__, refs)

    p = body.u32()
    identity = body.take(1)[0]
    peer_refs = None if identity else body.column(n)
    if (identity and p != n) or (peer_refs is not None and peer_refs and max(peer_refs) >= p):
        raise DecodeError("batch refers to a peer it does not hold")
    families = body.take(p)
    v6 = families.count(1)
    if v6 + families.count(0) != p:
        raise DecodeError("bad address family")
    v4_blob = body.unshuffle(p - v6, 4)
    v6_blob = body.unshuffle(v6, 16)
    ips4 = [v4_blob[i : i + 4] for i in range(0, len(v4_blob), 4)]
    if v6:
        ips6 = iter([v6_blob[i : i + 16] for i in range(0, len(v6_blob), 16)]).__next__
        next4 = iter(ips4).__next__
        ips = [ips6() if family else next4() for family in families]
    else:
        ips = ips4
    ports = body.column(p)
    id_blob = body.unshuffle(p, 20)
    peer_ids = [id_blob[i : i + 20] for i in range(0, len(id_blob), 20)]
    keys = body.column(p)

    codes = body.column(n)
    if codes and max(codes) > 3:
        raise DecodeError("announce event is not 0..3")
    events = map(_ANNOUNCE_EVENTS.__getitem__, codes)
    uploaded, downloaded, left = body.column(n), body.column(n), body.column(n)
    if peer_refs is None:
        peer_ips, peer_ports, peer_idents, peer_keys = ips, ports, peer_ids, keys
    else:
        peer_ips = list(map(ips.__getitem__, peer_refs))
        peer_ports = tuple(map(ports.__getitem__, peer_refs))
        peer_idents = list(map(peer_ids.__getitem__, peer_refs))
        peer_keys = tuple(map(keys.__getitem__, peer_refs))
    return list(
        map(
            _new_announce,
            zip(
                times,
                info_hashes,
                peer_ips,
                peer_ports,
                peer_idents,
                peer_keys,
                events,
                uploaded,
                downloaded,
                left,
                strict=True,
            ),
        )
    )


# The reference stays importable under these names; with the compiled core selected
# (udpt/core.py), the public names are its drop-ins (docs/DESIGN.md §11).
encode_batch_py = encode_batch
decode_batch_py = decode_batch
compiled_stored_run: Callable[[list[bytes], HashTable, HashNumbers], StoredRun | None] | None = None
"""``udpt._core.stored_run`` when the compiled core is selected: the ``StoredRun`` of
stored values, or None for values it leaves to ``StoredRunPy``."""

if COMPILED:
    from udpt import _core

    _core.bind_batch(encode_event, decode_event, encode_batch_py, decode_batch_py)
    encode_batch = _core.encode_batch
    decode_batch = _core.decode_batch
    compiled_stored_run = _core.stored_run
