"""Modes and flags as UDPT users rely on them (docs/UDPT-COMPAT.md, "UDP behaviour to keep").

The real daemon on 127.0.0.1, a real log; admin changes are appended to the log
through the daemon's own writer, as the REST API does. Error replies are compared
byte for byte: UDPT's texts, ASCII, no trailing NUL.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bep15 import TrackerClient, TrackerError, announce_request, peer_id_for
from tests.support.daemon import make_config, record, running_tracker
from udpt.clock import ManualClock
from udpt.config import Config, LogConfig
from udpt.daemon import Running
from udpt.events.log import EventLog
from udpt.events.types import (
    AnnounceRefused,
    Event,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentUnflagged,
)

NOT_REGISTERED = b"torrent not registered."
FLAGGED = b"torrent flagged."
TORRENT_NOT_ALLOWED = b"torrent not allowed."
ERROR = (3).to_bytes(4, "big")
LOCALHOST = bytes([127, 0, 0, 1])
EVENT_COMPLETED, EVENT_STOPPED = 1, 3


def info_hash(name: str) -> bytes:
    return hashlib.sha1(name.encode()).digest()


IH1, IH2, IH3 = info_hash("IH1"), info_hash("IH2"), info_hash("IH3")


@dataclass
class TrackerUnderTest:
    """The running daemon, its clock and config, and a connected client."""

    running: Running
    clock: ManualClock
    config: Config
    client: TrackerClient

    async def admin(self, kind: type, info_hash: bytes) -> None:
        """Append an admin event (TorrentAdded, TorrentFlagged, ...) as the API would."""
        event: Event = kind(int(self.clock() * 1000), info_hash, "test")
        await record(self.running, event)

    async def refusal(self, info_hash: bytes, port: int = 6881) -> bytes:
        """The raw reply to an announce that must be refused; checks its framing."""
        transaction_id = self.client.next_transaction_id()
        datagram = announce_request(
            self.client.connection_id, transaction_id, info_hash, peer_id_for(port), port=port
        )
        reply = await self.client.request(datagram)
        assert reply[:8] == ERROR + transaction_id, reply.hex()
        return reply[8:]

    async def scrape(self, info_hash: bytes) -> tuple[int, int, int]:
        (entry,) = (await self.client.scrape(info_hash)).entries
        return entry


@asynccontextmanager
async def tracker_in(tmp_path: Path, mode: str, **udp: int) -> AsyncIterator[TrackerUnderTest]:
    clock = ManualClock()
    config = make_config(
        tmp_path / "log", mode=mode, log=LogConfig(fsync=False, commit_linger_ms=0), **udp
    )
    async with (
        running_tracker(config, clock=clock) as running,
        AsyncExitStack() as stack,
    ):
        client = await TrackerClient.open(running.udp_addresses[0][:2])
        stack.callback(client.close)
        await client.connect()
        yield TrackerUnderTest(running, clock, config, client)


def logged_refusals(config: Config) -> list[AnnounceRefused]:
    with EventLog(config.db_path, readonly=True) as log:
        return [event for _, event in log.events() if type(event) is AnnounceRefused]


@pytest.mark.parametrize("mode", ["static", "private"])
async def test_closed_modes_refuse_unregistered_torrents(tmp_path: Path, mode: str) -> None:
    async with tracker_in(tmp_path, mode) as tracker:
        assert await tracker.refusal(IH1) == NOT_REGISTERED
        assert await tracker.scrape(IH1) == (0, 0, 0)  # the refusal created nothing
        await tracker.admin(TorrentAdded, IH1)
        reply = await tracker.client.announce(IH1)
        assert (reply.leechers, reply.seeders) == (1, 0)
        # A dropped torrent is unregistered again.
        await tracker.admin(TorrentDropped, IH1)
        assert await tracker.refusal(IH1) == NOT_REGISTERED


@pytest.mark.parametrize("mode", ["dynamic", "static", "private"])
async def test_flagged_torrent_is_refused_in_every_mode(tmp_path: Path, mode: str) -> None:
    async with tracker_in(tmp_path, mode) as tracker:
        await tracker.admin(TorrentAdded, IH1)
        await tracker.client.announce(IH1)
        await tracker.admin(TorrentFlagged, IH1)
        assert await tracker.refusal(IH1) == FLAGGED
        assert await tracker.refusal(IH1, port=7001) == FLAGGED  # every peer, not just one
        await tracker.admin(TorrentUnflagged, IH1)
        reply = await tracker.client.announce(IH1)
        assert (reply.leechers, reply.seeders) == (1, 0)


async def test_not_registered_is_checked_before_flagged(tmp_path: Path) -> None:
    # UDPT's order, in static mode: an unknown torrent is "not registered"; a flagged one
    # (flagging registers it, as UDPT's POST does) is "flagged"; once dropped, it is
    # unknown again.
    async with tracker_in(tmp_path, "static") as tracker:
        await tracker.admin(TorrentFlagged, IH2)
        assert await tracker.refusal(IH1) == NOT_REGISTERED
        assert await tracker.refusal(IH2) == FLAGGED
        await tracker.admin(TorrentDropped, IH2)
        assert await tracker.refusal(IH2) == NOT_REGISTERED


async def test_dynamic_mode_holds_at_most_max_torrents(tmp_path: Path) -> None:
    # A flood of random info hashes must not grow memory without bound (docs/PROTOCOL.md §11.4).
    async with tracker_in(tmp_path, "dynamic", max_torrents=2) as tracker:
        await tracker.client.announce(IH1)
        await tracker.client.announce(IH2)
        assert await tracker.refusal(IH3) == TORRENT_NOT_ALLOWED
        assert len(tracker.running.state.torrents) == 2
        # Known torrents still work, and a `stopped` for an unknown one is not refused.
        assert (await tracker.client.announce(IH1, port=7001)).leechers == 2
        assert (await tracker.client.announce(IH3, event=EVENT_STOPPED)).leechers == 0
    assert [e.reason for e in logged_refusals(tracker.config)] == [RefusalReason.TORRENT_LIMIT]


async def test_flagging_clears_peers_and_scrape_still_answers(tmp_path: Path) -> None:
    async with tracker_in(tmp_path, "dynamic") as tracker:
        client = tracker.client
        await client.announce(IH1, left=0, port=7001)
        await client.announce(IH1, left=1000, port=7002)
        await client.announce(IH1, event=EVENT_COMPLETED, left=0, port=7003)
        assert await tracker.scrape(IH1) == (2, 1, 1)
        await tracker.admin(TorrentFlagged, IH1)
        # Scrape answers with the counters: no peers any more, the completions kept.
        assert await tracker.scrape(IH1) == (0, 1, 0)
        with pytest.raises(TrackerError, match=r"^torrent flagged\.$"):
            await client.announce(IH1, event=EVENT_STOPPED, port=7001)
        # Unflagged, the torrent starts from an empty swarm: the old peers are gone.
        await tracker.admin(TorrentUnflagged, IH1)
        reply = await client.announce(IH1, port=7004)
        assert (reply.seeders, reply.leechers, reply.peers) == (0, 1, frozenset())


async def test_refused_announces_are_recorded_with_their_reason(tmp_path: Path) -> None:
    async with tracker_in(tmp_path, "static") as tracker:
        await tracker.admin(TorrentFlagged, IH2)
        await tracker.admin(TorrentAdded, IH3)
        await tracker.refusal(IH1, port=7001)
        await tracker.refusal(IH2, port=7002)
        await tracker.client.announce(IH3, port=7003)
        config = tracker.config
    at_ms = 1_000_000_000
    assert logged_refusals(config) == [
        AnnounceRefused(
            at_ms, IH1, LOCALHOST, 7001, peer_id_for(7001), RefusalReason.NOT_REGISTERED
        ),
        AnnounceRefused(at_ms, IH2, LOCALHOST, 7002, peer_id_for(7002), RefusalReason.FLAGGED),
    ]
