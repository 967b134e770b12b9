"""docs/PROTOCOL.md §15, groups A to F, against the real daemon over real UDP sockets.

Every test starts ``udpt.daemon.serve`` on an ephemeral port (real LMDB log in a
temp directory, fsync off for speed: durability has its own tests) with a
``ManualClock`` at t = 1 000 000 and a seeded RNG, and talks to it with the
independent BEP 15 client of ``tests.support.bep15``. Simulated IPv4 peers are
client sockets on 127.0.0.1, 127.0.0.2, ... and distinct announced ports.

Silence is asserted without waiting (docs/STYLE.md): the ignored datagram is followed
by a probe on the slowest path (an announce, which is answered only after the
writer commits it), and the first reply must answer the probe. The tracker's
datagram counter proves that both datagrams arrived.

Cases checked on every reply rather than in a test of their own: D28 (interval
and transaction id, in ``announce``), F3 (the support parsers refuse a reply whose
action is neither the request's nor 3) and F9 (they refuse a peer part that is not
a whole number of 6- or 18-byte entries). F1 is checked on every error reply
(``assert_error_reply``). F7 is not covered: udpt has no ``max_torrents`` setting.
"""

from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

import pytest

from tests.support.bep15 import (
    PROTOCOL_MAGIC,
    AnnounceResponse,
    TrackerClient,
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
    parse_scrape_response,
    peer_id_for,
    scrape_request,
)
from tests.support.daemon import make_config, running_tracker
from udpt.clock import ManualClock
from udpt.config import LogConfig
from udpt.daemon import Running
from udpt.wire import AnnounceRequest, parse_request

SEED = 15
INTERVAL = 1800
FAST_LOG = LogConfig(fsync=False, commit_linger_ms=0)

CONNECT = bytes(4)
ANNOUNCE = (1).to_bytes(4, "big")
ERROR = (3).to_bytes(4, "big")
EVENT_NONE, EVENT_COMPLETED, EVENT_STARTED, EVENT_STOPPED = 0, 1, 2, 3
# Datagrams sent before waiting for an answer. Replies, and requests, must fit a socket's
# receive buffer, which is 208 KiB (doubled) on a host with the default rmem_max.
WINDOW = 50


def info_hash(name: str) -> bytes:
    return hashlib.sha1(name.encode()).digest()


IH1, IH2, IH9, IH_UNKNOWN = info_hash("IH1"), info_hash("IH2"), info_hash("IH9"), info_hash("?")
PROBE_HASH = info_hash("probe")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- the tracker under test ------------------------------------------------------------


@dataclass
class Server:
    """A running tracker, its clock, and the clients a test opened on it."""

    running: Running
    clock: ManualClock
    clients: AsyncExitStack

    @property
    def port(self) -> int:
        return self.running.udp_addresses[0][1]

    @property
    def received(self) -> int:
        """Datagrams the tracker has read from its socket so far."""
        return self.running.endpoints[0].received

    async def client(self, host: str = "127.0.0.1", *, connect: bool = True) -> TrackerClient:
        """A client socket on ``host`` (127.0.0.x or ::1), connected to the tracker."""
        target = "::1" if ":" in host else "127.0.0.1"
        client = await TrackerClient.open((target, self.port), host)
        self.clients.callback(client.close)
        if connect:
            await client.connect()
        return client


@asynccontextmanager
async def serving(tmp_path: Path, *, host: str = "127.0.0.1", **udp: Any) -> AsyncIterator[Server]:
    """The daemon on ``host`` port 0, its log in ``tmp_path``; ``udp`` overrides settings."""
    clock = ManualClock()
    config = make_config(tmp_path / "log", log=FAST_LOG, **udp)
    async with (
        running_tracker(config, host=host, clock=clock, seed=SEED) as running,
        AsyncExitStack() as clients,
    ):
        yield Server(running, clock, clients)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with serving(tmp_path) as served:
        yield served


@pytest.fixture
async def dual_stack(tmp_path: Path) -> AsyncIterator[Server]:
    """A tracker on one ``::`` socket that serves IPv4 (as ::ffff:a.b.c.d) and IPv6."""
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1)")
    async with serving(tmp_path, host="::") as served:
        yield served


# -- client helpers ----------------------------------------------------------------------


async def announce(
    client: TrackerClient, info_hash: bytes, *, port: int = 6881, **fields: Any
) -> AnnounceResponse:
    """An announce that must be answered; checks what every announce reply must satisfy.

    The peer id defaults to one per announced port (a simulated peer is an ip:port).
    """
    fields.setdefault("peer_id", peer_id_for(port))
    reply = await client.announce(info_hash, port=port, **fields)
    assert reply.interval == INTERVAL  # D28 (the client has checked the transaction id)
    assert reply.peer_count == len(reply.peers), "duplicate peers in one reply"
    assert (client.local_address[0], port) not in reply.peers, "the requester got itself"
    return reply


