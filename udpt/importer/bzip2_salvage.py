"""Salvage of a bzip2 stream as UDPT writes it: pure, a binary stream in, data out.

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
from collections.abc import Iterator
from typing import BinaryIO, Final

__all__ = ["StreamEnd", "decompressed_chunks", "looks_like_bzip2", "rebuild_unfinished_block"]

# A decompression error discards the output of the call that meets it: small reads
# keep the blocks that end just before damage.
_READ_BYTES: Final = 1 << 12
# A bzip2 block holds at most 900 000 symbols of at most 20 bits: the last block
# starts within the last 2.3 MB of the file.
_LAST_BLOCK_SEARCH_BYTES: Final = 3 << 20
_BLOCK_MAGIC: Final = 0x314159265359
_END_MAGIC: Final = 0x177245385090


class StreamEnd:
    """How the bzip2 stream ended; known once its chunks have all been read."""

    __slots__ = ("note", "truncated")

    def __init__(self) -> None:
        self.truncated = False
        self.note = ""


def looks_like_bzip2(head: bytes) -> bool:
    """Whether the first 4 bytes of a file are empty or start a bzip2 stream.

    UDPT 3.1.1 writes an empty database as the 3 bytes ``BZh``: even the block
    size digit stays in the compressor.
    """
    return not head or (head[:3] == b"BZh" and (len(head) == 3 or head[3:] in b"123456789"))


def decompressed_chunks(file: BinaryIO, size: int, stream: StreamEnd) -> Iterator[bytes]:
    """The data of ``file`` (``size`` bytes) in chunks; ``stream`` says how it ended."""
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
    last_block = rebuild_unfinished_block(file.read())
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


def rebuild_unfinished_block(tail: bytes) -> bytes | None:
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
