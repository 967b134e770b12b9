"""The log's numbers by info hash, compiled (``udpt._core.HashIndex``) against the reference.

Both index a list that only grows, as the log's dictionary does: every question
after an append must see it, equal entries (a damaged dictionary's) give the last
position, and the answers must be the same as a dict built from the list. With
the pure core selected, the reference is checked against the dict alone.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpt.core import COMPILED
from udpt.events.hash_index import HashIndexPy

HashIndex = importlib.import_module("udpt._core").HashIndex if COMPILED else HashIndexPy

POOL = [bytes([n % 251, n // 251]) * 10 for n in range(300)]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(POOL), max_size=40)),
        st.tuples(st.just("ask"), st.sampled_from([*POOL, b"", b"x" * 21, "text"])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_both_indexes_number_a_growing_list_as_a_dict_built_from_it(history: list) -> None:  # type: ignore[type-arg]
    hashes: list[bytes] = []
    compiled, reference = HashIndex(hashes), HashIndexPy(hashes)
    for kind, arg in history:
        if kind == "append":
            hashes.extend(arg)
            continue
        expected = {h: n for n, h in enumerate(hashes)}.get(arg)
        assert compiled.get(arg) == reference.get(arg) == expected
        assert (arg in compiled) == (arg in reference) == (expected is not None)
        assert compiled.get(arg, -1) == reference.get(arg, -1)
        assert len(compiled) == len(reference) == len(hashes)
        if expected is None:
            with pytest.raises(KeyError):
                compiled[arg]
        else:
            assert compiled[arg] == reference[arg] == expected


@pytest.mark.skipif(not COMPILED, reason="the compiled core is not selected")
def test_a_million_numbers_found_as_the_list_grows_in_at_most_12_bytes_each() -> None:
    """What the compiled index is for: the reference's dict costs about 62 bytes a hash."""
    hashes: list[bytes] = []
    index = HashIndex(hashes)
    for start in range(0, 1_000_000, 99_991):
        hashes.extend(n.to_bytes(20, "big") for n in range(start, min(start + 99_991, 1_000_000)))
        assert index.get(hashes[-1]) == len(hashes) - 1
    assert all(index.get(h) == n for n, h in enumerate(hashes))
    assert index.get(b"\xff" * 20) is None
    assert sys.getsizeof(index) < 12 * len(hashes)
