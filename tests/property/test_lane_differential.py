"""The compiled announce path against the reference: the same datagrams, the same effects.

(The compiled path: ``udpt._core.Lane`` in, for announces and scrapes; ``fold_answered``
out.)

docs/DESIGN.md §11. Two trackers are wired as the daemon wires them (state,
connection ids, quotas, intake, group-commit writer on an LMDB log in a temp dir,
the compiled endpoint); one reads each batch of datagrams through its
``udpt._core.Lane``, the other through ``UdpEndpoint.handle`` alone. Random
sequences of announces (every event, seeders and leechers, IPv4, IPv6 and mapped
sources, ids cached, not cached, stale or forged, windows crossed), connects,
scrapes and garbage go to both, under random limits and quotas tight enough to
refuse. After each batch everything a user or an operator can see must be equal:
the replies sent (bytes, destination, in order), the counters, the quotas, the
torrents being created, the state; and at the end the two logs, event for event.
(The connection-id caches may differ: they change how fast an id is checked, never
whether it is valid.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from random import Random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.bep15 import announce_request, connect_request, scrape_request
from udpt.addresses import canonical_ip
from udpt.clock import EventClock
from udpt.config import load_config
from udpt.connection_ids import ConnectionIds
from udpt.core import COMPILED, COMPILED_SOCKETS
from udpt.counters import Counters
from udpt.events.log import EventLog
from udpt.events.types import TorrentAdded, TorrentFlagged
from udpt.events.writer import GroupCommitWriter
from udpt.history.recovery import recover
from udpt.intake import Intake
from udpt.tracker import Policy, Tracker
from udpt.udp import BatchEndpoint, bind_udp_socket, open_endpoint

pytestmark = pytest.mark.skipif(
    not (COMPILED and COMPILED_SOCKETS), reason="the compiled core is not built"
)

SECRET = b"differential-secret-0123456789ab"
WINDOW_S = 2
HOSTS = ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.3", "fe80::1%lo", "2001:db8::7"]
HASHES = [bytes([n]) * 20 for n in range(1, 6)]
REGISTERED, FLAGGED = HASHES[:2], HASHES[2]
START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Limits:
    dynamic: bool
    quotas: bool
    max_peers: int
    max_ports: int
    max_torrents: int


limits = st.builds(
    Limits,
    st.booleans(),
    st.booleans(),
    st.sampled_from([2, 1000]),
    st.sampled_from([1, 64]),
    st.sampled_from([4, 5, 1000]),  # 3 torrents to start with: room for one or two more
)

# One datagram: (kind, host, source port, hash, event, left, num_want, announce port).
datagram = st.tuples(
    st.sampled_from(
        ["announce"] * 8 + ["uncached", "stale", "forged", "connect", "scrape", "garbage"]
    ),
    st.integers(0, len(HOSTS) - 1),
    st.sampled_from([0, 1, 2, 6881]),
    st.integers(0, len(HASHES) - 1),
    st.integers(0, 4),
    st.sampled_from([0, 1000]),
    st.sampled_from([-1, 0, 3, 200]),
    st.sampled_from([1, 2, 3, 51413]),
)
batches = st.lists(
    st.tuples(st.integers(0, 2500), st.lists(datagram, min_size=1, max_size=6)),
    min_size=1,
    max_size=12,
)


class Pipeline:
    """A tracker as the daemon wires it, on its own log; ``lane`` or the reference handle."""

    def __init__(self, work: Path, limits: Limits, lane: bool) -> None:
        self.work, self.limits, self.lane = work, limits, lane
        self.sent: list[tuple[bytes, Any]] = []

    async def open(self) -> None:
        config = load_config(None)
        udp = replace(
            config.udp,
            connection_id_lifetime=WINDOW_S,
            max_peers_per_torrent=self.limits.max_peers,
            max_ports_per_ip_per_torrent=self.limits.max_ports,
            max_torrents=self.limits.max_torrents,
        )
        quotas = replace(
            config.quotas,
            announces_per_second=1 if self.limits.quotas else 0,
            announce_burst=3,
            new_torrents_per_minute=1 if self.limits.quotas else 0,
            new_torrent_burst=2,
            recorded_refusals_per_minute=2,
        )
        mode = "dynamic" if self.limits.dynamic else "static"
        config = replace(config, udp=udp, quotas=quotas, mode=type(config.mode)(mode))
        self.log = EventLog(self.work / "log", sync=False)
        seeds = [TorrentAdded(START_MS, h, "test") for h in REGISTERED]
        self.log.append_batch(1, [*seeds, TorrentFlagged(START_MS, FLAGGED, "test")])
        self.state, _ = recover(self.log)
        self.ids = ConnectionIds(SECRET, WINDOW_S)
        self.tracker = Tracker(self.state, self.ids, Policy.from_config(config), Random(1))
        self.intake = Intake(self.state, self.tracker, Counters())
        self.writer = GroupCommitWriter(
            self.log, self.intake.committed, self.intake.failed, linger_s=0
        )
        self.intake.attach(self.writer)
        endpoint = await open_endpoint(
            bind_udp_socket("::", 0), self.tracker, self.intake, EventClock()
        )
        assert isinstance(endpoint, BatchEndpoint)
        self.endpoint = endpoint
        if not self.lane:  # the reference all the way: handle, and the intake's Python fold
            endpoint._lane = None
            self.intake._fold_announces = None
        send = endpoint._send_all

        def recorded(fd: int, messages: list[tuple[bytes, Any]]) -> bytes:
            self.sent.extend(messages)
            return send(fd, messages)

        endpoint._send_all = recorded

    async def take(self, batch: list[tuple[bytes, Any]], now_ms: int) -> None:
        self.endpoint.handle_all(batch, now_ms)
        await self.writer.drain()
        await self.intake.drain()
        await asyncio.sleep(0)  # the replies' flush

    def seen(self) -> tuple[object, ...]:
        counters, quotas = self.intake.counters, self.tracker.quotas
        return (
            list(self.sent),
            dict(counters.requests),
            dict(counters.responses),
            dict(counters.dropped),
            self.endpoint.received,
            (quotas.announces_refused, quotas.new_torrents_refused, quotas.silenced),
            (quotas.refusals_unrecorded, len(quotas)),
            dict(self.tracker.creating),
            self.state.snapshot(),
        )

    async def close(self) -> list[object]:
        await self.writer.close()
        self.endpoint.close()
        events = list(self.log.events())
        self.log.close()
        return events


def datagrams(
    step: tuple[Any, ...], now_ms: int, pipelines: list[Pipeline], n: int
) -> tuple[bytes, Any]:
    """One datagram of ``step`` and its source; ids issued by every pipeline alike."""
    kind, host, source_port, hash_index, event, left, num_want, port = step
    ip = canonical_ip(HOSTS[host])
    now = now_ms / 1000
    tid = n.to_bytes(4, "big")
    if kind == "connect":
        data = connect_request(tid)
    elif kind == "garbage":
        data = os.urandom(3 + n % 40)
    else:
        if kind in ("announce", "scrape"):  # the id the client got, cached by every tracker
            (cid,) = {p.ids.issue(ip, now) for p in pipelines}  # one secret: one id
        elif kind == "uncached":  # the id of this window, from a tracker that restarted
            cid = ConnectionIds(SECRET, WINDOW_S).issue(ip, now)
        elif kind == "stale":  # the window before: still valid
            cid = ConnectionIds(SECRET, WINDOW_S).issue(ip, now - WINDOW_S)
        else:
            cid = n.to_bytes(8, "big")
        if kind == "scrape":
            data = scrape_request(cid, tid, HASHES[hash_index], HASHES[0])
        else:
            data = announce_request(
                cid,
                tid,
                HASHES[hash_index],
                b"-XX0001-" + bytes([host, port % 256]) * 6,
                downloaded=n * 1000,
                left=left,
                uploaded=n * 7,
                event=event,
                num_want=num_want,
                port=port,
            )
    addr: tuple[Any, ...] = (HOSTS[host], source_port)
    if ":" in HOSTS[host]:
        addr = (HOSTS[host], source_port, 0, 0)
    return data, addr


async def run(limits: Limits, steps: list[tuple[int, list[tuple[Any, ...]]]]) -> int:
    """Both pipelines through ``steps``, compared after each batch; what the lane took."""
    with tempfile.TemporaryDirectory(prefix="udpt-lane-") as tmp:
        pipelines = [Pipeline(Path(tmp) / "lane", limits, True)]
        pipelines.append(Pipeline(Path(tmp) / "reference", limits, False))
        for pipeline in pipelines:
            (pipeline.work).mkdir()
            await pipeline.open()
        now_ms, n = START_MS + 500, 0
        for elapsed, batch in steps:
            now_ms += elapsed
            made = []
            for step in batch:
                made.append(datagrams(step, now_ms, pipelines, n))
                n += 1
            for pipeline in pipelines:
                await pipeline.take(made, now_ms)
            lane, reference = (pipeline.seen() for pipeline in pipelines)
            assert lane == reference, (now_ms, batch)
        taken = pipelines[0].endpoint._lane.handled
        logs = [await pipeline.close() for pipeline in pipelines]
        assert logs[0] == logs[1]
        return taken


@settings(max_examples=120, deadline=None)
@given(limits, batches)
def test_the_lane_does_what_the_reference_handle_does(
    limits: Limits, steps: list[tuple[int, list[tuple[Any, ...]]]]
) -> None:
    asyncio.run(run(limits, steps))


def test_a_window_boundary_goes_to_the_reference() -> None:
    """Within 2 ms of a window's end the lane leaves the id check to the reference."""
    steps = [
        (WINDOW_S * 1000 - 503, [("announce", 0, 6881, 0, 2, 1000, 3, 1)]),  # 3 ms before
        (2, [("announce", 0, 6881, 0, 2, 1000, 3, 1)]),  # 1 ms before
        (2, [("announce", 0, 6881, 0, 0, 0, 3, 1)]),  # 1 ms after
    ]
    assert asyncio.run(run(Limits(True, False, 1000, 64, 1000), steps)) == 1


