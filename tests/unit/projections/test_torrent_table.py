"""The torrent table keeps its info hashes in order through every way a torrent comes and goes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from udpt.projections.torrents import Torrent, TorrentTable

KEYS = st.binary(min_size=1, max_size=2)
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["set", "setdefault", "del", "pop"]), KEYS), max_size=60
)


@given(OPERATIONS)
def test_pages_follow_info_hash_order_after_any_changes(
    operations: list[tuple[str, bytes]],
) -> None:
    table = TorrentTable()
    for operation, key in operations:
        if operation == "set":
            table[key] = Torrent()
        elif operation == "setdefault":
            table.setdefault(key, Torrent())
        elif operation == "del" and key in table:
            del table[key]
        elif operation == "pop":
            table.pop(key, None)
    keys = sorted(table)
    assert table.page(0, len(keys) + 5) == keys
    assert table.page(2, 3) == keys[2:5]


def test_a_bulk_load_pages_like_one_built_key_by_key() -> None:
    keys = [bytes([n]) for n in range(50)]
    loaded = TorrentTable()
    loaded.load_sorted([(key, Torrent()) for key in keys])
    assert loaded.page(10, 5) == keys[10:15]
    loaded.pop(keys[10])
    loaded[b"\x0a\x00"] = Torrent()
    assert loaded.page(10, 2) == [b"\x0a\x00", keys[11]]
