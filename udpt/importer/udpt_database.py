"""UDPT's database file: the torrents it holds, and why any record was left out.

UDPT 3.x keeps its torrents (flag and ``completed`` counter; peers are not saved)
in ``db_path``, a bzip2-compressed file (see ``bzip2_salvage.py``) in one of two
JSON shapes:

* JSON lines (UDPT 3.1): ``{"info_hash": "<40 hex>", "entry": {"is_flagged": .., "completed": ..}}``
  per line;
* one JSON object (older): ``{"<40 hex>": {"is_flagged": .., "completed": ..}, ...}``.

Pure apart from opening the file: ``parse_udpt_database`` takes the bytes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO, Final

from udpt.importer.bzip2_salvage import StreamEnd, decompressed_chunks, looks_like_bzip2

__all__ = [
    "JSON_LINES",
    "SINGLE_OBJECT",
    "UdptDatabaseError",
    "UdptReadReport",
    "UdptTorrent",
    "parse_udpt_database",
    "read_udpt_database",
]

JSON_LINES: Final = "json-lines"
SINGLE_OBJECT: Final = "single-object"

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
    try:
        with path.open("rb") as file:
            return _read(file, str(path))
    except OSError as error:
        raise UdptDatabaseError(f"{path}: cannot read: {error.strerror or error}") from error


def parse_udpt_database(data: bytes, name: str = "the database") -> UdptReadReport:
    """``read_udpt_database`` for the file's bytes; ``name`` is used in error messages."""
    return _read(io.BytesIO(data), name)


def _read(file: BinaryIO, name: str) -> UdptReadReport:
    size = file.seek(0, io.SEEK_END)
    file.seek(0)
    if not looks_like_bzip2(file.read(4)):
        raise UdptDatabaseError(
            f"{name}: not a bzip2 file (a UDPT database is bzip2-compressed JSON)"
        )
    file.seek(0)
    stream = StreamEnd()
    records = _Records()
    format_, chunks = _detect_format(decompressed_chunks(file, size, stream))
    if format_ == JSON_LINES:
        _read_json_lines(chunks, records, stream)
    else:
        _read_single_object(b"".join(chunks), records, stream)
    return UdptReadReport(
        torrents=records.torrents(),
        skipped=tuple(records.skipped),
        truncated=stream.truncated,
        format=format_,
        stream_note=stream.note,
    )


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


def _read_json_lines(chunks: Iterable[bytes], records: _Records, stream: StreamEnd) -> None:
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


def _read_single_object(data: bytes, records: _Records, stream: StreamEnd) -> None:
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