async def scrape(client: TrackerClient, *info_hashes: bytes) -> list[tuple[int, int, int]]:
    """(seeders, completed, leechers) per hash."""
    return list((await client.scrape(*info_hashes)).entries)


async def populate(client: TrackerClient, info_hash: bytes, ports: Sequence[int]) -> None:
    """One leecher per port on ``client``'s IP, ``WINDOW`` announces in flight at a time."""
    for start in range(0, len(ports), WINDOW):
        sent = set()
        for port in ports[start : start + WINDOW]:
            transaction_id = client.next_transaction_id()
            sent.add(transaction_id)
            await client.send(
                announce_request(
                    client.connection_id,
                    transaction_id,
                    info_hash,
                    peer_id_for(port),
                    num_want=0,
                    port=port,
                )
            )
        answered = set()
        for _ in sent:
            reply = await client.recv()
            assert reply[:4] == ANNOUNCE, reply.hex()
            answered.add(reply[4:8])
        assert answered == sent


def probe_datagram(client: TrackerClient) -> bytes:
    """A stopped announce on a hash nobody uses: it goes through the writer, changes nothing."""
    return announce_request(
        client.connection_id,
        client.next_transaction_id(),
        PROBE_HASH,
        client.peer_id,
        event=EVENT_STOPPED,
    )


async def assert_ignored(server: Server, client: TrackerClient, *datagrams: bytes) -> None:
    """Send ``datagrams``, then a probe; the first reply must answer the probe.

    A reply to any of the datagrams would arrive first: it is sent at once or, for an
    announce, after a commit no later than the probe's.
    """
    received = server.received
    for datagram in datagrams:
        await client.send(datagram)
    probe = probe_datagram(client)
    reply = await client.request(probe)
    assert reply[:8] == ANNOUNCE + probe[12:16], f"a reply to an ignored datagram: {reply.hex()}"
    assert server.received == received + len(datagrams) + 1, "a datagram was lost on the way"


def assert_error_reply(reply: bytes, transaction_id: bytes) -> None:
    """F1: action 3, the request's transaction id, 1 to 64 bytes of UTF-8 without NUL."""
    assert reply[:8] == ERROR + transaction_id, reply.hex()
    assert 9 <= len(reply) <= 72
    assert "\0" not in reply[8:].decode("utf-8")


# -- A. Framing and dispatch -------------------------------------------------------------


@pytest.mark.parametrize("transaction_id", ["01020304", "00000000", "ffffffff", "80000000"])
@pytest.mark.parametrize("extra", [b"", bytes.fromhex("deadbeef")], ids=["A3", "A4"])
async def test_connect_reply_is_16_bytes_and_echoes_the_transaction_id(
    server: Server, transaction_id: str, extra: bytes
) -> None:
    # A3, A4 (extra bytes ignored), A10 (transaction ids are copied, never interpreted).
    client = await server.client(connect=False)
    tid = bytes.fromhex(transaction_id)
    reply = await client.request(connect_request(tid) + extra)
    assert len(reply) == 16
    assert reply[:8] == CONNECT + tid
    assert parse_connect_response(reply).connection_id != bytes(8)


def _with_id(connection_id: bytes, action: int, tail: bytes = b"") -> bytes:
    return connection_id + struct.pack("!I4s", action, b"\xba\xd0\xba\xd0") + tail


NOT_REQUESTS = {
    "A1 empty": lambda cid: b"",
    "A2 15 bytes": lambda cid: bytes.fromhex("0000041727101980 00000000 010203"),
    "A5 wrong magic": lambda cid: _with_id((PROTOCOL_MAGIC + 1).to_bytes(8, "big"), 0),
    "A6 zero magic": lambda cid: _with_id(bytes(8), 0),
    "A7 action 3": lambda cid: _with_id(PROTOCOL_MAGIC.to_bytes(8, "big"), 3),
    "A8 action 4": lambda cid: _with_id(cid, 4, bytes(100)),
    "A9 action 0xffffffff": lambda cid: _with_id(cid, 0xFFFFFFFF),
}


@pytest.mark.parametrize("case", NOT_REQUESTS)
async def test_datagram_that_is_no_request_gets_no_reply(server: Server, case: str) -> None:
    client = await server.client()
    await assert_ignored(server, client, NOT_REQUESTS[case](client.connection_id))


