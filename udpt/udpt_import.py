"""Read a UDPT database file and import its torrents into a udpt event log.

UDPT 3.x keeps its torrents (flag and ``completed`` counter; peers are not saved)
in ``db_path``, a bzip2-compressed file in one of two JSON shapes:

* JSON lines (UDPT 3.1): ``{"info_hash": "<40 hex>", "entry": {"is_flagged": .., "completed": ..}}``
  per line;
* one JSON object (older): ``{"<40 hex>": {"is_flagged": .., "completed": ..}, ...}``.

Since 3.1.1 UDPT never finishes the bzip2 stream: it flushes the compressor and
closes the file. A flush ends the current bzip2 block but leaves its last few
bits (the tail of the previous code and the whole end-of-block code, under 8 + 20
bits) in the compressor, so no decompressor can decode that block, and a file
that fits in one block (most databases) reads back as nothing at all. This reader
decodes the complete blocks, then rebuilds the unfinished last block: it reads the
block's Huffman table to get the end-of-block code, tries the at most 255 values
the other missing bits can take, and keeps the candidate that decodes with the
block's own CRC. A stream cut anywhere else keeps what decodes before the cut.
"""

from __future__ import annotations

import bz2
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO, Final

from udpt.clock import EventClock
from udpt.events.log import EventLog, LogError
from udpt.events.types import TorrentImported

__all__ = [
    "JSON_LINES",
    "SINGLE_OBJECT",
    "UdptDatabaseError",
    "UdptReadReport",
    "UdptTorrent",
    "main_import",
    "read_udpt_database",
]

JSON_LINES: Final = "json-lines"
SINGLE_OBJECT: Final = "single-object"

# A decompression error discards the output of the call that meets it: small reads
# keep the blocks that end just before damage.
_READ_BYTES: Final = 1 << 12
# A bzip2 block holds at most 900 000 symbols of at most 20 bits: the last block
# starts within the last 2.3 MB of the file.
_LAST_BLOCK_SEARCH_BYTES: Final = 3 << 20
_BLOCK_MAGIC: Final = 0x314159265359
_END_MAGIC: Final = 0x177245385090
_MAX_COMPLETED: Final = (1 << 64) - 1  # what the event log stores
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_JSON_SPACE: Final = " \t\r\n"
_JSON_SPACE_BYTES: Final = _JSON_SPACE.encode()
_MISSING: Final = object()
_FIRST_KEY: Final = re.compile(rb'\{[ \t\r\n]*"((?:[^"\\]|\\.)*)"')


class UdptDatabaseError(Exception):
    """The file cannot be read as a UDPT database at all; the message names the file."""


@dataclass(frozen=True, slots=True)
class UdptTorrent:
    """One torrent as UDPT saved it."""

    info_hash: bytes
    is_flagged: bool
    completed: int


@dataclass(frozen=True, slots=True)
class UdptReadReport:
    """What a UDPT database held, and what could not be taken from it.

    ``truncated`` is True when records may be missing: the stream ends early or is
    damaged. A stream that UDPT left unfinished but whose last block was rebuilt is
    not truncated; ``stream_note`` says so, and describes any other oddity of the
    bzip2 stream in one sentence (empty when the stream ended normally).
    """

    torrents: tuple[UdptTorrent, ...]
    skipped: tuple[str, ...]  # one human reason per record left out
    truncated: bool
    format: str  # JSON_LINES or SINGLE_OBJECT
    stream_note: str = ""


def read_udpt_database(path: str | Path) -> UdptReadReport:
    """Read every torrent that can be read from UDPT's ``db_path`` file.

    Bad records are skipped with a reason; a duplicated info hash keeps its last
    record. Raises ``UdptDatabaseError`` for a file that cannot be opened or is
    not bzip2.
    """
    path = Path(path)
    stream = _StreamEnd()
    records = _Records()
    try:
        with path.open("rb") as file:
            size = _check_bzip2_header(path, file)
            chunks = _decompressed_chunks(file, size, stream)
            format_, chunks = _detect_format(chunks)
            if format_ == JSON_LINES:
                _read_json_lines(chunks, records, stream)
            else:
                _read_single_object(b"".join(chunks), records, stream)
    except OSError as error:
        raise UdptDatabaseError(f"{path}: cannot read: {error.strerror or error}") from error
    return UdptReadReport(
        torrents=records.torrents(),
        skipped=tuple(records.skipped),
        truncated=stream.truncated,
        format=format_,
        stream_note=stream.note,
    )


