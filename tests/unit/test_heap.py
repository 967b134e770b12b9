"""Freed memory goes back to the system: the resident memory an operator watches falls."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from udpt.heap import release_free_heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")

CHUNKS = 25_000
SIZE = 4000  # 100 MB from the C heap in blocks below glibc's mmap threshold


def resident_anonymous() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_memory_freed_below_a_live_block_leaves_the_resident_set() -> None:
    chunks = [b"x" * SIZE for _ in range(CHUNKS)]  # distinct objects, written: resident
    pin = b"y" * SIZE  # above them in the heap: freeing them cannot shrink the heap's top
    del chunks
    held = resident_anonymous()
    release_free_heap()
    assert held - resident_anonymous() > CHUNKS * SIZE // 2
    assert pin[0] == ord("y")