def _fuzz_datagram(rng: Random) -> bytes:
    """Random bytes of random length; a quarter start with the magic, to reach R4 and R5."""
    data = bytearray(rng.randbytes(rng.randint(0, 2048)))
    if len(data) >= 12 and rng.random() < 0.25:
        data[:12] = struct.pack("!QI", PROTOCOL_MAGIC, rng.choice([0, 1, 2, 3, 4]))
    return bytes(data)


async def test_random_datagrams_get_only_connect_replies(server: Server) -> None:
    # A11: 10 000 datagrams, lengths 0..2048, fixed seed. The tracker must survive them
    # all and answer exactly those that are valid connects, with a connect reply each.
    client = await server.client()
    rng = Random(SEED)
    answered = 0
    for _ in range(10_000 // WINDOW):
        datagrams = [_fuzz_datagram(rng) for _ in range(WINDOW)]
        received = server.received
        for datagram in datagrams:
            await client.send(datagram)
        probe = probe_datagram(client)
        await client.send(probe)
        replies = []
        while (reply := await client.recv())[:8] != ANNOUNCE + probe[12:16]:
            replies.append(reply)
        connects = [
            d[12:16]
            for d in datagrams
            if len(d) >= 16 and d[:12] == struct.pack("!QI", PROTOCOL_MAGIC, 0)
        ]
        assert [r[4:8] for r in replies] == connects
        assert all(len(r) == 16 and r[:4] == CONNECT for r in replies)
        assert server.received == received + len(datagrams) + 1
        answered += len(replies)
    assert answered > 0  # the seed does produce valid connects
    await announce(client, IH1)  # and the tracker still serves


# -- B. Connection ids -------------------------------------------------------------------


async def test_connection_id_from_connect_is_accepted(server: Server) -> None:
    # B1
    client = await server.client()
    reply = await announce(client, IH1)
    assert (reply.leechers, reply.seeders) == (1, 0)


FORGED_ID = Random(SEED).randbytes(8)
FORGED = {
    "B2 announce with the magic as id": announce_request(
        PROTOCOL_MAGIC.to_bytes(8, "big"), b"forg", IH1, peer_id_for(1)
    ),
    "B3 announce with a random id": announce_request(FORGED_ID, b"forg", IH1, peer_id_for(1)),
    "B4 scrape with a random id": scrape_request(FORGED_ID, b"forg", IH1),
    "C14 port 0 with a random id": announce_request(
        FORGED_ID, b"forg", IH1, peer_id_for(1), port=0
    ),
    "E6 scrape of no hash with a random id": scrape_request(FORGED_ID, b"forg"),
}


@pytest.mark.parametrize("case", FORGED)
async def test_request_with_a_forged_connection_id_gets_no_reply(server: Server, case: str) -> None:
    client = await server.client()
    await assert_ignored(server, client, FORGED[case])
    assert await scrape(client, IH1) == [(0, 0, 0)]  # and changed nothing


async def test_connection_id_is_bound_to_the_ip_it_was_issued_to(server: Server) -> None:
    # B5: an id from 127.0.0.1 is worthless from 127.0.0.2.
    first = await server.client("127.0.0.1")
    second = await server.client("127.0.0.2")
    stolen = announce_request(first.connection_id, b"stln", IH1, peer_id_for(1))
    await assert_ignored(server, second, stolen)
    assert await scrape(second, IH1) == [(0, 0, 0)]


async def test_connection_id_survives_a_new_source_port(server: Server) -> None:
    # B6: the id binds the IP only (NAT rebinding changes the port).
    first = await server.client("127.0.0.1")
    rebound = await server.client("127.0.0.1", connect=False)
    assert rebound.local_address[1] != first.local_address[1]
    reply = await announce(rebound, IH1, connection_id=first.connection_id)
    assert reply.leechers == 1


async def test_connection_id_is_honoured_for_at_least_120_s_and_not_after_240_s(
    server: Server,
) -> None:
    client = await server.client()
    issued = client.connection_id
    server.clock.advance(119)  # B7
    await announce(client, IH1, connection_id=issued, port=7001)
    server.clock.advance(1)  # B8: 120 s, the guaranteed minimum
    await announce(client, IH1, connection_id=issued, port=7002)
    server.clock.advance(121)  # B9: 241 s
    await client.connect()  # a fresh id for the probe
    await assert_ignored(
        server, client, announce_request(issued, b"late", IH1, peer_id_for(3), port=7003)
    )
    assert await scrape(client, IH1) == [(0, 0, 2)]


async def test_one_connection_id_serves_many_requests(server: Server) -> None:
    # B10: 5 announces on different hashes and 3 scrapes within 60 s, one id.
    client = await server.client()
    hashes = [info_hash(f"B10-{n}") for n in range(5)]
    for hash_ in hashes:
        await announce(client, hash_)
        server.clock.advance(7)
    for _ in range(3):
        assert await scrape(client, *hashes) == [(0, 0, 1)] * 5
        server.clock.advance(7)


async def test_connection_id_from_another_instance_is_refused(tmp_path: Path) -> None:
    # B11: a restart with a new data directory has a new secret.
    async with serving(tmp_path / "first") as first:
        old_id = (await first.client()).connection_id
    async with serving(tmp_path / "second") as second:
        client = await second.client()
        assert client.connection_id != old_id
        await assert_ignored(second, client, announce_request(old_id, b"old!", IH1, peer_id_for(1)))
        assert await scrape(client, IH1) == [(0, 0, 0)]


async def test_ipv4_client_of_a_dual_stack_socket_is_served_as_ipv4(dual_stack: Server) -> None:
    # B12: the source is seen as ::ffff:127.0.0.1; the id is bound to 127.0.0.1 itself.
    client = await dual_stack.client("127.0.0.1")
    ids, now = dual_stack.running.tracker.connection_ids, dual_stack.clock()
    assert ids.is_valid(client.connection_id, socket.inet_aton("127.0.0.1"), now)
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
    assert not ids.is_valid(client.connection_id, mapped, now)
    other = await dual_stack.client("127.0.0.2")
    await announce(other, IH1, port=7001)
    await announce(other, IH1, port=7002)
    reply = await announce(client, IH1)
    # D13: 6-byte entries that decode to the real IPv4 peers (never 18-byte entries).
    assert reply.size == 20 + 6 * 2
    assert reply.peers == {("127.0.0.2", 7001), ("127.0.0.2", 7002)}


async def test_ipv6_connection_id_is_refused_from_ipv4(dual_stack: Server) -> None:
    # B13
    v6 = await dual_stack.client("::1")
    v4 = await dual_stack.client("127.0.0.1")
    crossed = announce_request(v6.connection_id, b"cros", IH1, peer_id_for(1))
    await assert_ignored(dual_stack, v4, crossed)
    assert await scrape(v4, IH1) == [(0, 0, 0)]


# -- C. Announce parsing -----------------------------------------------------------------


async def test_announce_of_exactly_98_bytes_gets_a_compact_reply(server: Server) -> None:
    # C1
    client = await server.client()
    await announce(client, IH1, port=7001)
    datagram = announce_request(client.connection_id, b"C1C1", IH1, peer_id_for(2), port=7002)
    assert len(datagram) == 98
    reply = await client.request(datagram)
    assert len(reply) == 20 + 6
    assert parse_announce_response(reply).peers == {("127.0.0.1", 7001)}


async def test_announce_of_97_bytes_gets_no_reply_and_changes_nothing(server: Server) -> None:
    # C2
    client = await server.client()
    datagram = announce_request(client.connection_id, b"C2C2", IH1, peer_id_for(1))
    await assert_ignored(server, client, datagram[:97])
    assert await scrape(client, IH1) == [(0, 0, 0)]


BEP41_TAILS = {
    "C3 libtorrent URLData": (b"\x02\x09/announce", b"/announce"),
    "C4 old extensions field": (b"\x00\x00", b""),
    "C5 URLData, NOP, end": (b"\x02\x0c/dir?a=b&c=d\x01\x01\x00", b"/dir?a=b&c=d"),
    "C6 two URLData": (b"\x02\x04/dir\x02\x08?a=b&c=d", b"/dir?a=b&c=d"),
    "C7 empty URLData": (b"\x02\x00", b""),
    "C8 unknown option skipped": (b"\x05\x03abc\x02\x01/", b"/"),
    "C9 length past the end": (b"\x02\x10/ab", b""),
    "C10 type without length": (b"\x02", b""),
    "C11 end of options first": (b"\x00\x02\x01x", b""),
    "C12 300 NOPs": (b"\x01" * 300, b""),
}


@pytest.mark.parametrize("case", BEP41_TAILS)
async def test_announce_with_bep41_options_is_answered_normally(server: Server, case: str) -> None:
    tail, url_data = BEP41_TAILS[case]
    client = await server.client()
    datagram = announce_request(client.connection_id, b"BEP4", IH1, peer_id_for(1), options=tail)
    request = parse_request(datagram)
    assert isinstance(request, AnnounceRequest)
    assert request.url_data == url_data  # what the tracker reads from the options
    reply = parse_announce_response(await client.request(datagram))
    assert reply.transaction_id == b"BEP4"
    assert (reply.leechers, reply.seeders) == (1, 0)
    assert await scrape(client, IH1) == [(0, 0, 1)]


async def test_announce_with_port_0_gets_an_error_and_changes_nothing(server: Server) -> None:
    # C13 (and F1 for this error)
    client = await server.client()
    datagram = announce_request(client.connection_id, b"port", IH1, peer_id_for(1), port=0)
    assert_error_reply(await client.request(datagram), b"port")
    assert await scrape(client, IH1) == [(0, 0, 0)]


async def test_paused_and_unknown_events_are_plain_updates(server: Server) -> None:
    client = await server.client()
    # C15: libtorrent's "paused" (4) with data left: a leecher.
    reply = await announce(client, IH1, event=4, left=1000, port=7001)
    assert (reply.leechers, reply.seeders) == (1, 0)
    # C16: event 99 with nothing left: a seeder, and not a completion.
    reply = await announce(client, IH1, event=99, left=0, port=7002)
    assert (reply.leechers, reply.seeders) == (1, 1)
    assert await scrape(client, IH1) == [(1, 0, 1)]


async def test_ip_field_is_ignored(server: Server) -> None:
    # C17: the peer is its source address, never the address it claims.
    claimant = await server.client("127.0.0.1")
    await announce(claimant, IH1, ip=socket.inet_aton("10.0.0.1"), port=7001)
    other = await server.client("127.0.0.2")
    reply = await announce(other, IH1, port=7002)
    assert reply.peers == {("127.0.0.1", 7001)}


async def test_negative_left_is_a_leecher(server: Server) -> None:
    # C18
    client = await server.client()
    reply = await announce(client, IH1, left=-1)
    assert (reply.leechers, reply.seeders) == (1, 0)


async def test_huge_num_want_returns_every_eligible_peer(server: Server) -> None:
    # C19
    client = await server.client()
    for port in (7001, 7002, 7003):
        await announce(client, IH1, port=port)
    reply = await announce(client, IH1, num_want=0x7FFFFFFF, port=7004)
    assert reply.peers == {("127.0.0.1", port) for port in (7001, 7002, 7003)}


# -- D. Announce semantics ---------------------------------------------------------------


async def test_first_announces_see_each_other_but_never_themselves(server: Server) -> None:
    p1 = await server.client("127.0.0.1")
    p2 = await server.client("127.0.0.2")
    # D1
    reply = await announce(p1, IH1, port=7001)
    assert (reply.size, reply.leechers, reply.seeders) == (20, 1, 0)
    # D2
    reply = await announce(p2, IH1, port=7001)
    assert (reply.leechers, reply.seeders) == (2, 0)
    assert reply.peers == {("127.0.0.1", 7001)}
    # D3: a re-announce gets the other peer only.
    reply = await announce(p1, IH1, event=EVENT_NONE, port=7001)
    assert reply.peers == {("127.0.0.2", 7001)}


async def test_seeders_get_only_leechers_and_leechers_get_everyone(server: Server) -> None:
    client = await server.client()
    seeders = {7001, 7002}
    leechers = {7011, 7012, 7013}
    for port in sorted(seeders):
        await announce(client, IH1, left=0, port=port)
    for port in sorted(leechers):
        await announce(client, IH1, port=port)
    # D4: a seeder re-announces.
    reply = await announce(client, IH1, event=EVENT_NONE, left=0, port=7001)
    assert (reply.seeders, reply.leechers) == (2, 3)
    assert reply.peers == {("127.0.0.1", port) for port in leechers}
    # D5: a leecher re-announces.
    reply = await announce(client, IH1, event=EVENT_NONE, port=7011)
    assert reply.peers == {("127.0.0.1", port) for port in (seeders | leechers) - {7011}}


@pytest.fixture
async def one_host_swarms(tmp_path: Path) -> AsyncIterator[Server]:
    """A tracker that lets one host fill a swarm with its ports (its limit is tested elsewhere)."""
    async with serving(tmp_path, max_ports_per_ip_per_torrent=1000) as served:
        yield served


async def test_large_swarm_gives_a_random_sample_of_the_size_asked(
    one_host_swarms: Server,
) -> None:
    server = one_host_swarms
    swarm_client = await server.client("127.0.0.1")
    ports = range(10000, 10300)
    await populate(swarm_client, IH1, ports)
    swarm = {("127.0.0.1", port) for port in ports}
    requester = await server.client("127.0.0.2")
    # D6
    reply = await announce(requester, IH1, num_want=50)
    assert reply.peer_count == 50 and reply.peers <= swarm
    assert reply.leechers == 301
    # D7: -1 means the server default, 50.
    reply = await announce(requester, IH1, event=EVENT_NONE, num_want=-1)
    assert reply.peer_count == 50 and reply.peers <= swarm
    # D8
    reply = await announce(requester, IH1, event=EVENT_NONE, num_want=0)
    assert (reply.size, reply.leechers) == (20, 301)
    # D9 (and F6): capped at 200, the largest IPv4 reply.
    reply = await announce(requester, IH1, event=EVENT_NONE, num_want=1000)
    assert reply.peer_count == 200 and reply.peers <= swarm
    assert reply.size == 1220 <= 1232
    # D10: the sample is drawn anew each time.
    seen: set[tuple[str, int]] = set()
    for _ in range(20):
        seen |= (await announce(requester, IH1, event=EVENT_NONE, num_want=50)).peers
    assert len(seen) > 50


async def test_ipv6_reply_is_capped_at_66_peers_of_18_bytes(tmp_path: Path) -> None:
    # D11 (and F6: the largest IPv6 reply). One host fills the swarm: its limit is lifted.
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1)")
    async with serving(tmp_path, host="::", max_ports_per_ip_per_torrent=1000) as dual_stack:
        await _ipv6_reply_is_capped(dual_stack)