def test_ipv6_sources_are_answered_where_they_came_from() -> None:
    assert socket.has_ipv6
    steps = [(10, [("announce", 2, 6881, 0, 2, 1000, 3, 1), ("announce", 5, 6881, 0, 2, 0, 3, 2)])]
    assert asyncio.run(run(Limits(True, False, 1000, 64, 1000), steps)) == 2


def test_creations_in_flight_count_against_the_torrent_limit_alike() -> None:
    """Two announces creating two torrents in one batch, with room for one: one refused."""
    steps = [(10, [("announce", 0, 6881, 3, 2, 1000, 3, 1), ("announce", 1, 6881, 4, 2, 0, 3, 1)])]
    assert asyncio.run(run(Limits(True, False, 1000, 64, 4), steps)) == 1


def test_an_id_of_the_window_before_is_taken_by_the_lane_once_cached() -> None:
    """Clients keep their id across a window's end: the ids of the window that ended stay
    cached, so the lane need not hand those announces to the reference."""
    again = ("stale", 0, 6881, 0, 0, 1000, 3, 1)  # the id issued in the window before
    steps = [
        (10, [("announce", 0, 6881, 0, 2, 1000, 3, 1)]),
        # The first datagram of a new window goes to the reference, which moves the cache
        # on; the next one with the old id is the lane's.
        (WINDOW_S * 1000, [again, again]),
        (0, [("stale", 1, 6881, 0, 0, 1000, 3, 1)]),  # never issued here: the reference's
    ]
    assert asyncio.run(run(Limits(True, False, 1000, 64, 1000), steps)) == 2
