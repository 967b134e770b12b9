"""Three udpt nodes sharing one history through a real ``nats-server -js`` on loopback.

Every part is real: the NATS server (started and stopped here, on free ports),
the daemons (``python -m udpt -c FILE`` as child processes, so one can be
killed with SIGKILL), UDP, the REST API and the logs, which ``tools/replay.py
--verify`` checks at the end and which must hold the same events, in the same
order, on every node.

A reply proves more than its own announce: a node answers only once its batch
came back from the stream, after everything ordered before it, so an announce
answered on A is in the state of any node that answers a later announce.
Waits are conditions with deadlines; silence is a timeout of one second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import udpt
from tests.support.bep15 import (
    ErrorResponse,
    ScrapeResponse,
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
    parse_error_response,
    parse_scrape_response,
    peer_id_for,
    scrape_request,
)
from tests.support.nats import NATS_SERVER, NatsServer, free_port
from udpt.events.log import EventLog
from udpt.history.recovery import recover

pytestmark = [
    pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("nats") is None, reason="nats-py is not installed"),
]

ROOT = Path(udpt.__file__).resolve().parents[1]
TOKEN = "cluster-test-token"
START_TIMEOUT_S = 30.0
SILENCE_S = 1.0
HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
FLAGGED_HASH = bytes.fromhex("00112233445566778899aabbccddeeff00112233")


class Node:
    """One udpt daemon in its own process, with its own data directory and ports."""

    def __init__(self, root: Path, node_id: str, nats: NatsServer) -> None:
        self.node_id = node_id
        self.db = root / node_id / "log"
        self.nats = nats
        self.config = root / node_id / "udpt.toml"
        self.config.parent.mkdir(parents=True)
        self.stderr = root / node_id / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._started_at = 0  # where this start's lines begin in the stderr file
        self._take_ports()

    def _take_ports(self) -> None:
        """Free ports, and the configuration naming them."""
        self.udp = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
        self.http_port = free_port()
        nats, node_id = self.nats, self.node_id
        self.config.write_text(
            f'db_path = "{self.db}"\n'
            'log_level = "warn"\n'
            "[udp]\n"
            f'bind_address = "127.0.0.1:{self.udp[1]}"\n'
            "[http]\n"
            f'bind_address = "127.0.0.1:{self.http_port}"\n'
            "[http.access_tokens]\n"
            f'test = "{TOKEN}"\n'
            "[log]\n"
            "fsync = false\n"
            "[cluster]\n"
            f'nats_url = "{nats.url}"\n'
            f'node_id = "{node_id}"\n'
        )

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.stderr, "ab") as stderr:
            self._started_at = stderr.tell()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "udpt", "-c", str(self.config)], env=env, stderr=stderr
            )

    def wait_ready(self) -> None:
        """Until a connect is answered: the node has caught up with the stream and serves.

        A free port can be taken by another test between ``free_port`` and the node's
        bind: a node that exits for that starts again on other ports, twice at most.
        """
        deadline = time.monotonic() + START_TIMEOUT_S
        rebinds = 2
        with Client() as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    this_start = self.stderr.read_bytes()[self._started_at :]
                    assert rebinds and b"cannot bind" in this_start, self.log()
                    rebinds -= 1
                    self._take_ports()
                    self.start()
                    continue
                if client.request(self.udp, connect_request(b"redy"), timeout=0.2):
                    return
                assert time.monotonic() < deadline, f"{self.node_id} did not start: {self.log()}"

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.log()
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def http(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def metric(self, name: str) -> float:
        status, text = self.http("GET", "/metrics")
        assert status == 200
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics of {self.node_id}")


class Client:
    """A BEP 15 client on its own loopback port (the peer it announces is that port)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._transaction = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def request(self, to: tuple[str, int], data: bytes, timeout: float) -> bytes | None:
        """Send ``data`` and return the reply to it, or None if none came within ``timeout``."""
        self.sock.sendto(data, to)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                reply = self.sock.recv(2048)
            except TimeoutError:
                return None
            if reply[4:8] == data[12:16]:
                return reply
        return None

    def next_transaction(self) -> bytes:
        self._transaction += 1
        return self._transaction.to_bytes(4, "big")

    def connect(self, node: Node) -> bytes:
        reply = self.request(node.udp, connect_request(self.next_transaction()), timeout=5)
        assert reply is not None, f"no connect reply from {node.node_id}"
        return parse_connect_response(reply).connection_id

    def announce_bytes(self, connection_id: bytes, info_hash: bytes) -> bytes:
        return announce_request(
            connection_id,
            self.next_transaction(),
            info_hash,
            peer_id_for(self.port),
            port=self.port,
        )

    def announce(
        self, node: Node, info_hash: bytes, connection_id: bytes | None = None, timeout: float = 5
    ) -> bytes | None:
        """The raw reply to an announce at ``node`` (None: no reply within ``timeout``)."""
        cid = connection_id if connection_id is not None else self.connect(node)
        return self.request(node.udp, self.announce_bytes(cid, info_hash), timeout)

    def peers(self, node: Node, info_hash: bytes) -> set[int]:
        reply = self.announce(node, info_hash)
        assert reply is not None, f"no announce reply from {node.node_id}"
        return {port for _, port in parse_announce_response(reply).peers}

    def scrape(self, node: Node, info_hash: bytes) -> ScrapeResponse:
        cid = self.connect(node)
        reply = self.request(node.udp, scrape_request(cid, self.next_transaction(), info_hash), 5)
        assert reply is not None
        return parse_scrape_response(reply)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nodes(tmp_path: Path, nats: NatsServer) -> Iterator[list[Node]]:
    """Three nodes, a, b and c, started together and ready."""
    started = [Node(tmp_path, node_id, nats) for node_id in ("a", "b", "c")]
    for node in started:
        node.start()
    try:
        for node in started:
            node.wait_ready()
        yield started
    finally:
        for node in started:
            if node.process is not None:
                node.process.kill()
                node.process.wait()


