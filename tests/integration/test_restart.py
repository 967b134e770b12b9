"""A restart on the same data directory brings back exactly the swarms that were served.

"Exactly" is checked on the canonical snapshot bytes (``TrackerState.snapshot()``):
torrents, flags, registrations, completed counters, every peer record in table
order, and the event counters. Two ways back are checked: the newest snapshot
(written at shutdown) plus the tail, and a full replay of a log whose snapshots
were deleted. Then a client is served as before: its old connection id still
works (the secret is kept in the log) and it sees the restored peers.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.support.bep15 import (
    TrackerClient,
    announce_request,
    parse_announce_response,
    peer_id_for,
)
from tests.support.daemon import make_config, record, running_tracker
from udpt.clock import ManualClock
from udpt.config import Config, LogConfig
from udpt.daemon import Running
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted, AnnounceEvent, TorrentAdded, TorrentFlagged

EVENT_NONE, EVENT_COMPLETED, EVENT_STOPPED = 0, 1, 3
IPV6_PEER = socket.inet_pton(socket.AF_INET6, "2001:db8::7")


def info_hash(name: str) -> bytes:
    return hashlib.sha1(name.encode()).digest()


IH1, IH2, IH3, IH4, IH5 = (info_hash(f"IH{n}") for n in range(1, 6))
HASHES = (IH1, IH2, IH3, IH4, IH5)


@dataclass(frozen=True)
class Served:
    """What the first run left behind, as a user and as the state saw it."""

    config: Config
    stopped_at: float
    snapshot: bytes
    scrape: tuple[tuple[int, int, int], ...]
    connection_id: bytes
    ipv4_peers_of_ih1: frozenset[tuple[str, int]]


async def serve_a_history(tmp_path: Path) -> Served:
    """Run the tracker through announces, completions, stops, expiry, flags and IPv6 peers."""
    config = make_config(
        tmp_path / "log", cleanup_interval=1, log=LogConfig(fsync=False, commit_linger_ms=0)
    )
    clock = ManualClock()
    async with running_tracker(config, clock=clock, seed=1) as running:
        address = running.udp_addresses[0][:2]
        first = await TrackerClient.open(address, "127.0.0.1")
        second = await TrackerClient.open(address, "127.0.0.2")
        try:
            await first.connect()
            await first.announce(IH4, port=6000)  # will expire
            clock.advance(2701)
            await first.connect()
            await second.connect()
            await first.announce(IH1, peer_id=peer_id_for(1), left=0, port=6001)
            await first.announce(IH1, peer_id=peer_id_for(2), port=6002)
            await second.announce(IH1, peer_id=peer_id_for(3), port=6003)
            await second.announce(
                IH1, peer_id=peer_id_for(3), event=EVENT_COMPLETED, left=0, port=6003
            )
            await second.announce(IH1, peer_id=peer_id_for(4), port=6004)
            await second.announce(IH1, peer_id=peer_id_for(4), event=EVENT_STOPPED, port=6004)
            await _announce_ipv6(running, clock, IH1)
            await second.announce(IH2, port=6005)
            await first.announce(IH5, event=EVENT_COMPLETED, left=0, port=6006)
            await record(running, TorrentFlagged(_ms(clock), IH2, "test"))
            await record(running, TorrentAdded(_ms(clock), IH3, "test"))
            scrape = (await first.scrape(*HASHES)).entries
            snapshot = running.state.snapshot()
        finally:
            first.close()
            second.close()
    # IH1: two IPv4 seeders (one completed), an IPv6 seeder, a leecher; IH2 flagged;
    # IH3 added; IH4's only peer expired; IH5 completed by a peer never seen before.
    assert scrape == ((3, 1, 1), (0, 0, 0), (0, 0, 0), (0, 0, 0), (1, 1, 0))
    return Served(
        config,
        clock(),
        snapshot,
        scrape,
        first.connection_id,
        frozenset({("127.0.0.1", 6001), ("127.0.0.1", 6002), ("127.0.0.2", 6003)}),
    )


def _ms(clock: ManualClock) -> int:
    return int(clock() * 1000)


async def _announce_ipv6(running: Running, clock: ManualClock, info_hash_: bytes) -> None:
    """An IPv6 seeder, recorded as the UDP path records one (no IPv6 socket needed)."""
    await record(
        running,
        AnnounceAccepted(
            _ms(clock),
            info_hash_,
            IPV6_PEER,
            51413,
            peer_id_for(6),
            7,
            AnnounceEvent.STARTED,
            0,
            0,
            0,
        ),
    )


async def check_served_again(served: Served) -> None:
    """Restart on the same directory: same state bytes, same answers, old id accepted."""
    async with running_tracker(served.config, clock=ManualClock(served.stopped_at)) as running:
        assert running.state.snapshot() == served.snapshot
        async with await TrackerClient.open(running.udp_addresses[0][:2]) as client:
            assert (await client.scrape(*HASHES, connection_id=served.connection_id)).entries == (
                served.scrape
            )
            reply = await client.announce(
                IH1, connection_id=served.connection_id, num_want=200, port=6100
            )
            assert reply.peers == served.ipv4_peers_of_ih1


async def test_restart_restores_the_swarms_exactly(tmp_path: Path) -> None:
    served = await serve_a_history(tmp_path)
    with EventLog(served.config.db_path, readonly=True) as log:
        assert log.snapshot_seqs() == [log.last_seq()]  # the shutdown snapshot covers all
    await check_served_again(served)


async def test_restart_by_full_replay_restores_the_swarms_exactly(tmp_path: Path) -> None:
    served = await serve_a_history(tmp_path)
    with EventLog(served.config.db_path) as log:
        log.delete_snapshots()
        assert log.snapshot_seqs() == []
    await check_served_again(served)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Let the loop run until ``condition()`` holds; TimeoutError after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


async def test_announce_waiting_for_its_commit_at_shutdown_is_answered_and_kept(
    tmp_path: Path,
) -> None:
    # A long linger keeps the announce waiting for its commit when the stop comes.
    config = make_config(tmp_path / "log", log=LogConfig(fsync=False, commit_linger_ms=1000))
    clock = ManualClock()
    async with AsyncExitStack() as stack:
        async with running_tracker(config, clock=clock) as running:
            client = await TrackerClient.open(running.udp_addresses[0][:2])
            await stack.enter_async_context(client)
            await client.connect()
            endpoint = running.endpoints[0]
            received = endpoint.received
            await client.send(announce_request(client.connection_id, b"last", IH1, peer_id_for(1)))
            await until(lambda: endpoint.received > received)
            assert running.writer.pending == 1
        reply = parse_announce_response(await client.recv())
    assert (reply.transaction_id, reply.leechers) == (b"last", 1)
    async with running_tracker(config, clock=clock) as running:
        assert running.state.torrents[IH1].swarm.leechers == 1


async def test_peers_that_expired_while_the_tracker_was_down_are_gone_at_start(
    tmp_path: Path,
) -> None:
    # The catch-up sweep runs during start-up, so the first sweep after a long stop
    # cannot stall the loop while it serves; it is an event like any other.
    config = make_config(tmp_path / "log", log=LogConfig(fsync=False, commit_linger_ms=0))
    clock = ManualClock()
    async with running_tracker(config, clock=clock) as running:
        async with await TrackerClient.open(running.udp_addresses[0][:2]) as client:
            await client.connect()
            await client.announce(IH1)
        assert len(running.state.torrents[IH1].swarm) == 1
    clock.advance(config.udp.peer_timeout + 1)
    async with running_tracker(config, clock=clock) as running:
        assert len(running.state.torrents[IH1].swarm) == 0  # before any request
    with EventLog(config.db_path, readonly=True) as log:
        kinds = [type(event).__name__ for _, event in log.events()]
    assert kinds.count("PeersExpired") >= 1
    # A restart with nothing due records nothing.
    async with running_tracker(config, clock=clock):
        pass
    with EventLog(config.db_path, readonly=True) as log:
        assert [type(event).__name__ for _, event in log.events()] == kinds