async def _ipv6_reply_is_capped(dual_stack: Server) -> None:
    swarm_client = await dual_stack.client("::1")
    ports = range(20000, 20100)
    await populate(swarm_client, IH1, ports)
    requester = await dual_stack.client("::1")
    reply = await announce(requester, IH1, num_want=1000, port=30000)
    assert reply.peer_count == 66
    assert reply.peers <= {("::1", port) for port in ports}
    assert reply.size == 20 + 18 * 66 == 1208 <= 1232


async def test_peer_list_holds_only_the_requesters_family(dual_stack: Server) -> None:
    # D12: counts cover both families; peers only the requester's.
    await announce(await dual_stack.client("127.0.0.2"), IH1, port=7001)
    await announce(await dual_stack.client("::1"), IH1, port=7002)
    reply = await announce(await dual_stack.client("127.0.0.1"), IH1, port=7003)
    assert reply.peers == {("127.0.0.2", 7001)}
    assert reply.size == 26
    assert (reply.leechers, reply.seeders) == (3, 0)


async def test_stopped_removes_the_peer_and_returns_no_peers(server: Server) -> None:
    # D14
    client = await server.client()
    await announce(client, IH1, port=7001)
    await announce(client, IH1, port=7002)
    reply = await announce(client, IH1, event=EVENT_STOPPED, port=7001)
    assert (reply.size, reply.leechers, reply.seeders) == (20, 1, 0)
    assert await scrape(client, IH1) == [(0, 0, 1)]
    reply = await announce(client, IH1, event=EVENT_NONE, port=7002)
    assert reply.peers == set()


