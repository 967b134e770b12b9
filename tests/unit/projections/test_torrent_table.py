"""The torrent table keeps its info hashes in order through every way a torrent comes and goes.

Every test runs against the table the selected core uses: the reference (a dict and a
SortedList) or the compiled one (udpt/_torrents.c), whose blocks split past 256 torrents
(a torrent past the last full block, as a restore adds them, starts a new one).
"""

from __future__ import annotations

import sys
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udpt.core import COMPILED
from udpt.projections.torrents import Torrent, TorrentTable

KEYS = st.integers(0, 300).map(lambda n: n.to_bytes(20, "big"))
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["set", "setdefault", "del", "pop"]), KEYS), max_size=60
)


def key(n: int) -> bytes:
    return n.to_bytes(20, "big")


@given(OPERATIONS)
def test_pages_follow_info_hash_order_after_any_changes(
    operations: list[tuple[str, bytes]],
) -> None:
    table = TorrentTable()
    for operation, info_hash in operations:
        if operation == "set":
            table[info_hash] = Torrent()
        elif operation == "setdefault":
            table.setdefault(info_hash, Torrent())
        elif operation == "del" and info_hash in table:
            del table[info_hash]
        elif operation == "pop":
            table.pop(info_hash, None)
    keys = sorted(table)
    assert table.page(0, len(keys) + 5) == keys
    assert table.page(2, 3) == keys[2:5]


def test_thousands_of_torrents_in_any_order_are_found_paged_and_forgotten() -> None:
    rng = Random(5)
    numbers = rng.sample(range(1 << 40), 5000)
    table = TorrentTable()
    torrents = {key(n): Torrent() for n in numbers}
    for info_hash, torrent in torrents.items():
        table[info_hash] = torrent
    gone = set(rng.sample(sorted(torrents), 2500))
    for info_hash in gone:
        assert table.pop(info_hash) is torrents[info_hash]
    left = sorted(set(torrents) - gone)
    assert len(table) == len(left) and sorted(table) == table.page(0, 10**6) == left
    assert table.page(1000, 300) == left[1000:1300] and table.page(len(left), 5) == []
    assert table.page(2**63, 5) == [] and table.page(len(left) - 2, 2**70) == left[-2:]
    assert all(table[info_hash] is torrents[info_hash] for info_hash in left)
    assert not any(info_hash in table for info_hash in gone)
    assert dict(table.items()) == {h: torrents[h] for h in left}
    assert {id(t) for t in table.values()} == {id(torrents[h]) for h in left}


def test_torrents_added_in_order_as_a_restore_adds_them_then_between_them_keep_the_order() -> None:
    keys = [key(n) for n in range(0, 20_000, 4)]
    table = TorrentTable()
    for info_hash in keys:
        table[info_hash] = Torrent()
    assert table.page(0, 10**6) == keys
    added = [key(n) for n in range(1, 20_000, 40)]
    for info_hash in added:
        table[info_hash] = Torrent()
    assert table.page(0, 10**6) == sorted(keys + added) == sorted(table)
    for info_hash in keys[::2]:
        del table[info_hash]
    assert table.page(0, 10**6) == sorted(keys[1::2] + added)


def test_a_torrent_stored_again_under_its_hash_replaces_the_one_there() -> None:
    first, second = Torrent(), Torrent()
    table = TorrentTable()
    table[key(7)] = first
    table[key(7)] = second
    table[key(7)] = second
    assert len(table) == 1 and table[key(7)] is second and table.page(0, 5) == [key(7)]


def test_changing_the_table_while_walking_it_is_an_error_as_with_a_dict() -> None:
    table = TorrentTable()
    for n in range(10):
        table[key(n)] = Torrent()
    with pytest.raises(RuntimeError):
        for info_hash in table:
            del table[info_hash]


def test_keys_that_are_not_info_hashes_are_not_there() -> None:
    table = TorrentTable()
    table[key(1)] = Torrent()
    for other in (b"x", key(1)[:19], "x" * 20, 7):
        assert other not in table and table.get(other) is None
        with pytest.raises(KeyError):
            table[other]


@pytest.mark.skipif(not COMPILED, reason="the compiled table")
def test_the_compiled_table_holds_torrents_under_info_hashes_only() -> None:
    """Its keys live in the Torrents: one table, one hash for each; the reference, a dict,
    would take anything (no caller stores anything else)."""
    table, other = TorrentTable(), TorrentTable()
    torrent = Torrent()
    table[key(1)] = torrent
    with pytest.raises(TypeError):
        table[b"short"] = Torrent()
    with pytest.raises(TypeError):
        table[key(2)] = "not a torrent"  # type: ignore[assignment]
    with pytest.raises(ValueError):
        table[key(2)] = torrent
    with pytest.raises(ValueError):
        other[key(1)] = torrent
    del table[key(1)]
    other[key(3)] = torrent  # forgotten by the first table: free to go elsewhere
    assert list(other) == [key(3)] and len(table) == 0


@pytest.mark.skipif(not COMPILED, reason="the compiled table")
def test_the_compiled_table_gives_back_its_room_when_most_torrents_go() -> None:
    """A flood of torrents, then expiry of nearly all of them at random: the ordered blocks
    merge and the set shrinks, so the table stays within about 70 bytes a torrent left."""
    rng = Random(8)
    keys = [key(n) for n in rng.sample(range(1 << 40), 20_000)]
    table = TorrentTable()
    for info_hash in keys:
        table[info_hash] = Torrent()
    flooded = sys.getsizeof(table)
    left = keys[:1000]
    for info_hash in keys[1000:]:
        del table[info_hash]
    assert table.page(0, 5000) == sorted(left)
    assert sys.getsizeof(table) < min(70 * len(left), flooded / 8)