def main_import(
    file: str | Path,
    db: str | Path,
    actor: str = "import",
    *,
    clock: EventClock | None = None,
) -> int:
    """``udpt import-udpt FILE --db DIR``: append one ``TorrentImported`` per torrent.

    Prints a report to stdout. Returns 0 when torrents were imported or the
    database was validly empty, 1 when nothing could be read from it, 2 when the
    file cannot be read or the log cannot take the import (it must be new: a
    second import, or one into a running tracker's log, would overwrite counters
    that moved on since).
    """
    try:
        report = read_udpt_database(file)
    except UdptDatabaseError as error:
        print(f"udpt: {error}", file=sys.stderr)
        return 2
    print(f"Read {file} ({report.format}).")
    _print_problems(report)

    if not report.torrents:
        if report.truncated or report.skipped:
            print(f"Nothing imported: no torrent could be read from {file}.")
            return 1
        print(f"Nothing imported: {file} holds no torrents.")
        return 0

    at_ms = (clock or EventClock()).now_ms()
    events = [
        TorrentImported(at_ms, torrent.info_hash, torrent.is_flagged, torrent.completed, actor)
        for torrent in report.torrents
    ]
    try:
        with EventLog(db) as log:
            if log.last_seq():
                print(
                    f"udpt: {db}: the log already holds events; import into a new directory",
                    file=sys.stderr,
                )
                return 2
            first, last = log.append_events(events)
    except (LogError, OSError) as error:
        print(f"udpt: {db}: cannot write the log: {error}", file=sys.stderr)
        return 2

    flagged = sum(torrent.is_flagged for torrent in report.torrents)
    completed = sum(torrent.completed for torrent in report.torrents)
    print(
        f"Imported {_count(len(report.torrents), 'torrent')} into {db} (events {first}-{last}): "
        f"{flagged} flagged, {completed} completed downloads in all."
    )
    return 0