async def test_stopped_on_an_unknown_torrent_creates_nothing(server: Server) -> None:
    # D15
    client = await server.client()
    reply = await announce(client, IH9, event=EVENT_STOPPED)
    assert (reply.size, reply.leechers, reply.seeders) == (20, 0, 0)
    assert await scrape(client, IH9) == [(0, 0, 0)]


async def test_completion_is_counted_once_per_peer(server: Server) -> None:
    client = await server.client()
    await announce(client, IH1, left=1000)
    # D16
    reply = await announce(client, IH1, event=EVENT_COMPLETED, left=0)
    assert (reply.seeders, reply.leechers) == (1, 0)
    assert await scrape(client, IH1) == [(1, 1, 0)]
    # D17: a retransmitted "completed" counts once.
    for _ in range(2):
        await announce(client, IH1, event=EVENT_COMPLETED, left=0)
    assert await scrape(client, IH1) == [(1, 1, 0)]
    # D21: after stopped the peer is new again, and may complete again.
    await announce(client, IH1, event=EVENT_STOPPED, left=0)
    await announce(client, IH1, event=EVENT_STARTED, left=1000)
    await announce(client, IH1, event=EVENT_COMPLETED, left=0)
    assert await scrape(client, IH1) == [(1, 2, 0)]


async def test_completed_with_data_left_is_not_a_completion(server: Server) -> None:
    # D18
    client = await server.client()
    await announce(client, IH1, left=1000)
    reply = await announce(client, IH1, event=EVENT_COMPLETED, left=500)
    assert (reply.seeders, reply.leechers) == (0, 1)
    assert await scrape(client, IH1) == [(0, 0, 1)]


