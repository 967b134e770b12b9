"""Reading UDPT's database file, whole, cut, damaged or left unfinished, and importing it."""

from __future__ import annotations

import bz2
import ctypes
import ctypes.util
import json
import random
from pathlib import Path

import pytest

from udpt.clock import EventClock, ManualClock
from udpt.events.log import EventLog
from udpt.events.types import TorrentImported
from udpt.importer.command import main_import
from udpt.importer.udpt_database import (
    JSON_LINES,
    SINGLE_OBJECT,
    UdptDatabaseError,
    UdptTorrent,
    parse_udpt_database,
    read_udpt_database,
)


def torrents(count: int, seed: int = 1) -> list[UdptTorrent]:
    rng = random.Random(seed)
    return [UdptTorrent(rng.randbytes(20), i % 7 == 3, rng.randrange(10_000)) for i in range(count)]


def json_lines(items: list[UdptTorrent]) -> bytes:
    """UDPT 3.1's layout: serde's field order, one row per line, each line ended."""
    return b"".join(
        json.dumps(
            {
                "info_hash": t.info_hash.hex(),
                "entry": {"is_flagged": t.is_flagged, "completed": t.completed},
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for t in items
    )


def single_object(items: list[UdptTorrent]) -> bytes:
    return json.dumps(
        {t.info_hash.hex(): {"is_flagged": t.is_flagged, "completed": t.completed} for t in items}
    ).encode()


def write(tmp_path: Path, content: bytes, name: str = "udpt.db") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


class _BzStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in_lo32", ctypes.c_uint),
        ("total_in_hi32", ctypes.c_uint),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out_lo32", ctypes.c_uint),
        ("total_out_hi32", ctypes.c_uint),
        ("state", ctypes.c_void_p),
        ("bzalloc", ctypes.c_void_p),
        ("bzfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
    ]


_LIBBZ2_NAME = ctypes.util.find_library("bz2")
needs_libbz2 = pytest.mark.skipif(_LIBBZ2_NAME is None, reason="libbz2 not found")
_BZ_RUN, _BZ_FLUSH, _BZ_RUN_OK = 0, 1, 1


def as_udpt_311_writes_it(data: bytes, level: int = 6) -> bytes:
    """Compress like UDPT 3.1.1+ saves its database: libbzip2, BZ_FLUSH, and never BZ_FINISH.

    (UDPT's async-compression encoder is flushed, then dropped without shutdown.)
    """
    lib = ctypes.CDLL(_LIBBZ2_NAME)
    stream = _BzStream()
    assert lib.BZ2_bzCompressInit(ctypes.byref(stream), level, 0, 0) == 0
    source = ctypes.create_string_buffer(data, len(data))
    window = ctypes.create_string_buffer(1 << 16)
    stream.next_in = ctypes.cast(source, ctypes.c_void_p)
    stream.avail_in = len(data)
    output = bytearray()
    action = _BZ_RUN
    while True:
        stream.next_out = ctypes.cast(window, ctypes.c_void_p)
        stream.avail_out = len(window)
        status = lib.BZ2_bzCompress(ctypes.byref(stream), action)
        output += window.raw[: len(window) - stream.avail_out]
        if action == _BZ_RUN and stream.avail_in == 0:
            action = _BZ_FLUSH
        elif action == _BZ_FLUSH and status == _BZ_RUN_OK:  # flush done
            break
    lib.BZ2_bzCompressEnd(ctypes.byref(stream))
    return bytes(output)


# -- whole files -------------------------------------------------------------


def test_json_lines_file_is_read_whole(tmp_path: Path) -> None:
    rows = (
        b'{"info_hash":"00112233445566778899AABBCCDDEEFF00112233",'
        b'"entry":{"is_flagged":true,"completed":42,"peers":{}}}\n'
        b'{"info_hash":"ffeeddccbbaa99887766554433221100ffeeddcc",'
        b'"entry":{"is_flagged":false,"completed":0}}\n'
        b'{"info_hash":"0000000000000000000000000000000000000001","entry":{}}\n'
    )

    report = read_udpt_database(write(tmp_path, bz2.compress(rows)))

    assert report.format == JSON_LINES
    assert report.torrents == (
        UdptTorrent(bytes.fromhex("00112233445566778899aabbccddeeff00112233"), True, 42),
        UdptTorrent(bytes.fromhex("ffeeddccbbaa99887766554433221100ffeeddcc"), False, 0),
        UdptTorrent(bytes(19) + b"\x01", False, 0),
    )
    assert (report.skipped, report.truncated, report.stream_note) == ((), False, "")


def test_single_object_file_is_read_whole(tmp_path: Path) -> None:
    items = torrents(50)
    content = single_object(items).replace(b"}}", b', "peers": [1, {"a": "}"}]}}', 1)

    report = read_udpt_database(write(tmp_path, bz2.compress(content)))

    assert report.format == SINGLE_OBJECT
    assert report.torrents == tuple(items)
    assert (report.skipped, report.truncated) == ((), False)


def test_a_path_given_as_str_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, bz2.compress(json_lines(torrents(3))))

    assert read_udpt_database(str(path)).torrents == tuple(torrents(3))


# -- what UDPT 3.1.1 and later write -------------------------------------------


@needs_libbz2
@pytest.mark.parametrize(("count", "level"), [(1, 9), (2, 6), (5, 1), (17, 9), (60, 6), (400, 9)])
def test_unfinished_stream_from_udpt_311_is_read_whole(
    tmp_path: Path, count: int, level: int
) -> None:
    items = torrents(count, seed=count)
    content = as_udpt_311_writes_it(json_lines(items), level)
    with pytest.raises((EOFError, ValueError)):
        bz2.decompress(content)  # UDPT's own reader fails the same way

    report = read_udpt_database(write(tmp_path, content))

    assert report.torrents == tuple(items)
    assert (report.skipped, report.truncated) == ((), False)
    assert "unfinished" in report.stream_note


@needs_libbz2
def test_the_bytes_of_an_unfinished_stream_parse_as_the_file_reads(tmp_path: Path) -> None:
    """Bytes in, records out: the salvage needs no file."""
    items = torrents(40)
    data = as_udpt_311_writes_it(json_lines(items))
    report = parse_udpt_database(data)
    assert report == read_udpt_database(write(tmp_path, data))
    assert (report.torrents, report.truncated) == (tuple(items), False)
    with pytest.raises(UdptDatabaseError, match=r"^the database: not a bzip2 file"):
        parse_udpt_database(b"PK\x03\x04")


def test_unfinished_stream_of_several_blocks_is_read_whole(tmp_path: Path) -> None:
    items = torrents(2_500)
    content = as_udpt_311_writes_it(json_lines(items), level=1)  # 100 kB blocks: 3 of them

    report = read_udpt_database(write(tmp_path, content))

    assert report.torrents == tuple(items)
    assert not report.truncated


@needs_libbz2
def test_unfinished_single_object_stream_is_read_whole(tmp_path: Path) -> None:
    items = torrents(300)
    content = as_udpt_311_writes_it(single_object(items), level=9)

    report = read_udpt_database(write(tmp_path, content))

    assert (report.format, report.torrents, report.truncated) == (
        SINGLE_OBJECT,
        tuple(items),
        False,
    )


@needs_libbz2
def test_empty_database_from_udpt_311_is_three_bytes_and_empty(tmp_path: Path) -> None:
    content = as_udpt_311_writes_it(b"")
    assert content == b"BZh"

    report = read_udpt_database(write(tmp_path, content))

    assert (report.torrents, report.skipped, report.truncated) == ((), (), False)


# -- cut and damaged streams ---------------------------------------------------


@pytest.mark.parametrize("cut_at", [0.002, 0.3, 0.75, -1])
def test_cut_stream_keeps_the_records_before_the_cut(tmp_path: Path, cut_at: float) -> None:
    items = torrents(2_500)
    content = bz2.compress(json_lines(items), 1)
    end = len(content) - 1 if cut_at == -1 else int(len(content) * cut_at)

    report = read_udpt_database(write(tmp_path, content[:end]))

    assert report.truncated
    assert report.torrents == tuple(items[: len(report.torrents)])
    assert all(reason.endswith("cut off by the end of the stream") for reason in report.skipped)
    assert len(report.skipped) <= 1
    if cut_at >= 0.5:  # past the first of three blocks
        assert len(report.torrents) >= 900
    if cut_at == -1:  # only the end-of-stream marker is missing
        assert len(report.torrents) == len(items)


def test_cut_single_object_keeps_its_complete_members(tmp_path: Path) -> None:
    items = torrents(3_000)  # three 100 kB blocks
    content = bz2.compress(single_object(items), 1)

    report = read_udpt_database(write(tmp_path, content[: len(content) * 4 // 5]))

    assert report.format == SINGLE_OBJECT
    assert report.truncated
    assert 900 <= len(report.torrents) < len(items)
    assert report.torrents == tuple(items[: len(report.torrents)])
    assert report.skipped == (
        f"record {len(report.torrents) + 1}: cut off by the end of the stream",
    )


def test_damaged_stream_keeps_what_came_before_the_damage(tmp_path: Path) -> None:
    items = torrents(2_500)
    content = bytearray(bz2.compress(json_lines(items), 1))
    middle = len(content) * 3 // 4
    content[middle : middle + 64] = bytes(64)

    report = read_udpt_database(write(tmp_path, bytes(content)))

    assert report.truncated
    assert "damaged" in report.stream_note
    assert len(report.torrents) >= 900
    assert report.torrents == tuple(items[: len(report.torrents)])


def test_data_after_the_stream_is_ignored_and_reported(tmp_path: Path) -> None:
    content = bz2.compress(json_lines(torrents(3))) + b"trailing junk"

    report = read_udpt_database(write(tmp_path, content))

    assert report.torrents == tuple(torrents(3))
    assert not report.truncated
    assert report.stream_note == "13 bytes after the end of the bzip2 stream were ignored"


# -- records -------------------------------------------------------------------


def test_bad_records_are_skipped_each_with_its_reason(tmp_path: Path) -> None:
    good = "ab" * 20
    lines = [
        {"info_hash": good, "entry": {"is_flagged": False, "completed": 1}},
        {"info_hash": "ab" * 19, "entry": {}},
        {"info_hash": "zz" * 20, "entry": {}},
        {"info_hash": 12, "entry": {}},
        {"entry": {}},
        {"info_hash": "01" * 20, "entry": {"completed": -1}},
        {"info_hash": "02" * 20, "entry": {"completed": "7"}},
        {"info_hash": "03" * 20, "entry": {"completed": True}},
        {"info_hash": "04" * 20, "entry": {"completed": 2.5}},
        {"info_hash": "05" * 20, "entry": {"is_flagged": 1}},
        {"info_hash": "06" * 20, "entry": None},
        {"info_hash": "07" * 20, "entry": [1]},
        {"info_hash": "09" * 20},
        [1, 2],
    ]
    content = b"\n".join(json.dumps(line).encode() for line in lines)
    content += b"\nnot json\n\n" + b'{"info_hash":"' + b"08" * 20 + b'","entry":{}}\n'

    report = read_udpt_database(write(tmp_path, bz2.compress(content)))

    assert report.torrents == (
        UdptTorrent(bytes.fromhex(good), False, 1),
        UdptTorrent(bytes.fromhex("08" * 20), False, 0),
    )
    assert report.skipped == (
        f'line 2: info_hash "{"ab" * 19}" is not 40 hexadecimal digits',
        f'line 3: info_hash "{"zz" * 20}" is not 40 hexadecimal digits',
        "line 4: info_hash 12 is not 40 hexadecimal digits",
        "line 5: no info_hash",
        f"line 6 ({'01' * 20}): completed is -1, not a whole number >= 0",
        f'line 7 ({"02" * 20}): completed is "7", not a whole number >= 0',
        f"line 8 ({'03' * 20}): completed is true, not a whole number >= 0",
        f"line 9 ({'04' * 20}): completed is 2.5, not a whole number >= 0",
        f"line 10 ({'05' * 20}): is_flagged is 1, not true or false",
        f"line 11 ({'06' * 20}): its entry is null, not a JSON object",
        f"line 12 ({'07' * 20}): its entry is [1], not a JSON object",
        f"line 13 ({'09' * 20}): no entry",
        "line 14: [1, 2] is not a JSON object",
        "line 15: not valid JSON (Expecting value)",
    )
    assert not report.truncated


def test_bad_members_of_a_single_object_are_skipped(tmp_path: Path) -> None:
    content = json.dumps(
        {"cd" * 20: {"is_flagged": True}, "nope": {}, "ef" * 20: {"completed": -5}}
    ).encode()

    report = read_udpt_database(write(tmp_path, bz2.compress(content)))

    assert report.torrents == (UdptTorrent(bytes.fromhex("cd" * 20), True, 0),)
    assert report.skipped == (
        'record 2: info_hash "nope" is not 40 hexadecimal digits',
        f"record 3 ({'ef' * 20}): completed is -5, not a whole number >= 0",
    )


def test_a_duplicated_info_hash_keeps_its_last_record(tmp_path: Path) -> None:
    first, second = torrents(2)
    again = UdptTorrent(first.info_hash, not first.is_flagged, first.completed + 1)
    upper_hex = json_lines([again]).replace(
        again.info_hash.hex().encode(), again.info_hash.hex().upper().encode()
    )
    content = json_lines([first, second]) + upper_hex

    report = read_udpt_database(write(tmp_path, bz2.compress(content)))

    assert report.torrents == (second, again)
    assert report.skipped == (
        f"line 1 ({first.info_hash.hex()}): duplicate info_hash; the later record is kept",
    )


# -- empty and unreadable files -----------------------------------------------


@pytest.mark.parametrize("content", [b"", bz2.compress(b""), bz2.compress(b"\n \n"), b"BZh9"])
def test_empty_databases_hold_no_torrents(tmp_path: Path, content: bytes) -> None:
    report = read_udpt_database(write(tmp_path, content))

    assert (report.torrents, report.skipped, report.truncated) == ((), (), False)


@pytest.mark.parametrize("content", [b"{}", b"  {\n}  "])
def test_empty_single_object_holds_no_torrents(tmp_path: Path, content: bytes) -> None:
    report = read_udpt_database(write(tmp_path, bz2.compress(content)))

    assert (report.format, report.torrents, report.skipped) == (SINGLE_OBJECT, (), ())


@pytest.mark.parametrize(
    "content", [b'{"info_hash": "ab"}\n', b"\x1f\x8b\x08\x00 gzip", b"BZ", b"BZh0abc"]
)
def test_a_file_that_is_not_bzip2_is_refused_by_name(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content, "not-udpt.db")

    with pytest.raises(UdptDatabaseError, match=r"not-udpt\.db: not a bzip2 file"):
        read_udpt_database(path)


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(UdptDatabaseError, match=r"missing\.db: cannot read: No such file"):
        read_udpt_database(tmp_path / "missing.db")


# -- udpt import-udpt ------------------------------------------------------------


def test_import_appends_one_event_per_torrent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = torrents(20)
    file = write(tmp_path, bz2.compress(json_lines(items) + b"not json\n"))
    clock = EventClock(ManualClock(1_700_000_000.0))

    exit_code = main_import(file, tmp_path / "log", "admin", clock=clock)

    assert exit_code == 0
    with EventLog(tmp_path / "log", readonly=True) as log:
        events = list(log.events())
    assert events == [
        (seq, TorrentImported(1_700_000_000_000, t.info_hash, t.is_flagged, t.completed, "admin"))
        for seq, t in enumerate(items, start=1)
    ]
    out = capsys.readouterr().out
    flagged = sum(t.is_flagged for t in items)
    completed = sum(t.completed for t in items)
    assert f"Imported 20 torrents into {tmp_path / 'log'} (events 1-20)" in out
    assert f"{flagged} flagged, {completed} completed downloads in all." in out
    assert "line 21: not valid JSON" in out


def test_import_refuses_a_log_that_already_has_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, bz2.compress(json_lines(torrents(2))))
    assert main_import(file, tmp_path / "log") == 0

    assert main_import(file, tmp_path / "log") == 2

    assert "already holds events" in capsys.readouterr().err
    with EventLog(tmp_path / "log", readonly=True) as log:
        assert log.count() == 2


def test_import_of_an_empty_database_succeeds_without_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_import(write(tmp_path, b"BZh"), tmp_path / "log") == 0

    assert "holds no torrents" in capsys.readouterr().out
    assert not (tmp_path / "log").exists()


def test_import_of_an_unreadable_database_fails_with_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = bz2.compress(json_lines(torrents(100)))

    assert main_import(write(tmp_path, content[: len(content) // 2]), tmp_path / "log") == 1

    out = capsys.readouterr().out
    assert "Nothing imported" in out
    assert "ends early" in out
    assert not (tmp_path / "log").exists()


def test_import_of_a_file_that_is_not_bzip2_fails_with_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_import(write(tmp_path, b"hello", "hello.txt"), tmp_path / "log") == 2

    assert "hello.txt: not a bzip2 file" in capsys.readouterr().err
