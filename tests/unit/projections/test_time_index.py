"""TimeIndex: which keys a sweep must visit before a cutoff.

Every test runs with the buckets in a dict (the reference) and, with the compiled core,
in the torrents of a table that holds every key the tests file (``_core.FiledIn``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from udpt.core import COMPILED
from udpt.projections.time_index import BUCKET_MS, TimeIndex
from udpt.projections.torrents import Torrent, TorrentTable

A, B, C = b"a" * 20, b"b" * 20, b"c" * 20
KEYS = [
    A,
    B,
    C,
    *(bytes([n]) * 20 for n in range(256)),
    *(n.to_bytes(20, "big") for n in range(1_000)),
]


def index_in_torrents(keys: list[bytes] = KEYS) -> tuple[TimeIndex, TorrentTable]:
    from udpt import _core

    torrents = TorrentTable()
    for key in dict.fromkeys(keys):
        torrents[key] = Torrent()
    return TimeIndex(_core.FiledIn(torrents, 0)), torrents


STORES = ["dict", pytest.param("torrents", marks=pytest.mark.skipif(not COMPILED, reason="pure"))]


@pytest.fixture(params=STORES)
def make_index(request: pytest.FixtureRequest) -> Callable[[], TimeIndex]:
    if request.param == "dict":
        return TimeIndex
    return lambda: index_in_torrents()[0]


def test_keys_filed_before_the_cutoff_are_due_and_later_ones_are_not(
    make_index: Callable[[], TimeIndex],
) -> None:
    index = make_index()
    index.file(A, 10 * BUCKET_MS)
    index.file(B, 20 * BUCKET_MS)
    assert index.due(10 * BUCKET_MS) == []  # the cutoff is exclusive
    assert index.due(10 * BUCKET_MS + 1) == [A]
    assert sorted(index.due(25 * BUCKET_MS)) == [A, B]


def test_a_key_is_never_due_later_than_the_time_it_was_filed_under(
    make_index: Callable[[], TimeIndex],
) -> None:
    # Coarse buckets may make a key due early, never late: that is what keeps sweeps exact.
    index = make_index()
    for ms in (0, 1, BUCKET_MS - 1, BUCKET_MS, 5 * BUCKET_MS + 7):
        index.file(A, ms)
        assert A in index.due(ms + 1)


def test_refiling_moves_a_key_and_none_removes_it(make_index: Callable[[], TimeIndex]) -> None:
    index = make_index()
    index.file(A, 0)
    index.file(A, 30 * BUCKET_MS)
    assert index.due(BUCKET_MS) == []
    assert index.due(31 * BUCKET_MS) == [A]
    index.file(A, None)
    assert A not in index
    assert len(index) == 0
    assert index.due(10**15) == []
    index.file(C, None)  # removing what is not there is fine
    assert len(index) == 0


def test_keys_taken_one_by_one_and_filed_again_leave_the_index_as_a_visit_would(
    make_index: Callable[[], TimeIndex],
) -> None:
    index = make_index()
    for n in range(50):
        index.file(bytes([n]) * 20, n * 1000)
    taken = index.take_due(BUCKET_MS)
    first = next(taken)
    assert index.due(BUCKET_MS) == []  # the bucket is out while it is being visited
    index.file(first, 3 * BUCKET_MS)
    rest = list(taken)
    assert sorted([first, *rest]) == [bytes([n]) * 20 for n in range(50)]
    for key in rest:
        index.file(key, 2 * BUCKET_MS)
    assert sorted(index.due(3 * BUCKET_MS + 1)) == [bytes([n]) * 20 for n in range(50)]


def test_a_visit_stopped_early_files_back_what_it_did_not_file(
    make_index: Callable[[], TimeIndex],
) -> None:
    index = make_index()
    for n in range(10):
        index.file(bytes([n]) * 20, n)
    taken = index.take_due(BUCKET_MS)
    visited = next(taken)  # taken but not filed again
    taken.close()
    assert sorted(index.due(BUCKET_MS)) == [bytes([n]) * 20 for n in range(10)]
    assert visited in index


def test_keys_of_one_bucket_share_its_number_whatever_the_time_they_were_filed_at() -> None:
    """Today's times in milliseconds make a new int per division: kept per key, a million
    torrents would hold a million copies of a few bucket numbers (32 MB)."""
    index = TimeIndex()
    now_ms = 1_764_720_000_000
    for n in range(1_000):
        index.file(n.to_bytes(20, "big"), now_ms + n * 180)  # three minutes: three buckets
    numbers = {id(bucket) for bucket in index._bucket_of.values()}
    assert len(numbers) == len(set(index._bucket_of.values())) == 3
    for n in range(1_000):
        index.file(n.to_bytes(20, "big"), None)
    assert index._numbers == {}


def test_a_key_filed_again_and_again_is_due_once_and_its_old_places_do_not_pile_up(
    make_index: Callable[[], TimeIndex],
) -> None:
    index = make_index()
    index.file(B, 0)  # keeps the first bucket there while A comes and goes
    for n in range(1_000):
        index.file(A, (n % 2) * BUCKET_MS)  # between the first two buckets
        index.file(C, n * BUCKET_MS // 10)
    assert sorted(index.due(2 * BUCKET_MS)) == [A, B]
    assert index.count_due(2 * BUCKET_MS) == 2
    assert sum(len(keys) for keys in index._buckets.values()) < 60
    taken = list(index.take_due(2 * BUCKET_MS))
    assert sorted(taken) == [A, B]
    assert len(index) == 1 and C in index


def test_keys_filed_elsewhere_during_a_visit_are_not_given_and_the_index_stays_whole(
    make_index: Callable[[], TimeIndex],
) -> None:
    index = make_index()
    for n in range(20):
        index.file(bytes([n]) * 20, n)
    taken = index.take_due(BUCKET_MS)
    first = next(taken)
    for n in range(20):  # everything else moves on before the visit reaches it
        if bytes([n]) * 20 != first:
            index.file(bytes([n]) * 20, 5 * BUCKET_MS)
    assert list(taken) == []
    assert index.count_due(BUCKET_MS) == 0 and first not in index
    moved = [bytes([n]) * 20 for n in range(20) if bytes([n]) * 20 != first]
    assert sorted(index.due(6 * BUCKET_MS)) == moved


@pytest.mark.skipif(not COMPILED, reason="the compiled core's FiledIn")
def test_a_key_whose_torrent_is_not_in_the_table_is_refused_and_changes_nothing() -> None:
    index, torrents = index_in_torrents([A, B])
    index.file(A, 0)
    with pytest.raises(KeyError):
        index.file(C, 0)
    assert C not in index and index.due(BUCKET_MS) == [A] and len(index) == 1
    index.file(A, None)
    del torrents[A]  # gone: nothing of it is filed, and unfiling it is harmless
    index.file(A, None)
    assert A not in index and len(index) == 0 and index.count_due(10**15) == 0


@pytest.mark.skipif(not COMPILED, reason="the compiled core's FiledIn")
def test_a_visit_stopped_after_its_torrent_was_forgotten_files_nothing_back() -> None:
    index, torrents = index_in_torrents([A, B])
    index.file(A, 0)
    index.file(B, 1)
    taken = index.take_due(BUCKET_MS)
    visited = next(taken)
    del torrents[visited]  # the caller forgot the torrent it was given, then stopped
    taken.close()
    left = B if visited == A else A
    assert index.due(BUCKET_MS) == [left] and len(index) == 1