async def test_starting_as_a_seeder_is_not_a_completion(server: Server) -> None:
    # D19
    client = await server.client()
    await announce(client, IH1, event=EVENT_STARTED, left=0)
    await announce(client, IH1, event=EVENT_NONE, left=0)
    assert await scrape(client, IH1) == [(1, 0, 0)]


async def test_completion_from_a_peer_never_seen_counts(server: Server) -> None:
    # D20: the tracker may have restarted or the peer expired.
    client = await server.client()
    reply = await announce(client, IH1, event=EVENT_COMPLETED, left=0)
    assert (reply.seeders, reply.leechers) == (1, 0)
    assert await scrape(client, IH1) == [(1, 1, 0)]


async def test_seeder_announcing_data_left_becomes_a_leecher(server: Server) -> None:
    # D22
    client = await server.client()
    await announce(client, IH1, left=0, port=7001)
    await announce(client, IH1, left=0, port=7002)
    await announce(client, IH1, left=1000, port=7003)
    reply = await announce(client, IH1, event=EVENT_NONE, left=1000, port=7001)
    assert (reply.seeders, reply.leechers) == (1, 2)


async def test_peer_is_its_ip_and_port_not_its_peer_id(server: Server) -> None:
    client = await server.client()
    # D23: one peer id on two ports is two peers.
    await announce(client, IH1, peer_id=peer_id_for(1), port=6881)
    reply = await announce(client, IH1, peer_id=peer_id_for(1), port=6882)
    assert reply.leechers == 2
    # D24: one ip:port with a new peer id (a restarted client) is still one peer.
    await announce(client, IH2, peer_id=peer_id_for(1), port=6881)
    reply = await announce(client, IH2, peer_id=peer_id_for(2), port=6881)
    assert reply.leechers == 1