def _print_problems(report: UdptReadReport) -> None:
    if report.stream_note:
        print(f"Note: {report.stream_note}.")
    if report.skipped:
        print(f"Skipped {_count(len(report.skipped), 'record')}:")
        for reason in report.skipped:
            print(f"  {reason}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# -- the bzip2 stream ------------------------------------------------------


class _StreamEnd:
    """How the bzip2 stream ended; known once its chunks have all been read."""

    __slots__ = ("note", "truncated")

    def __init__(self) -> None:
        self.truncated = False
        self.note = ""


def _check_bzip2_header(path: Path, file: BinaryIO) -> int:
    """The file's size, after checking that it is empty or starts like a bzip2 stream.

    UDPT 3.1.1 writes an empty database as the 3 bytes ``BZh``: even the block
    size digit stays in the compressor.
    """
    size = os.fstat(file.fileno()).st_size
    head = file.read(4)
    file.seek(0)
    if head and not (head[:3] == b"BZh" and (len(head) == 3 or head[3:] in b"123456789")):
        raise UdptDatabaseError(
            f"{path}: not a bzip2 file (a UDPT database is bzip2-compressed JSON)"
        )
    return size


def _decompressed_chunks(file: BinaryIO, size: int, stream: _StreamEnd) -> Iterator[bytes]:
    decompressor = bz2.BZ2Decompressor()
    consumed = 0
    while not decompressor.eof:
        chunk = file.read(_READ_BYTES)
        if not chunk:
            break
        try:
            data = decompressor.decompress(chunk)
        except OSError:
            stream.truncated = True
            stream.note = (
                f"the bzip2 stream is damaged between bytes {consumed} and "
                f"{consumed + len(chunk)}; only what came before was read"
            )
            return
        consumed += len(chunk)
        if data:
            yield data
    if decompressor.eof:
        ignored = len(decompressor.unused_data) + size - consumed
        if ignored:
            stream.note = f"{ignored} bytes after the end of the bzip2 stream were ignored"
        return
    if size <= 4:  # a header alone: no block was ever started, nothing can be missing
        return
    file.seek(max(0, size - _LAST_BLOCK_SEARCH_BYTES))
    last_block = _rebuild_unfinished_block(file.read())
    if last_block is None:
        stream.truncated = True
        stream.note = "the bzip2 stream ends early: records after its last complete block were lost"
        return
    stream.note = (
        "the bzip2 stream was left unfinished, as UDPT 3.1.1 and later leave it; "
        "its last block was rebuilt and read in full"
    )
    yield last_block


class _BadBlock(Exception):
    """Bits that are not the start of a bzip2 block."""


class _BitReader:
    """Most-significant-bit-first reading from ``data``, starting at bit ``position``."""

    __slots__ = ("data", "end", "position")

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        self.end = len(data) * 8

    def bit(self) -> int:
        if self.position >= self.end:
            raise _BadBlock("ends inside its header")
        position = self.position
        self.position += 1
        return (self.data[position >> 3] >> (7 - (position & 7))) & 1

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value


def _rebuild_unfinished_block(tail: bytes) -> bytes | None:
    """The data of the last block in ``tail`` if that block lacks only a flush's tail bits.

    The missing bits are ``r`` (0..7) unknown bits, then the end-of-block code.
    Each candidate becomes a one-block stream ending with the end-of-stream
    marker, whose combined CRC for one block is the block's CRC, so libbzip2
    checks the guess. A block already complete in the file gets no candidate
    that decodes: after its end the decoder expects a marker, not more symbols.
    """
    start = _last_block_start(tail)
    if start is None:
        return None
    try:
        block_crc, eob_code, eob_length = _end_of_block_code(tail, start)
    except _BadBlock:
        return None
    present = len(tail) * 8 - start
    block_bits = int.from_bytes(tail, "big") & ((1 << present) - 1)
    for unknown_length in range(8):
        for unknown in range(1 << unknown_length):
            bits = (block_bits << unknown_length | unknown) << eob_length | eob_code
            bits = (bits << 48 | _END_MAGIC) << 32 | block_crc
            length = present + unknown_length + eob_length + 80
            padding = -length % 8
            candidate = b"BZh9" + (bits << padding).to_bytes((length + padding) // 8, "big")
            try:
                return bz2.decompress(candidate)
            except (OSError, ValueError):
                continue
    return None


def _last_block_start(data: bytes) -> int | None:
    """The bit offset of the last block-start magic in ``data`` (blocks are not byte-aligned)."""
    value = int.from_bytes(data, "big")
    magic = _BLOCK_MAGIC.to_bytes(6, "big")
    best = None
    for shift in range(8):
        # In these bytes, bit p of ``data`` sits at bit p + 8 - shift.
        found = (value << shift).to_bytes(len(data) + 1, "big").rfind(magic)
        if found > 0 and (best is None or found * 8 - 8 + shift > best):
            best = found * 8 - 8 + shift
    return best


def _end_of_block_code(data: bytes, start: int) -> tuple[int, int, int]:
    """(block CRC, end-of-block code, its length) from the header of the block at ``start``.

    The end-of-block symbol is the last one written, with the Huffman table of the
    block's last selector; codes are canonical, assigned in order of length.
    """
    reader = _BitReader(data, start + 48)
    block_crc = reader.bits(32)
    reader.bits(1 + 24)  # randomised flag, BWT origin pointer
    used_ranges = reader.bits(16)
    symbols_in_use = sum(
        reader.bits(16).bit_count() for i in range(16) if used_ranges >> (15 - i) & 1
    )
    alphabet_size = symbols_in_use + 2
    table_count = reader.bits(3)
    selector_count = reader.bits(15)
    if symbols_in_use == 0 or not 2 <= table_count <= 6 or selector_count == 0:
        raise _BadBlock("impossible header")
    order = list(range(table_count))
    last_table = 0
    for _ in range(selector_count):
        rank = 0
        while reader.bit():
            rank += 1
            if rank >= table_count:
                raise _BadBlock("selector out of range")
        last_table = order.pop(rank)
        order.insert(0, last_table)
    lengths: list[int] = []
    for table in range(table_count):
        length = reader.bits(5)
        for _ in range(alphabet_size):
            while True:
                if not 1 <= length <= 20:
                    raise _BadBlock("code length out of range")
                if not reader.bit():
                    break
                length += -1 if reader.bit() else 1
            if table == last_table:
                lengths.append(length)
    end_of_block = alphabet_size - 1
    code = 0
    for length in range(min(lengths), max(lengths) + 1):
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                if symbol == end_of_block:
                    return block_crc, code, length
                code += 1
        code <<= 1
    raise _BadBlock("no end-of-block code")


# -- the JSON inside -------------------------------------------------------


class _Records:
    """Validated torrents by info hash, the last record of each kept, and the reasons for skips."""

    def __init__(self) -> None:
        self._kept: dict[bytes, tuple[UdptTorrent, str]] = {}
        self.skipped: list[str] = []

    def torrents(self) -> tuple[UdptTorrent, ...]:
        return tuple(torrent for torrent, _ in self._kept.values())

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)

    def add(self, where: str, info_hash: object, entry: object) -> None:
        """Keep the record at ``where`` (``line 7``, ``record 7``) or say why not."""
        if info_hash is _MISSING:
            self.skip(f"{where}: no info_hash")
            return
        if not (
            isinstance(info_hash, str)
            and len(info_hash) == 40
            and all(digit in _HEX_DIGITS for digit in info_hash)
        ):
            self.skip(f"{where}: info_hash {_show(info_hash)} is not 40 hexadecimal digits")
            return
        where = f"{where} ({info_hash.lower()})"
        if entry is _MISSING:
            self.skip(f"{where}: no entry")
            return
        if not isinstance(entry, dict):
            self.skip(f"{where}: its entry is {_show(entry)}, not a JSON object")
            return
        is_flagged = entry.get("is_flagged", False)
        completed = entry.get("completed", 0)
        if not isinstance(is_flagged, bool):
            self.skip(f"{where}: is_flagged is {_show(is_flagged)}, not true or false")
            return
        if (
            not isinstance(completed, int)
            or isinstance(completed, bool)
            or not 0 <= completed <= _MAX_COMPLETED
        ):
            self.skip(f"{where}: completed is {_show(completed)}, not a whole number >= 0")
            return
        key = bytes.fromhex(info_hash)
        earlier = self._kept.pop(key, None)
        if earlier is not None:
            self.skip(f"{earlier[1]}: duplicate info_hash; the later record is kept")
        self._kept[key] = (UdptTorrent(key, is_flagged, completed), where)


def _show(value: object) -> str:
    shown = json.dumps(value)
    return shown if len(shown) <= 60 else f"{shown[:57]}..."


def _detect_format(chunks: Iterator[bytes]) -> tuple[str, Iterator[bytes]]:
    """Tell the two shapes apart by the first key; returns the chunks, none consumed."""
    head = b""
    for chunk in chunks:
        head += chunk
        format_ = _format_of(head)
        if format_ is not None:
            return format_, chain([head], chunks)
    return JSON_LINES, iter([head])


def _format_of(head: bytes) -> str | None:
    text = head.lstrip(_JSON_SPACE_BYTES)
    if not text:
        return None
    if not text.startswith(b"{"):
        return JSON_LINES  # not UDPT's at all: each line will be reported
    first_key = _FIRST_KEY.match(text)
    if first_key is not None:
        return JSON_LINES if first_key[1] in (b"info_hash", b"entry") else SINGLE_OBJECT
    after_brace = text[1:].lstrip(_JSON_SPACE_BYTES)
    if after_brace.startswith(b"}"):
        return SINGLE_OBJECT
    if after_brace and not after_brace.startswith(b'"'):
        return JSON_LINES
    return None


def _read_json_lines(chunks: Iterable[bytes], records: _Records, stream: _StreamEnd) -> None:
    pending = bytearray()
    number = 0
    for chunk in chunks:
        pending += chunk
        end = pending.rfind(b"\n")
        if end < 0:
            continue
        for line in bytes(pending[:end]).split(b"\n"):
            number += 1
            _read_line(line, f"line {number}", records, may_be_cut=False)
        del pending[: end + 1]
    # Only a last line can have been cut; a complete JSON object is never partial.
    _read_line(bytes(pending), f"line {number + 1}", records, may_be_cut=stream.truncated)


def _read_line(line: bytes, where: str, records: _Records, *, may_be_cut: bool) -> None:
    if not line.strip():
        return
    try:
        record = json.loads(line)
    except ValueError as error:
        if may_be_cut:
            records.skip(f"{where}: cut off by the end of the stream")
        else:
            records.skip(f"{where}: not valid JSON ({getattr(error, 'msg', error)})")
        return
    if not isinstance(record, dict):
        records.skip(f"{where}: {_show(record)} is not a JSON object")
        return
    records.add(where, record.get("info_hash", _MISSING), record.get("entry", _MISSING))


def _read_single_object(data: bytes, records: _Records, stream: _StreamEnd) -> None:
    """Read ``{"<hash>": {...}, ...}`` member by member, so a cut object keeps its members."""
    text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0) + 1  # past the "{" the format was detected by
    number = 0
    while True:
        position = _skip_space(text, position)
        if position == len(text):
            if not stream.truncated:
                records.skip("the JSON object is not closed; the file may have been cut")
            return
        if text[position] == "}":
            break
        number += 1
        where = f"record {number}"
        try:
            key, position = decoder.raw_decode(text, position)
            position = _skip_space(text, position)
            if not text.startswith(":", position):
                raise ValueError("expected ':' after the key")
            value, position = decoder.raw_decode(text, _skip_space(text, position + 1))
        except ValueError as error:
            if stream.truncated:
                records.skip(f"{where}: cut off by the end of the stream")
            else:
                records.skip(f"{where}: not valid JSON ({error}); the rest was not read")
            return
        records.add(where, key, value)
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position += 1
        elif position < len(text) and text[position] != "}":
            records.skip(f"after {where}: expected ',' or '}}'; the rest was not read")
            return
    if text[position + 1 :].strip():
        records.skip("data after the end of the JSON object was not read")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in _JSON_SPACE:
        position += 1
    return position
