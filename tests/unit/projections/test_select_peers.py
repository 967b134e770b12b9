"""Peer selection (docs/PROTOCOL.md §6.5): who a requester is told about, and how many."""

from __future__ import annotations

from collections import Counter
from random import Random

from udpt.events.types import AnnounceAccepted, AnnounceEvent
from udpt.projections.swarms import Swarm

IH = bytes(20)


def peer(n: int, v6: bool = False) -> bytes:
    ip = bytes(15) + bytes([n]) if v6 else bytes([10, 0, 0, n])
    return ip + (6881).to_bytes(2, "big")


def swarm_of(seeders: list[bytes], leechers: list[bytes]) -> Swarm:
    swarm = Swarm()
    for entry, left in [(p, 0) for p in seeders] + [(p, 100) for p in leechers]:
        announce = AnnounceAccepted(
            1, IH, entry[:-2], 6881, bytes(20), 0, AnnounceEvent.STARTED, 0, 0, left
        )
        swarm.announce(entry, announce)
    return swarm


def entries(reply: bytes, stride: int = 6) -> list[bytes]:
    return [reply[i : i + stride] for i in range(0, len(reply), stride)]


def test_a_small_swarm_is_returned_whole_but_never_the_requester() -> None:
    swarm = swarm_of([peer(1)], [peer(2), peer(3)])
    chosen = entries(swarm.select(peer(2), False, 50, Random(0)))
    assert sorted(chosen) == [peer(1), peer(3)]


def test_a_seeder_is_told_only_about_leechers() -> None:
    swarm = swarm_of([peer(1), peer(2)], [peer(3), peer(4)])
    chosen = entries(swarm.select(peer(1), True, 50, Random(0)))
    assert sorted(chosen) == [peer(3), peer(4)]


def test_only_the_requesters_family_is_returned() -> None:
    swarm = swarm_of([peer(1), peer(1, v6=True)], [peer(2, v6=True)])
    assert entries(swarm.select(peer(9), False, 50, Random(0))) == [peer(1)]
    v6 = entries(swarm.select(peer(9, v6=True), False, 50, Random(0)), 18)
    assert sorted(v6) == [peer(1, v6=True), peer(2, v6=True)]


def test_count_bounds_the_reply_and_zero_means_none() -> None:
    swarm = swarm_of([peer(n) for n in range(1, 20)], [peer(n) for n in range(20, 40)])
    chosen = entries(swarm.select(peer(25), False, 10, Random(0)))
    assert len(chosen) == len(set(chosen)) == 10
    assert peer(25) not in chosen
    assert swarm.select(peer(25), False, 0, Random(0)) == b""


def test_large_swarms_are_sampled_uniformly() -> None:
    swarm = swarm_of([], [peer(n) for n in range(1, 21)])
    seen: Counter[bytes] = Counter()
    rng = Random(1)
    for _ in range(2000):
        seen.update(entries(swarm.select(peer(1), False, 5, rng)))
    assert peer(1) not in seen
    assert len(seen) == 19
    # 2000 * 5 / 19 ≈ 526 each; a fair sampler stays well inside these bounds.
    assert min(seen.values()) > 420 and max(seen.values()) < 640


def test_selection_changes_nothing() -> None:
    swarm = swarm_of([peer(1)], [peer(2), peer(3)])
    before = swarm.pack()
    swarm.select(peer(2), False, 1, Random(0))
    assert swarm.pack() == before