@pytest.mark.parametrize(
    ("case", "silence", "still_there"), [("D25", 2701, False), ("D26", 2600, True)]
)
async def test_silent_peer_is_gone_after_the_peer_timeout(
    tmp_path: Path, case: str, silence: int, still_there: bool
) -> None:
    # The tracker records expiry at the first announce after cleanup_interval (1 s here).
    async with serving(tmp_path, cleanup_interval=1) as server:
        p1 = await server.client("127.0.0.1")
        await announce(p1, IH1, port=7001)
        server.clock.advance(silence)
        p2 = await server.client("127.0.0.2")  # connects after the clock moved
        reply = await announce(p2, IH1, port=7002)
        if still_there:
            assert reply.leechers == 2 and reply.peers == {("127.0.0.1", 7001)}
            assert await scrape(p2, IH1) == [(0, 0, 2)]
        else:
            assert reply.leechers == 1 and reply.peers == set()
            assert await scrape(p2, IH1) == [(0, 0, 1)]


async def test_hybrid_torrent_hashes_are_separate_swarms(server: Server) -> None:
    # D27: BEP 52 v1 hash and truncated v2 hash of the same info dictionary.
    info = b"d4:name4:test12:piece lengthi16384ee"
    v1, v2 = hashlib.sha1(info).digest(), hashlib.sha256(info).digest()[:20]
    client = await server.client()
    await announce(client, v1)
    reply = await announce(client, v2)
    assert reply.leechers == 1
    assert await scrape(client, v1, v2) == [(0, 0, 1), (0, 0, 1)]


@pytest.mark.parametrize("transaction_id", ["00000000", "ffffffff", "80000000"])
async def test_announce_reply_echoes_any_transaction_id(
    server: Server, transaction_id: str
) -> None:
    # D28 with the transaction ids that signed or zero-means-none readings would mangle.
    client = await server.client()
    tid = bytes.fromhex(transaction_id)
    datagram = announce_request(client.connection_id, tid, IH1, peer_id_for(1))
    reply = parse_announce_response(await client.request(datagram))
    assert (reply.transaction_id, reply.interval) == (tid, INTERVAL)


# -- E. Scrape ---------------------------------------------------------------------------


async def test_scrape_of_an_unknown_hash_is_zeros(server: Server) -> None:
    # E1
    client = await server.client()
    reply = await client.request(scrape_request(client.connection_id, b"E1E1", IH_UNKNOWN))
    assert reply == bytes.fromhex("00000002") + b"E1E1" + bytes(12)


async def test_scrape_gives_seeders_completed_leechers_in_that_order(server: Server) -> None:
    # E2: 2 seeders (one by completing), 1 leecher, 1 completion.
    client = await server.client()
    await announce(client, IH1, left=0, port=7001)
    await announce(client, IH1, left=1000, port=7002)
    await announce(client, IH1, left=1000, port=7003)
    await announce(client, IH1, event=EVENT_COMPLETED, left=0, port=7003)
    assert await scrape(client, IH1) == [(2, 1, 1)]


async def test_scrape_answers_every_hash_in_request_order(server: Server) -> None:
    client = await server.client()
    await announce(client, IH1, left=0)
    await announce(client, IH2)
    # E3
    reply = await client.request(scrape_request(client.connection_id, b"E3E3", IH1, IH9, IH2))
    assert len(reply) == 44
    assert parse_scrape_response(reply).entries == ((1, 0, 0), (0, 0, 0), (0, 0, 1))
    # E4
    assert await scrape(client, IH1, IH1) == [(1, 0, 0), (1, 0, 0)]


