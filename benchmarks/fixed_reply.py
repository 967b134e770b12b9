#!/usr/bin/env python3
"""The socket layer's ceiling: an asyncio-dgram server on uvloop that answers with fixed replies.

``python benchmarks/fixed_reply.py PORT`` answers every BEP 15 connect, announce
and scrape with a reply of the right shape and the request's transaction id,
and nothing else: no connection-id check, no state, no log. A reply is the
same size as udpt's to the benchmark load (an announce gets 50 IPv4 peers), so
the kernel's share of the work is alike. ``benchmarks/run.py`` runs it beside
udpt and opentracker: udpt ÷ this is how much of what Python's datagram layer
allows udpt reaches.
"""

from __future__ import annotations

import struct
import sys

import asyncio_dgram
import uvloop

_ACTION = struct.Struct("!I")
_CONNECT, _ANNOUNCE, _SCRAPE = 0, 1, 2
_ANNOUNCE_BODY = struct.pack("!III", 1800, 10, 40) + bytes(range(6)) * 50
_SCRAPE_ENTRY = struct.pack("!III", 40, 7, 10)


def reply(request: bytes) -> bytes | None:
    """The fixed reply to ``request``, or None for a datagram that is no BEP 15 request."""
    if len(request) < 16:
        return None
    action, transaction_id = struct.unpack_from("!I4s", request, 8)
    if action == _CONNECT:
        return _ACTION.pack(_CONNECT) + transaction_id + b"fixed-id"
    if action == _ANNOUNCE:
        return _ACTION.pack(_ANNOUNCE) + transaction_id + _ANNOUNCE_BODY
    if action == _SCRAPE:
        hashes = max((len(request) - 16) // 20, 1)
        return _ACTION.pack(_SCRAPE) + transaction_id + _SCRAPE_ENTRY * hashes
    return None


async def serve(port: int) -> None:
    stream = await asyncio_dgram.bind(("127.0.0.1", port))
    while True:
        data, addr = await stream.recv()
        answer = reply(data)
        if answer is not None:
            await stream.send(answer, addr)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
