"""Every announce the daemon answered survives a SIGKILL of the daemon under load.

The real ``udpt -c FILE`` runs as a child process. Clients on 127.0.0.1 to
127.0.0.4 keep many announces in flight, each one identifiable by its info hash
(unique) and announced port, and record every reply. Once enough replies came
back the daemon is killed with SIGKILL, in the middle of the load; then the log
is read: each answered announce must be in it as an ``AnnounceAccepted`` event,
and a restart (snapshot + replay) must have the peer in its swarm.

No sleeps: readiness is a connect answered before a deadline, and the end of the
replies is a marker each client sends to itself after the daemon was reaped
(everything the daemon sent is queued before it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import udpt
from tests.support.bep15 import (
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
    peer_id_for,
)
from udpt.events.log import EventLog
from udpt.events.types import AnnounceAccepted
from udpt.history.recovery import recover

CLIENT_IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
IN_FLIGHT = 64  # announces awaiting their reply, per client
KILL_AFTER = 1500  # answered announces before the kill
READY_TIMEOUT = 20.0
LOAD_TIMEOUT = 30.0
END = b"end of replies"
ANNOUNCE = (1).to_bytes(4, "big")

Announce = tuple[bytes, bytes, int]  # info hash, packed client IP, announced port


def announce_of(number: int, ip: bytes) -> Announce:
    """Announce ``number``: a hash of its own, so (info hash, port) names it in the log."""
    return hashlib.sha1(b"announce %d" % number).digest(), ip, 1024 + number % 60000


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp_path: Path, port: int, fsync: bool) -> Path:
    config = tmp_path / "udpt.toml"
    config.write_text(
        f'db_path = "{tmp_path / "log"}"\n'
        'log_level = "warn"\n'
        "[udp]\n"
        f'bind_address = "127.0.0.1:{port}"\n'
        "[log]\n"
        f"fsync = {'true' if fsync else 'false'}\n"
    )
    return config


def child_env() -> dict[str, str]:
    root = str(Path(udpt.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")])),
    }


@dataclass
class LoadClient:
    """One client socket (unconnected, so it can post the end marker to itself)."""

    sock: socket.socket
    ip: bytes
    server: tuple[str, int]
    connection_id: bytes = b""
    pending: dict[bytes, Announce] = field(default_factory=dict)
    window: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))


@dataclass
class Load:
    """Replies seen so far, and the daemon to kill once there are enough."""

    daemon: asyncio.subprocess.Process
    clients: list[LoadClient]
    answered: list[Announce] = field(default_factory=list)
    unexpected: list[bytes] = field(default_factory=list)
    killed: asyncio.Event = field(default_factory=asyncio.Event)

    def in_flight(self) -> int:
        return sum(len(client.pending) for client in self.clients)


async def connect(client: LoadClient, daemon: asyncio.subprocess.Process, timeout: float) -> None:
    """Connect, retrying until the daemon answers (it may still be starting)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for attempt in itertools.count():
        assert daemon.returncode is None, "the daemon exited during start-up"
        assert loop.time() < deadline, "the daemon did not answer a connect in time"
        transaction_id = attempt.to_bytes(4, "big")
        client.sock.sendto(connect_request(transaction_id), client.server)
        try:
            async with asyncio.timeout(0.1):
                reply = await loop.sock_recv(client.sock, 2048)
        except TimeoutError:
            continue
        if reply[4:8] == transaction_id:
            client.connection_id = parse_connect_response(reply).connection_id
            return


async def send_announces(client: LoadClient, numbers: Iterator[int]) -> None:
    """Keep ``IN_FLIGHT`` announces outstanding until cancelled."""
    while True:
        await client.window.acquire()
        number = next(numbers)
        transaction_id = number.to_bytes(4, "big")
        info_hash, _, port = client.pending[transaction_id] = announce_of(number, client.ip)
        datagram = announce_request(
            client.connection_id, transaction_id, info_hash, peer_id_for(number), port=port
        )
        client.sock.sendto(datagram, client.server)


async def collect_replies(client: LoadClient, load: Load) -> None:
    """Record every announce reply until the end marker; kill the daemon at KILL_AFTER.

    The kill waits for a reply that leaves announces in flight: a fast daemon can
    answer a whole window before the senders refill it, and a kill then would
    catch it idle rather than in the middle of the load.
    """
    loop = asyncio.get_running_loop()
    while (reply := await loop.sock_recv(client.sock, 4096)) != END:
        if reply[:4] != ANNOUNCE or reply[4:8] not in client.pending:
            load.unexpected.append(reply)
            continue
        parse_announce_response(reply)  # a well-formed reply, or the test fails
        load.answered.append(client.pending.pop(reply[4:8]))
        client.window.release()
        if len(load.answered) >= KILL_AFTER and load.in_flight() and not load.killed.is_set():
            load.daemon.send_signal(signal.SIGKILL)
            load.killed.set()


async def start_daemon(
    stack: AsyncExitStack, tmp_path: Path, port: int, fsync: bool
) -> asyncio.subprocess.Process:
    """``python -m udpt -c FILE``, reaped (killed first if need be) when ``stack`` closes."""
    stderr = stack.enter_context((tmp_path / "stderr.txt").open("wb"))
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "udpt",
        "-c",
        str(write_config(tmp_path, port, fsync)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env=child_env(),
    )

    async def reap() -> None:
        if daemon.returncode is None:
            daemon.kill()
        await daemon.wait()

    stack.push_async_callback(reap)
    return daemon


@pytest.mark.parametrize("fsync", [True, False], ids=["fsync", "no-fsync"])
async def test_every_answered_announce_survives_sigkill(tmp_path: Path, fsync: bool) -> None:
    port = free_udp_port()
    async with AsyncExitStack() as stack:
        daemon = await start_daemon(stack, tmp_path, port, fsync)
        clients = []
        for host in CLIENT_IPS:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((host, 0))
            sock.setblocking(False)
            clients.append(LoadClient(sock, socket.inet_aton(host), ("127.0.0.1", port)))
        try:
            for client in clients:
                await connect(client, daemon, READY_TIMEOUT)
        except AssertionError as error:
            stderr = (tmp_path / "stderr.txt").read_text()
            raise AssertionError(f"{error}; daemon stderr: {stderr}") from None

        load = Load(daemon, clients)
        numbers = itertools.count()
        async with asyncio.TaskGroup() as tasks:
            collectors = [tasks.create_task(collect_replies(c, load)) for c in clients]
            senders = [tasks.create_task(send_announces(c, numbers)) for c in clients]
            async with asyncio.timeout(LOAD_TIMEOUT):
                await load.killed.wait()
                assert await daemon.wait() == -signal.SIGKILL
            for sender in senders:
                sender.cancel()
            for client in clients:  # queued behind every reply the dead daemon sent
                client.sock.sendto(END, client.sock.getsockname())
            async with asyncio.timeout(LOAD_TIMEOUT):
                await asyncio.gather(*collectors)

    assert load.unexpected == []
    assert len(load.answered) >= KILL_AFTER
    with EventLog(tmp_path / "log", readonly=True) as log:
        logged = {
            (event.info_hash, event.ip, event.port)
            for _, event in log.events()
            if type(event) is AnnounceAccepted
        }
        state, _ = recover(log)
    lost = [announce for announce in load.answered if announce not in logged]
    assert lost == [], f"{len(lost)} answered announces are not in the log"
    for info_hash, ip, announced_port in load.answered:
        assert ip + announced_port.to_bytes(2, "big") in state.torrents[info_hash].swarm
