"""Quotas per source and hard limits, over real sockets from many loopback sources.

The clock is a manual one, so token buckets refill only when a test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.bep15 import (
    TrackerClient,
    TrackerError,
    announce_request,
    connect_request,
    parse_announce_response,
    parse_error_response,
    peer_id_for,
)
from tests.support.daemon import make_config, running_tracker
from udpt.clock import ManualClock
from udpt.config import LogConfig, QuotaConfig
from udpt.daemon import Running
from udpt.events.log import EventLog
from udpt.events.types import AnnounceRefused

FAST_LOG = LogConfig(fsync=False, commit_linger_ms=0)
NO_QUOTAS = QuotaConfig(announces_per_second=0, new_torrents_per_minute=0)


def info_hash(n: int) -> bytes:
    return n.to_bytes(20, "big")


@asynccontextmanager
async def tracker(
    tmp_path: Path, clock: ManualClock, quotas: QuotaConfig, **udp: Any
) -> AsyncIterator[Running]:
    config = make_config(tmp_path / "log", log=udp.pop("log", FAST_LOG), quotas=quotas, **udp)
    async with running_tracker(config, clock=clock) as running:
        yield running


@asynccontextmanager
async def clients(running: Running, *hosts: str) -> AsyncIterator[list[TrackerClient]]:
    async with AsyncExitStack() as stack:
        opened = []
        for host in hosts:
            client = await TrackerClient.open(running.udp_addresses[0][:2], host)
            stack.callback(client.close)
            await client.connect()
            opened.append(client)
        yield opened


async def test_one_source_creates_no_more_torrents_than_its_quota(tmp_path: Path) -> None:
    quotas = QuotaConfig(
        new_torrent_burst=5, new_torrents_per_minute=1, error_replies_per_second=100
    )
    clock = ManualClock()
    async with (
        tracker(tmp_path, clock, quotas) as running,
        clients(running, "127.0.0.2", "127.0.0.3") as (flooder, neighbour),
    ):
        refused = []
        for n in range(20):  # a random-hash flood, one torrent each
            try:
                await flooder.announce(info_hash(n))
            except TrackerError as error:
                refused.append(str(error))
        assert refused == ["too many new torrents."] * 15
        assert len(running.state.torrents) == 5
        # Torrents that exist still take the flooder's announces.
        assert (await flooder.announce(info_hash(0), port=7001)).leechers == 2
        # Another source is not shut out.
        assert (await neighbour.announce(info_hash(100))).leechers == 1
        # A minute later the flooder may create one more.
        clock.advance(60)
        await flooder.connect()
        assert (await flooder.announce(info_hash(200))).leechers == 1
        with pytest.raises(TrackerError, match=r"^too many new torrents\.$"):
            await flooder.announce(info_hash(201))


async def test_sixty_four_sources_are_each_held_to_their_own_quota(tmp_path: Path) -> None:
    quotas = QuotaConfig(
        new_torrent_burst=3, new_torrents_per_minute=1, error_replies_per_second=100
    )
    hosts = [f"127.0.0.{n}" for n in range(2, 66)]
    async with (
        tracker(tmp_path, ManualClock(), quotas) as running,
        clients(running, *hosts) as flooders,
    ):

        async def flood(client: TrackerClient, base: int) -> int:
            created = 0
            for n in range(10):
                try:
                    await client.announce(info_hash(base + n))
                    created += 1
                except TrackerError:
                    pass
            return created

        created = await asyncio.gather(*(flood(c, 1000 * i) for i, c in enumerate(flooders)))
        assert created == [3] * 64
        assert len(running.state.torrents) == 3 * 64


async def test_a_source_over_its_announce_rate_is_told_once_then_ignored(tmp_path: Path) -> None:
    quotas = QuotaConfig(announce_burst=3, announces_per_second=1, error_replies_per_second=1)
    clock = ManualClock()
    async with (
        tracker(tmp_path, clock, quotas) as running,
        clients(running, "127.0.0.2") as (client,),
    ):
        for port in (7001, 7002, 7003):
            await client.announce(info_hash(1), port=port)
        with pytest.raises(TrackerError, match=r"^rate limit exceeded\.$"):
            await client.announce(info_hash(1), port=7004)
        # Past the error replies it may get, silence: the next reply answers the probe.
        await client.send(
            announce_request(client.connection_id, b"over", info_hash(1), peer_id_for(5))
        )
        await client.send(connect_request(b"prob"))
        assert (await client.recv())[4:8] == b"prob"
        # Counted as silence over quota, not as a bad connection id (it was a good one).
        assert running.counters.dropped["over_quota"] == 1
        assert running.counters.dropped["bad_connection_id"] == 0
        # Tokens come back with time.
        clock.advance(1)
        assert (await client.announce(info_hash(1), port=7005)).leechers == 4


async def test_max_torrents_holds_with_announces_still_waiting_for_their_commit(
    tmp_path: Path,
) -> None:
    # Regression: the limit counted only committed torrents, so announces in flight
    # passed it (1,408 torrents against a limit of 1,000 with 8,000 in flight).
    slow_commits = LogConfig(fsync=False, commit_linger_ms=300)
    async with (
        tracker(tmp_path, ManualClock(), NO_QUOTAS, log=slow_commits, max_torrents=10) as running,
        clients(running, "127.0.0.2") as (client,),
    ):
        for n in range(100):  # all sent before the first commit
            tid = n.to_bytes(4, "big")
            await client.send(
                announce_request(client.connection_id, tid, info_hash(n), peer_id_for(n))
            )
        replies = [await client.recv(timeout=10) for _ in range(100)]
        accepted = [r for r in replies if r[:4] == (1).to_bytes(4, "big")]
        refused = [
            parse_error_response(r).message for r in replies if r[:4] == (3).to_bytes(4, "big")
        ]
        assert len(accepted) == 10 and refused == ["torrent not allowed."] * 90
        assert all(parse_announce_response(r).leechers == 1 for r in accepted)
        assert len(running.state.torrents) == 10
        assert running.tracker.creating == {}  # nothing is left counted once applied


async def test_a_refusal_flood_costs_the_log_a_bounded_number_of_events(tmp_path: Path) -> None:
    # Regression: every refused announce was an event, so one host grew the log by
    # 2.6 MB/s with announces for torrents that do not exist.
    quotas = QuotaConfig(recorded_refusals_per_minute=10)
    config_db = tmp_path / "log"
    async with (
        tracker(tmp_path, ManualClock(), quotas, mode="static") as running,
        clients(running, "127.0.0.2", "127.0.0.3") as (flooder, other),
    ):
        for n in range(100):
            with pytest.raises(TrackerError, match=r"^torrent not registered\.$"):
                await flooder.announce(info_hash(n))
        with pytest.raises(TrackerError, match=r"^torrent not registered\.$"):
            await other.announce(info_hash(7))  # another source's refusals are its own
        assert running.tracker.quotas.refusals_unrecorded == 90
        assert running.counters.responses[("announce", "refused")] == 101
        assert running.counters.responses[("announce", "ok")] == 0
    with EventLog(config_db, readonly=True) as log:
        refused = [event for _, event in log.events() if type(event) is AnnounceRefused]
    assert [event.info_hash for event in refused] == [info_hash(n) for n in range(10)] + [
        info_hash(7)
    ]


async def test_a_full_torrent_refuses_newcomers_and_keeps_its_peers(tmp_path: Path) -> None:
    async with (
        tracker(tmp_path, ManualClock(), NO_QUOTAS, max_peers_per_torrent=3) as running,
        clients(running, "127.0.0.2", "127.0.0.3") as (stuffer, newcomer),
    ):
        for port in (7001, 7002, 7003):  # one host fills the swarm with its ports
            await stuffer.announce(info_hash(1), port=port)
        with pytest.raises(TrackerError, match=r"^torrent full\.$"):
            await stuffer.announce(info_hash(1), port=7004)
        with pytest.raises(TrackerError, match=r"^torrent full\.$"):
            await newcomer.announce(info_hash(1))
        # A peer already in it keeps announcing; once one leaves, a newcomer fits.
        assert (await stuffer.announce(info_hash(1), port=7002)).leechers == 3
        await stuffer.announce(info_hash(1), port=7003, event=3)
        assert (await newcomer.announce(info_hash(1))).leechers == 3
        assert len(running.state.torrents[info_hash(1)].swarm) == 3


async def test_one_host_takes_no_more_places_in_a_swarm_than_its_limit(tmp_path: Path) -> None:
    async with (
        tracker(tmp_path, ManualClock(), NO_QUOTAS, max_ports_per_ip_per_torrent=3) as running,
        clients(running, "127.0.0.2", "127.0.0.3", "127.0.0.4") as (stuffer, *others),
    ):
        for port in (7001, 7002, 7003):
            await stuffer.announce(info_hash(1), port=port)
        with pytest.raises(TrackerError, match=r"^too many peers from your address\.$"):
            await stuffer.announce(info_hash(1), port=7004)
        # Other hosts still join, the stuffer's peers keep announcing, and the limit
        # is per torrent: the same host starts another swarm.
        for other in others:
            await other.announce(info_hash(1))
        assert (await stuffer.announce(info_hash(1), port=7003)).leechers == 5
        await stuffer.announce(info_hash(2), port=7004)
        # Once one of its peers leaves, the host has a place again.
        await stuffer.announce(info_hash(1), port=7001, event=3)
        assert (await stuffer.announce(info_hash(1), port=7004)).leechers == 5
        assert len(running.state.torrents[info_hash(1)].swarm) == 5
