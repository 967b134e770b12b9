"""The interpreter's total reference count, round by round, while the daemon answers.

``python -m tests.support.refcount_rounds DIR`` (a debug build of CPython) starts the
daemon in process on a log in ``DIR``, sends ``ROUNDS`` rounds of requests of every
kind from a blocking socket in a worker thread (no event-loop timers, which a cancelled
timeout leaves scheduled until it would have fired) and prints, as JSON, how much the
total reference count moved over each round after the first. The core is the one
``UDPT_PURE_PYTHON`` selects: ``tests/unit/test_core_refcounts.py`` runs it once with
each and compares.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
from pathlib import Path

from tests.support.bep15 import (
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
    parse_scrape_response,
    scrape_request,
)
from tests.support.daemon import make_config, running_tracker
from udpt.clock import ManualClock
from udpt.config import LogConfig

ROUNDS = 15
HASHES = [bytes([n]) * 20 for n in range(1, 5)]
ERROR = (3).to_bytes(4, "big")
REPLY_TIMEOUT = 10.0


def total_references() -> int:
    """The interpreter's reference count over every object, after a collection (a debug
    build's only)."""
    gc.collect()
    return int(sys.gettotalrefcount())  # type: ignore[attr-defined]


def answered_round(sock: socket.socket) -> None:
    """Connect, announces (joining, then one stopping), silence, a scrape, an error."""
    sock.send(connect_request(b"conn"))
    connection_id = parse_connect_response(sock.recv(2048)).connection_id
    for number, info_hash in enumerate(HASHES):
        peer = announce_request(connection_id, b"ann!", info_hash, b"p" * 20, port=6881 + number)
        sock.send(peer)
        parse_announce_response(sock.recv(2048))
    sock.send(announce_request(connection_id, b"stop", HASHES[0], b"p" * 20, event=3))
    parse_announce_response(sock.recv(2048))
    # Answered by silence: a forged connection id, garbage. The replies to the requests
    # after them show they were read.
    sock.send(announce_request(bytes(8), b"tid!", HASHES[0], b"p" * 20))
    sock.send(b"\xff" * 40)
    sock.send(scrape_request(connection_id, b"scr!", *HASHES))
    parse_scrape_response(sock.recv(2048))
    sock.send(scrape_request(connection_id, b"none"))  # no info hash: an error reply
    assert sock.recv(2048)[:4] == ERROR


async def round_deltas(db: Path) -> list[int]:
    config = make_config(db, log=LogConfig(fsync=False, commit_linger_ms=0))
    async with running_tracker(config, clock=ManualClock()) as running:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(REPLY_TIMEOUT)
            sock.connect(running.udp_addresses[0][:2])
            await asyncio.to_thread(answered_round, sock)  # caches filled, threads started
            deltas = []
            last = total_references()
            for _ in range(ROUNDS):
                await asyncio.to_thread(answered_round, sock)
                now = total_references()
                deltas.append(now - last)
                last = now
            return deltas


if __name__ == "__main__":
    print(json.dumps(asyncio.run(round_deltas(Path(sys.argv[1])))))