def settle_and_stop(nodes: list[Node]) -> None:
    """Wait until every node applied the same stream position, then stop them all."""
    deadline = time.monotonic() + 20
    while True:
        positions = {node.metric("udpt_cluster_stream_position") for node in nodes}
        if len(positions) == 1:
            break
        assert time.monotonic() < deadline, f"nodes stuck at positions {positions}"
    for node in nodes:
        node.stop()


def assert_same_history(nodes: list[Node]) -> None:
    """``tools/replay.py --verify`` passes on each log; events and states are equal."""
    histories, states = [], []
    for node in nodes:
        verify = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "replay.py"), str(node.db), "--verify"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        with EventLog(node.db, readonly=True) as log:
            histories.append(list(log.events()))
            states.append(recover(log)[0].snapshot())
    assert histories[0], "the logs are empty"
    assert all(history == histories[0] for history in histories)
    assert all(state == states[0] for state in states)


def test_a_node_whose_port_was_taken_meanwhile_starts_on_other_ports(
    tmp_path: Path, nats: NatsServer
) -> None:
    """The harness itself: tests in parallel can take a port ``free_port`` found free."""
    node = Node(tmp_path, "late", nats)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", node.http_port))
        squatter.listen()
        taken = node.http_port
        node.start()
        node.wait_ready()
    assert node.http_port != taken
    assert "cannot bind" in node.log()
    node.stop()


def test_peer_announced_on_one_node_is_returned_by_the_others(nodes: list[Node]) -> None:
    a, b, c = nodes
    with Client() as on_a, Client() as on_b, Client() as on_c:
        assert on_a.peers(a, HASH) == set()

        assert on_b.peers(b, HASH) == {on_a.port}
        assert on_c.peers(c, HASH) == {on_a.port, on_b.port}
        status, body = b.http("GET", f"/t/{HASH.hex()}")
        assert status == 200
        shown = {address["ip"] for _, address in json.loads(body)["peers"]}
        assert f"127.0.0.1:{on_a.port}" in shown

        # A connection id issued by one node is valid at every node: one secret.
        cid = on_a.connect(a)
        reply = on_a.announce(c, HASH, connection_id=cid)
        assert reply is not None
        assert {port for _, port in parse_announce_response(reply).peers} == {
            on_b.port,
            on_c.port,
        }
    settle_and_stop(nodes)
    assert_same_history(nodes)


def test_torrent_created_at_once_on_two_nodes_is_one_torrent(nodes: list[Node]) -> None:
    a, b, c = nodes
    new_hash = bytes.fromhex("ffeeddccbbaa99887766554433221100ffeeddcc")
    with Client() as on_a, Client() as on_b, Client() as check:
        first = on_a.announce_bytes(on_a.connect(a), new_hash)
        second = on_b.announce_bytes(on_b.connect(b), new_hash)
        on_a.sock.sendto(first, a.udp)  # both decided before either is folded anywhere
        on_b.sock.sendto(second, b.udp)
        for client in (on_a, on_b):
            client.sock.settimeout(5)
            parse_announce_response(client.sock.recv(2048))

        assert check.peers(c, new_hash) == {on_a.port, on_b.port}
    settle_and_stop(nodes)
    assert_same_history(nodes)


def test_a_node_whose_clock_is_behind_cannot_put_the_logs_times_out_of_order(
    nodes: list[Node], nats: NatsServer
) -> None:
    """Times follow the stream's order: one that arrives earlier than the last is raised."""
    a = nodes[0]
    with Client() as client:
        assert client.announce(a, HASH) is not None
        behind = subprocess.run(  # an announce decided on a clock an hour slow
            [sys.executable, "-c", PUBLISH_BEHIND, nats.url, HASH.hex()],
            capture_output=True,
            text=True,
            check=False,
        )
        assert behind.returncode == 0, behind.stderr
        assert client.announce(a, HASH) is not None
    settle_and_stop(nodes)
    assert_same_history(nodes)  # --verify: no event earlier than the one before it
    with EventLog(nodes[0].db, readonly=True) as log:
        times = [event.at_ms for _, event in log.events()]
    assert len(times) == 3
    assert times[0] == times[1] <= times[2]


