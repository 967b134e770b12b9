"""The REST API against the real daemon: real Sanic on an ephemeral port, real LMDB log,
real UDP announces to put peers in swarms, a manual clock so ``updated`` is exact.

The examples of UDPT's API document are replayed with curl, from the document's own
command lines, and their output compared byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.bep15 import TrackerClient, TrackerError
from tests.support.daemon import make_config, running_tracker
from udpt.api.errors import redact
from udpt.clock import ManualClock
from udpt.config import LogConfig
from udpt.daemon import Running
from udpt.events.log import EventLog
from udpt.events.types import TorrentAdded, TorrentDropped, TorrentFlagged, TorrentUnflagged
from udpt.projections import TrackerState

TOKEN = "MyAccessToken"
OTHER_TOKEN = "s3cond-t0ken"
TOKENS = {"admin": TOKEN, "backup-script": OTHER_TOKEN}
FAST_LOG = LogConfig(fsync=False, commit_linger_ms=0)

HASH = "1234567890123456789012345678901234567890"
ADMIN_EVENTS = (TorrentAdded, TorrentFlagged, TorrentUnflagged, TorrentDropped)
EVENT_STARTED, EVENT_COMPLETED, EVENT_NONE = 2, 1, 0

# The examples of UDPT's REST API document, verbatim: the command line, then its output.
DOC_LIST = (
    "curl http://127.0.0.1:1212/t/?token=MyAccessToken",
    b'[{"info_hash":"1234567890123456789012345678901234567890","is_flagged":true,'
    b'"completed":0,"seeders":0,"leechers":0}]',
)
DOC_GET = (
    "curl http://127.0.0.1:1212/t/1234567890123456789012345678901234567890?token=MyAccessToken",
    b'{"info_hash":"1234567890123456789012345678901234567890","is_flagged":false,"completed":0,'
    b'"seeders":0,"leechers":1,"peers":[[{"id":"2d7142343235302d3458295942396f5334af686b",'
    b'"client":"qBittorrent"},{"ip":"192.168.1.6:52391","uploaded":0,"downloaded":0,"left":0,'
    b'"event":"Started","updated":672}]]}',
)
DOC_ADD = (
    r"curl -X POST http://127.0.0.1:1212/t/1234567890123456789012345678901234567890"
    r'?token=MyAccessToken -d "{\"is_flagged\": false}" -H "Content-Type: application/json"',
    b'{"status":"ok"}',
)
DOC_DELETE = (
    "curl -X DELETE http://127.0.0.1:1212/t/1234567890123456789012345678901234567890"
    "?token=MyAccessToken",
    b'{"status":"ok"}',
)
DOC_FLAG = (
    r"curl -X POST http://127.0.0.1:1212/t/1234567890123456789012345678901234567890"
    r'?token=MyAccessToken -d "{\"is_flagged\": true}" -H "Content-Type: application/json"',
    b'{"info_hash":"1234567890123456789012345678901234567890","is_flagged":true,"completed":0,'
    b'"seeders":0,"leechers":0,"peers":[]}',
)


@dataclass
class Api:
    """A running tracker with its API, an HTTP client on it, and the tracker's clock."""

    running: Running
    clock: ManualClock
    http: httpx.AsyncClient
    db_path: Path

    @property
    def port(self) -> int:
        return self.running.http_address[1]

    async def call(
        self, method: str, path: str, *, token: str | None = TOKEN, **kwargs: Any
    ) -> httpx.Response:
        params = {"token": token} if token is not None else None
        return await self.http.request(method, path, params=params, **kwargs)

    async def peer(self, host: str = "127.0.0.1") -> TrackerClient:
        udp_host, udp_port = self.running.udp_addresses[0][:2]
        client = await TrackerClient.open((udp_host, udp_port), host)
        await client.connect()
        return client