@pytest.mark.parametrize("hash_bytes", [0, 19], ids=["E5 no hash", "E12 19 bytes of hash"])
async def test_scrape_without_a_whole_hash_gets_an_error(server: Server, hash_bytes: int) -> None:
    client = await server.client()
    datagram = scrape_request(client.connection_id, b"noih", b"\x01" * hash_bytes)
    assert len(datagram) == 16 + hash_bytes
    assert_error_reply(await client.request(datagram), b"noih")


async def test_scrape_answers_at_most_74_hashes(server: Server) -> None:
    client = await server.client()
    hashes = [info_hash(f"E8-{n}") for n in range(100)]
    for n in (0, 73, 74, 99):
        await announce(client, hashes[n])
    # E7 (and F6)
    reply = await client.request(scrape_request(client.connection_id, b"E7E7", *hashes[:74]))
    assert len(reply) == 8 + 74 * 12 == 896
    # E8: the first 74 of 100 hashes are answered, no error.
    reply = await client.request(scrape_request(client.connection_id, b"E8E8", *hashes))
    assert len(reply) == 896
    entries = parse_scrape_response(reply).entries
    assert [n for n, entry in enumerate(entries) if entry != (0, 0, 0)] == [0, 73]


async def test_scrape_ignores_a_trailing_partial_hash(server: Server) -> None:
    # E9
    client = await server.client()
    await announce(client, IH2)
    datagram = scrape_request(client.connection_id, b"E9E9", IH1, IH2) + b"\x01" * 5
    reply = await client.request(datagram)
    assert len(reply) == 32
    assert parse_scrape_response(reply).entries == ((0, 0, 0), (0, 0, 1))


async def test_scrape_creates_nothing(server: Server) -> None:
    # E10
    client = await server.client()
    assert await scrape(client, IH9) == [(0, 0, 0)]
    reply = await announce(client, IH9)
    assert (reply.leechers, reply.seeders) == (1, 0)


async def test_scrape_counts_both_families(dual_stack: Server) -> None:
    # E11
    await announce(await dual_stack.client("127.0.0.1"), IH1, left=1000, port=7001)
    v6 = await dual_stack.client("::1")
    await announce(v6, IH1, left=0, port=7002)
    assert await scrape(v6, IH1) == [(1, 0, 1)]


# -- F. Errors, transactions and abuse ---------------------------------------------------


async def test_error_reply_sent_back_to_the_tracker_gets_no_reply(server: Server) -> None:
    # F2: no reply loops between two services that answer errors.
    client = await server.client()
    error = await client.request(
        announce_request(client.connection_id, b"loop", IH1, peer_id_for(1), port=0)
    )
    assert_error_reply(error, b"loop")
    await assert_ignored(server, client, error)


async def test_flood_of_forged_connection_ids_draws_nothing(server: Server) -> None:
    # F4: 1000 announces and 1000 scrapes with a wrong id; not one byte comes back.
    client = await server.client()
    flood = [
        announce_request(FORGED_ID, n.to_bytes(4, "big"), IH1, peer_id_for(n)) for n in range(1000)
    ] + [scrape_request(FORGED_ID, n.to_bytes(4, "big"), IH1) for n in range(1000)]
    for start in range(0, len(flood), WINDOW):
        await assert_ignored(server, client, *flood[start : start + WINDOW])
    assert await scrape(client, IH1) == [(0, 0, 0)]


async def test_datagram_from_source_port_0_is_ignored(server: Server) -> None:
    # F5: no socket can send from port 0, so the datagram is handed to the endpoint
    # as a read from the kernel would; a valid announce there would add a peer.
    client = await server.client()
    forged = announce_request(client.connection_id, b"prt0", IH1, peer_id_for(1), port=7001)
    server.running.endpoints[0].handle(forged, ("127.0.0.1", 0), int(server.clock() * 1000))
    await client.request(probe_datagram(client))  # queued after the forged datagram
    assert await scrape(client, IH1) == [(0, 0, 0)]


async def test_retransmitted_announce_counts_once(server: Server) -> None:
    # F8: the same datagram three times, same transaction id.
    client = await server.client()
    datagram = announce_request(client.connection_id, b"F8F8", IH1, peer_id_for(1))
    for _ in range(3):
        await client.send(datagram)
    replies = [await client.recv() for _ in range(3)]
    assert all(reply[:8] == ANNOUNCE + b"F8F8" and len(reply) == 20 for reply in replies)
    assert [parse_announce_response(reply).leechers for reply in replies] == [1, 1, 1]
    assert await scrape(client, IH1) == [(0, 0, 1)]