def test_flag_through_one_nodes_api_is_refused_on_another(
    nodes: list[Node], nats: NatsServer
) -> None:
    a, b, c = nodes
    with Client() as client:
        assert client.announce(a, FLAGGED_HASH) is not None

        status, _ = b.http("POST", f"/t/{FLAGGED_HASH.hex()}", b'{"is_flagged": true}')
        assert status == 200

        reply = client.announce(c, FLAGGED_HASH)
        assert reply is not None
        assert parse_error_response(reply) == ErrorResponse(reply[4:8], "torrent flagged.")
        status, body = a.http("GET", f"/t/{FLAGGED_HASH.hex()}")
        assert status == 200 and json.loads(body)["is_flagged"] is True

        # A new node, with an empty data directory, builds its state from the stream.
        d = Node(a.db.parents[1], "d", nats)
        nodes.append(d)
        d.start()
        d.wait_ready()
        reply = client.announce(d, FLAGGED_HASH)
        assert reply is not None and parse_error_response(reply).message == "torrent flagged."
    settle_and_stop(nodes)
    assert_same_history(nodes)


def test_killed_node_restarts_with_what_it_missed(nodes: list[Node]) -> None:
    a, b, c = nodes
    with Client() as first, Client() as while_down, Client() as after:
        assert first.peers(b, HASH) == set()
        b.kill()

        assert while_down.peers(c, HASH) == {first.port}
        assert after.peers(a, HASH) == {first.port, while_down.port}

        b.start()
        b.wait_ready()
        with Client() as check:
            assert check.peers(b, HASH) == {first.port, while_down.port, after.port}
    settle_and_stop(nodes)
    assert_same_history(nodes)


def test_nats_outage_stops_acknowledgements_and_loses_nothing(
    nodes: list[Node], nats: NatsServer
) -> None:
    a, b, c = nodes
    with Client() as before, Client() as during, Client() as after, Client() as check:
        assert before.peers(a, HASH) == set()
        cid = during.connect(b)

        nats.stop()

        assert during.announce(b, HASH, connection_id=cid, timeout=SILENCE_S) is None
        assert during.connect(a)  # connects and scrapes are answered from the state
        assert isinstance(during.scrape(c, HASH), ScrapeResponse)
        status, body = b.http("GET", "/health")
        assert status == 503
        assert "JetStream unreachable" in json.loads(body)["reason"]
        status, _ = c.http("POST", f"/t/{FLAGGED_HASH.hex()}", b'{"is_flagged": true}')
        assert status == 503  # an admin change is not acknowledged either

        nats.start()

        deadline = time.monotonic() + 20
        while (reply := after.announce(b, HASH, timeout=SILENCE_S)) is None:
            assert time.monotonic() < deadline, f"b does not answer again: {b.log()}"
        assert {port for _, port in parse_announce_response(reply).peers} == {before.port}
        assert check.peers(c, HASH) == {before.port, after.port}
    assert "lost the connection to NATS JetStream" in a.log()
    settle_and_stop(nodes)
    assert_same_history(nodes)


def test_node_refuses_to_start_where_the_stream_lost_what_it_needs(
    tmp_path: Path, nats: NatsServer
) -> None:
    first = Node(tmp_path, "first", nats)
    first.start()
    first.wait_ready()
    with Client() as earlier:
        assert earlier.announce(first, HASH) is not None
        announced = earlier.port
    first.stop()
    purge = subprocess.run(
        [sys.executable, "-c", PURGE, nats.url], capture_output=True, text=True, check=False
    )
    assert purge.returncode == 0, purge.stderr

    late = Node(tmp_path, "late", nats)  # empty: it would need the purged batches
    late.start()
    assert late.process is not None
    assert late.process.wait(30) == 1
    assert "no longer holds batches 1 to 1" in late.log()
    late.process = None

    first.start()  # its local copy holds everything up to the purge: it carries on
    first.wait_ready()
    with Client() as client:
        assert client.peers(first, HASH) == {announced}
    first.stop()


PURGE = """
import asyncio, sys, nats
async def main():
    client = await nats.connect(sys.argv[1])
    await client.jetstream().purge_stream("udpt-log")
    await client.close()
asyncio.run(main())
"""

PUBLISH_BEHIND = """
import asyncio, sys, time, nats
from udpt.events.batch import encode_batch
from udpt.events.types import AnnounceAccepted, AnnounceEvent
async def main():
    client = await nats.connect(sys.argv[1])
    at_ms = int(time.time() * 1000) - 3_600_000
    event = AnnounceAccepted(
        at_ms, bytes.fromhex(sys.argv[2]), bytes([127, 0, 0, 9]), 6881, bytes(20), 1,
        AnnounceEvent.STARTED, 0, 0, 100,
    )
    await client.jetstream().publish("udpt.batches", encode_batch([event]))
    await client.close()
asyncio.run(main())
"""
