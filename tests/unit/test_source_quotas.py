"""Source quotas without sockets: prefixes, buckets and the bounded table of sources."""

from __future__ import annotations

from udpt.quotas import QuotaPolicy, SourceQuotas


def quotas(**changes: float) -> SourceQuotas:
    policy = dict(
        prefix_v4=32,
        prefix_v6=64,
        announces_per_s=1,
        announce_burst=2,
        new_torrents_per_min=60,
        new_torrent_burst=1,
        error_replies_per_s=1,
        recorded_refusals_per_min=2,
        max_sources=3,
    )
    policy.update(changes)
    return SourceQuotas(QuotaPolicy(**policy))  # type: ignore[arg-type]


V6_A = bytes.fromhex("20010db8000000010000000000000001")
V6_B = bytes.fromhex("20010db800000001ffff000000000002")  # same /64
V6_C = bytes.fromhex("20010db8000000020000000000000001")  # another /64


def test_an_ipv6_source_is_its_slash_64() -> None:
    limits = quotas()
    assert limits.take_announce(V6_A, 0) and limits.take_announce(V6_B, 0)
    assert not limits.take_announce(V6_A, 0)  # the /64 spent its burst of 2
    assert limits.take_announce(V6_C, 0)
    assert limits.announces_refused == 1


def test_buckets_refill_at_their_rate_up_to_their_burst() -> None:
    limits = quotas()
    ip = bytes([10, 0, 0, 1])
    assert limits.take_new_torrent(ip, 0) and not limits.take_new_torrent(ip, 0)
    assert limits.take_new_torrent(ip, 1000)  # 60 a minute: one a second
    assert not limits.take_new_torrent(ip, 1500)
    assert limits.take_announce(ip, 0) and limits.take_announce(ip, 0)
    assert not limits.take_announce(ip, 0)
    assert limits.take_announce(ip, 100_000)
    assert limits.take_announce(ip, 100_000)  # the burst, not 100 s worth of tokens
    assert not limits.take_announce(ip, 100_000)


def test_a_rate_of_zero_turns_a_quota_off() -> None:
    limits = quotas(announces_per_s=0, new_torrents_per_min=0)
    ip = bytes([10, 0, 0, 1])
    assert all(limits.take_announce(ip, 0) for _ in range(1000))
    assert all(limits.take_new_torrent(ip, 0) for _ in range(1000))
    assert len(limits) == 0  # nothing is remembered for quotas that are off


def test_the_table_of_sources_is_bounded_and_forgets_the_idlest_first() -> None:
    limits = quotas(max_sources=3)
    for n in range(1, 5):
        limits.take_announce(bytes([10, 0, 0, n]), 0)
    limits.take_announce(bytes([10, 0, 0, 2]), 0)  # 2 is busy again; 3 is now the idlest
    limits.take_announce(bytes([10, 0, 0, 5]), 0)
    assert len(limits) == 3 and limits.evicted == 2
    # Source 2 was kept: its second announce above spent its burst.
    assert not limits.take_announce(bytes([10, 0, 0, 2]), 0)
