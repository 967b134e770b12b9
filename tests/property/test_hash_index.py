"""The log's numbers by info hash, compiled (``udpt._core.HashIndex``) against the reference.

Both index a list that only grows, as the log's dictionary does: every question
after an append must see it, equal entries (a damaged dictionary's) give the last
position, and the answers must be the same as a dict built from the list. With
the pure core selected, the reference is checked against the dict alone. The
dictionary is a list, or (compiled) ``udpt._core.HashList``, the log's own: the same
entries, packed, which must read back as the list does.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpt.core import COMPILED
from udpt.events.hash_index import Dictionary, HashIndexPy, new_dictionary

HashIndex = importlib.import_module("udpt._core").HashIndex if COMPILED else HashIndexPy

POOL = [bytes([n % 251, n // 251]) * 10 for n in range(300)] + [b"", b"odd", b"y" * 21]
"""Info hashes, and entries only a damaged dictionary holds."""

DICTIONARIES = [list, pytest.param(new_dictionary, id="the log's")]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.sampled_from(POOL), max_size=40)),
        st.tuples(st.just("ask"), st.sampled_from([*POOL, b"", b"x" * 21, "text"])),
    ),
    max_size=60,
)


@pytest.mark.parametrize("make", DICTIONARIES)
@settings(max_examples=300, deadline=None)
@given(history=steps)
def test_both_indexes_number_a_growing_list_as_a_dict_built_from_it(
    make: Callable[[], Dictionary],
    history: list,  # type: ignore[type-arg]
) -> None:
    hashes, listed = make(), []
    compiled, reference = HashIndex(hashes), HashIndexPy(hashes)
    for kind, arg in history:
        if kind == "append":
            hashes.extend(arg)
            listed.extend(arg)
            assert [hashes[n] for n in range(len(hashes))] == listed
            continue
        expected = {h: n for n, h in enumerate(listed)}.get(arg)
        assert compiled.get(arg) == reference.get(arg) == expected
        assert (arg in compiled) == (arg in reference) == (expected is not None)
        assert compiled.get(arg, -1) == reference.get(arg, -1)
        assert len(compiled) == len(reference) == len(listed)
        if expected is None:
            with pytest.raises(KeyError):
                compiled[arg]
        else:
            assert compiled[arg] == reference[arg] == expected


@pytest.mark.skipif(not COMPILED, reason="the compiled core is not selected")
@pytest.mark.parametrize("make", DICTIONARIES)
def test_a_million_numbers_found_as_the_list_grows_in_at_most_12_bytes_each(
    make: Callable[[], Dictionary],
) -> None:
    """What the compiled index is for: the reference's dict costs about 62 bytes a hash."""
    hashes = make()
    index = HashIndex(hashes)
    for start in range(0, 1_000_000, 99_991):
        hashes.extend(n.to_bytes(20, "big") for n in range(start, min(start + 99_991, 1_000_000)))
        assert index.get(hashes[-1]) == len(hashes) - 1
    assert all(index.get(h) == n for n, h in enumerate(hashes))
    assert index.get(b"\xff" * 20) is None
    assert sys.getsizeof(index) < 12 * len(hashes)


@pytest.mark.skipif(not COMPILED, reason="the compiled core is not selected")
def test_the_log_dictionary_reads_back_what_it_was_given_in_21_bytes_a_hash() -> None:
    """A list holds 64 bytes a hash (a slot and a bytes object)."""
    hashes = new_dictionary()
    given = [n.to_bytes(20, "big") for n in range(100_000)]
    hashes.extend(iter(given))
    hashes.extend([b"odd", memoryview(b"z" * 20)])
    assert len(hashes) == len(given) + 2 and hashes[0] == given[0] and hashes[-3] == given[-1]
    assert hashes[-2] == b"odd" and hashes[-1] == b"z" * 20 and type(hashes[-1]) is bytes
    for outside in (len(hashes), -len(hashes) - 1):
        with pytest.raises(IndexError):
            hashes[outside]
    with pytest.raises(TypeError):
        hashes.extend([7])  # type: ignore[list-item]
    assert len(hashes) == len(given) + 2
    assert sys.getsizeof(hashes) < 21 * len(hashes)
