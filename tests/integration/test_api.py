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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.bep15 import TrackerClient, TrackerError
from tests.support.daemon import make_config, record, running_tracker
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
        self,
        method: str,
        path: str,
        *,
        token: str | None = TOKEN,
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """``method path``, with ``?token=`` unless ``token`` is None."""
        query = dict(params or {})
        if token is not None:
            query["token"] = token
        return await self.http.request(method, path, params=query, **kwargs)

    async def peer(self, host: str = "127.0.0.1") -> TrackerClient:
        udp_host, udp_port = self.running.udp_addresses[0][:2]
        client = await TrackerClient.open((udp_host, udp_port), host)
        await client.connect()
        return client


@asynccontextmanager
async def serving_api(
    tmp_path: Path, *, host: str = "127.0.0.1", log: LogConfig = FAST_LOG, **settings: Any
) -> AsyncIterator[Api]:
    clock = ManualClock()
    db_path = tmp_path / "log"
    config = make_config(db_path, tokens=TOKENS, log=log, **settings)
    async with running_tracker(config, host=host, clock=clock) as running:
        http_host, http_port = running.http_address[:2]
        authority = f"[{http_host}]:{http_port}" if ":" in http_host else f"{http_host}:{http_port}"
        async with httpx.AsyncClient(base_url=f"http://{authority}", timeout=10) as http:
            yield Api(running, clock, http, db_path)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving_api(tmp_path) as serving:
        yield serving


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for ``condition`` to hold, checking every few milliseconds; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def logged_events(db_path: Path) -> list[Any]:
    """Every event in the (stopped) tracker's log, in order."""
    with EventLog(db_path, readonly=True) as event_log:
        return [event for _, event in event_log.events()]


def assert_error(response: httpx.Response, status: int) -> str:
    """The reply is UDPT's JSON error shape with ``status``; returns the reason."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["status", "reason"]
    assert body["status"] == "err"
    assert isinstance(body["reason"], str) and body["reason"]
    assert "Traceback" not in response.text
    assert TOKEN not in response.text and OTHER_TOKEN not in response.text
    return body["reason"]


# -- the document's examples --------------------------------------------------------------


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def curl(command: str, port: int) -> bytes:
    """Run one of the document's command lines against the API on ``port``; its stdout."""
    argv = shlex.split(command.replace("127.0.0.1:1212", f"127.0.0.1:{port}"))
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, command
    return out


@needs_curl
async def test_the_documents_examples_reproduce_byte_for_byte(api: Api) -> None:
    command, expected = DOC_FLAG  # flagging an unknown torrent adds it
    assert await curl(command, api.port) == expected

    command, expected = DOC_LIST
    assert await curl(command, api.port) == expected

    command, expected = DOC_ADD  # here: unflags it
    assert await curl(command, api.port) == expected

    # The document's peer: qBittorrent's peer_id, port 52391, started, left 0, seen 672 ms ago.
    async with await api.peer() as peer:
        await peer.announce(
            bytes.fromhex(HASH),
            peer_id=bytes.fromhex("2d7142343235302d3458295942396f5334af686b"),
            port=52391,
            left=0,
            event=EVENT_STARTED,
        )
    api.clock.advance(0.672)
    command, expected = DOC_GET
    # Two differences, on purpose: the peer announces from this machine, not 192.168.1.6;
    # and a peer with left 0 is a seeder here (UDPT counted it as a leecher).
    expected = expected.replace(b"192.168.1.6", b"127.0.0.1").replace(
        b'"seeders":0,"leechers":1', b'"seeders":1,"leechers":0'
    )
    assert await curl(command, api.port) == expected

    command, expected = DOC_DELETE
    assert await curl(command, api.port) == expected
    assert_error(await api.call("GET", f"/t/{HASH}"), 404)


# -- reading ----------------------------------------------------------------------------


async def test_a_torrent_shows_its_peers_with_client_event_and_age(api: Api) -> None:
    info_hash = bytes.fromhex(HASH)
    async with await api.peer() as seeder, await api.peer() as leecher:
        await seeder.announce(
            info_hash,
            peer_id=b"-TR4050-abcdefghijkl",
            port=7001,
            left=0,
            uploaded=512,
            event=EVENT_COMPLETED,
        )
        api.clock.advance(1.5)
        await leecher.announce(
            info_hash,
            peer_id=b"M7-1-0--123456789012",
            port=7002,
            left=100,
            downloaded=20,
            event=EVENT_NONE,
        )
        api.clock.advance(0.25)
        await leecher.announce(info_hash, peer_id=b"xyz-unknown-client!!", port=7003)

    response = await api.call("GET", f"/t/{HASH.upper()}")  # either case in, lower case out
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "info_hash": HASH,
        "is_flagged": False,
        "completed": 1,
        "seeders": 1,
        "leechers": 2,
        "peers": [
            [
                {"id": b"-TR4050-abcdefghijkl".hex(), "client": "Transmission"},
                {
                    "ip": "127.0.0.1:7001",
                    "uploaded": 512,
                    "downloaded": 0,
                    "left": 0,
                    "event": "Complete",
                    "updated": 1750,
                },
            ],
            [
                {"id": b"M7-1-0--123456789012".hex(), "client": "BitTorrent"},
                {
                    "ip": "127.0.0.1:7002",
                    "uploaded": 0,
                    "downloaded": 20,
                    "left": 100,
                    "event": "None",
                    "updated": 250,
                },
            ],
            [
                {"id": b"xyz-unknown-client!!".hex(), "client": None},
                {
                    "ip": "127.0.0.1:7003",
                    "uploaded": 0,
                    "downloaded": 0,
                    "left": 1000,
                    "event": "Started",
                    "updated": 0,
                },
            ],
        ],
    }


async def test_ipv6_peers_are_shown_in_brackets(tmp_path: Path) -> None:
    try:
        async with serving_api(tmp_path, host="::1") as api:
            async with await api.peer("::1") as peer:
                await peer.announce(bytes.fromhex(HASH), peer_id=b"-qB4250-000000000000", port=6881)
            response = await api.call("GET", f"/t/{HASH}")
    except OSError as error:
        pytest.skip(f"no IPv6 loopback: {error}")
    [[identity, announce]] = response.json()["peers"]
    assert identity["client"] == "qBittorrent"
    assert announce["ip"] == "[::1]:6881"


async def test_listing_is_paged_in_info_hash_order(api: Api) -> None:
    hashes = sorted(bytes([n % 256, n // 256]) * 10 for n in range(1001))
    # Registered through the same writer the API uses, all in one go.
    await asyncio.gather(
        *(record(api.running, TorrentAdded(0, h, "test")) for h in reversed(hashes))
    )
    listed = [h.hex() for h in hashes]

    default_page = (await api.call("GET", "/t")).json()
    assert [t["info_hash"] for t in default_page] == listed[:1000]
    assert default_page[0] == {
        "info_hash": listed[0],
        "is_flagged": False,
        "completed": 0,
        "seeders": 0,
        "leechers": 0,
    }
    capped = await api.call("GET", "/t/", params={"limit": 5000})
    assert len(capped.json()) == 1000
    last = await api.call("GET", "/t", params={"offset": 1000})
    assert [t["info_hash"] for t in last.json()] == listed[1000:]

    pages = []
    for offset in range(0, 1001, 300):
        page = await api.call("GET", "/t", params={"offset": offset, "limit": 300})
        pages.extend(t["info_hash"] for t in page.json())
    assert pages == listed
    assert (await api.call("GET", "/t", params={"offset": 5000})).json() == []
    assert (await api.call("GET", "/t", params={"limit": 0})).json() == []


async def test_unknown_torrent_is_404_for_get_and_delete(api: Api) -> None:
    assert assert_error(await api.call("GET", f"/t/{HASH}"), 404) == "torrent not found"
    assert assert_error(await api.call("DELETE", f"/t/{HASH}"), 404) == "torrent not found"


# -- changing ---------------------------------------------------------------------------


async def test_add_registers_a_torrent_for_static_mode(tmp_path: Path) -> None:
    async with serving_api(tmp_path, mode="static") as api:
        async with await api.peer() as peer:
            with pytest.raises(TrackerError, match=r"^torrent not registered\.$"):
                await peer.announce(bytes.fromhex(HASH))

            response = await api.call("POST", f"/t/{HASH}")  # empty body: add
            assert response.content == b'{"status":"ok"}'
            reply = await peer.announce(bytes.fromhex(HASH))
            assert reply.leechers == 1
        listed = (await api.call("GET", "/t")).json()
        assert listed == [
            {"info_hash": HASH, "is_flagged": False, "completed": 0, "seeders": 0, "leechers": 1}
        ]


async def test_an_empty_post_keeps_a_flag_only_is_flagged_false_lifts_it(api: Api) -> None:
    # Regression: an empty POST (a bulk "add these hashes" script) unflagged a flagged
    # torrent, silently lifting a blacklist.
    await api.call("POST", f"/t/{HASH}", json={"is_flagged": True})
    added = await api.call("POST", f"/t/{HASH}")
    assert added.content == b'{"status":"ok"}'
    assert (await api.call("GET", f"/t/{HASH}")).json()["is_flagged"] is True
    async with await api.peer() as peer:
        with pytest.raises(TrackerError, match=r"^torrent flagged\.$"):
            await peer.announce(bytes.fromhex(HASH))
    await api.call("POST", f"/t/{HASH}", json={"is_flagged": False})
    assert (await api.call("GET", f"/t/{HASH}")).json()["is_flagged"] is False


async def test_flag_clears_peers_and_refuses_announces_until_unflagged(api: Api) -> None:
    info_hash = bytes.fromhex(HASH)
    async with await api.peer() as peer:
        await peer.announce(info_hash, left=0)

        flagged = await api.call("POST", f"/t/{HASH}", json={"is_flagged": True, "note": "x"})
        assert flagged.status_code == 200
        assert flagged.json() == {
            "info_hash": HASH,
            "is_flagged": True,
            "completed": 0,
            "seeders": 0,
            "leechers": 0,
            "peers": [],
        }
        with pytest.raises(TrackerError, match=r"^torrent flagged\.$"):
            await peer.announce(info_hash)

        unflagged = await api.call("POST", f"/t/{HASH}", json={"is_flagged": False})
        assert unflagged.content == b'{"status":"ok"}'
        assert (await peer.announce(info_hash)).leechers == 1
    assert (await api.call("GET", f"/t/{HASH}")).json()["is_flagged"] is False


async def test_delete_drops_peers_counters_and_flag(api: Api) -> None:
    info_hash = bytes.fromhex(HASH)
    async with await api.peer() as peer:
        await peer.announce(info_hash, left=0, event=EVENT_COMPLETED)
        assert (await api.call("GET", f"/t/{HASH}")).json()["completed"] == 1
        await api.call("POST", f"/t/{HASH}", json={"is_flagged": True})

        assert (await api.call("DELETE", f"/t/{HASH}")).content == b'{"status":"ok"}'
        assert (await api.call("GET", "/t")).json() == []
        reply = await peer.announce(info_hash, left=0)  # dynamic mode: a new torrent
        assert (reply.seeders, reply.leechers) == (1, 0)
    assert (await api.call("GET", f"/t/{HASH}")).json()["completed"] == 0


async def test_changes_record_the_token_label_as_actor(tmp_path: Path) -> None:
    async with serving_api(tmp_path) as api:
        await api.call("POST", f"/t/{HASH}")
        await api.call("POST", f"/t/{HASH}", token=OTHER_TOKEN, json={"is_flagged": True})
        await api.http.post(
            f"/t/{HASH}",
            json={"is_flagged": False},
            headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
        )
        await api.call("DELETE", f"/t/{HASH}")
    admin = [e for e in logged_events(api.db_path) if isinstance(e, ADMIN_EVENTS)]
    assert [(type(e), e.actor) for e in admin] == [
        (TorrentAdded, "admin"),
        (TorrentFlagged, "backup-script"),
        (TorrentUnflagged, "backup-script"),
        (TorrentDropped, "admin"),
    ]
    assert all(e.info_hash == bytes.fromhex(HASH) for e in admin)


async def test_100_concurrent_flags_and_unflags_equal_the_replay_of_the_log(
    tmp_path: Path,
) -> None:
    hashes = [bytes([n]) * 20 for n in range(1, 6)]
    async with serving_api(tmp_path, log=LogConfig(fsync=False, commit_linger_ms=2)) as api:
        async with await api.peer() as peer:
            for n, info_hash in enumerate(hashes):
                await peer.announce(info_hash, port=7000 + n)
        requests = [(hashes[n % 5], n % 2 == 0) for n in range(100)]
        replies = await asyncio.gather(
            *(api.call("POST", f"/t/{h.hex()}", json={"is_flagged": flag}) for h, flag in requests)
        )
        for (info_hash, flag), reply in zip(requests, replies, strict=True):
            assert reply.status_code == 200
            if flag:  # the reply is the state right after that flag: flagged, no peers
                assert reply.json() == {
                    "info_hash": info_hash.hex(),
                    "is_flagged": True,
                    "completed": 0,
                    "seeders": 0,
                    "leechers": 0,
                    "peers": [],
                }
            else:
                assert reply.json() == {"status": "ok"}
        live = api.running.state
        live_snapshot, live_seq = live.snapshot(), live.last_seq
        flags = {h: live.torrents[h].flagged for h in hashes}

    with EventLog(api.db_path, readonly=True) as event_log:
        replayed = TrackerState()
        replayed.apply_all(event_log.events(1, live_seq))
    assert replayed.snapshot() == live_snapshot
    # Whatever order the commits took, each torrent ends as its last committed change says.
    admin = [e for e in logged_events(api.db_path) if isinstance(e, ADMIN_EVENTS)]
    assert len(admin) == 100
    for info_hash in hashes:
        last = [e for e in admin if e.info_hash == info_hash][-1]
        assert flags[info_hash] is isinstance(last, TorrentFlagged)


async def test_a_change_in_flight_at_shutdown_is_committed_and_answered(tmp_path: Path) -> None:
    slow_commits = LogConfig(fsync=False, commit_linger_ms=300)
    async with httpx.AsyncClient(timeout=10) as http:
        async with serving_api(tmp_path, log=slow_commits) as api:
            flag = asyncio.create_task(
                http.post(
                    f"http://127.0.0.1:{api.port}/t/{HASH}",
                    params={"token": TOKEN},
                    json={"is_flagged": True},
                )
            )
            await until(lambda: api.running.writer.pending > 0)
        # The tracker has stopped; the change it had taken was committed, then answered.
        response = await flag
    assert response.status_code == 200
    assert response.json()["is_flagged"] is True
    assert TorrentFlagged in [type(event) for event in logged_events(api.db_path)]


# -- authentication ---------------------------------------------------------------------


async def test_requests_without_a_valid_token_are_refused(api: Api) -> None:
    for response in (
        await api.call("GET", "/t", token=None),
        await api.call("GET", "/t", token="wrong"),
        await api.call("GET", "/t", token=""),
        await api.call("GET", "/t", token=TOKEN[:-1]),
        await api.call("GET", f"/t/{HASH}", token=None),
        await api.call("POST", f"/t/{HASH}", token="wrong", json={"is_flagged": True}),
        await api.call("DELETE", f"/t/{HASH}", token=None),
        await api.call("GET", "/t", token=None, headers={"Authorization": "Bearer wrong"}),
        await api.call("GET", "/t", token=None, headers={"Authorization": f"Basic {TOKEN}"}),
        # every token given must be right
        await api.call("GET", "/t", headers={"Authorization": "Bearer wrong"}),
        await api.http.get(f"/t?token={TOKEN}&token=wrong"),
    ):
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await api.call("GET", "/t")).json() == []  # nothing was added


async def test_bearer_token_and_every_configured_token_work(api: Api) -> None:
    for headers, token in (
        ({"Authorization": f"Bearer {TOKEN}"}, None),
        ({"Authorization": f"bearer {OTHER_TOKEN}"}, None),
        ({}, OTHER_TOKEN),
        ({"Authorization": f"Bearer {OTHER_TOKEN}"}, TOKEN),
    ):
        assert (await api.call("GET", "/t", token=token, headers=headers)).status_code == 200


async def test_no_configured_token_refuses_everything(tmp_path: Path) -> None:
    config = make_config(tmp_path / "log", tokens={}, log=FAST_LOG)
    async with running_tracker(config) as running:
        host, port = running.http_address[:2]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            assert_error(await http.get("/t", params={"token": ""}), 401)
            assert_error(await http.get("/t", headers={"Authorization": "Bearer"}), 401)


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info_hash",
    [HASH[:-1], HASH + "0", "g" * 40, "12345678901234567890123456789012345678 0", "%20" * 40],
)
async def test_malformed_info_hash_is_400(api: Api, info_hash: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        reason = assert_error(await api.call(method, f"/t/{info_hash}"), 400)
        assert "info hash" in reason


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"is_flagged=true",
        b"[]",
        b"true",
        b"{}",
        b'{"is_flagged": "true"}',
        b'{"is_flagged": null}',
        b'{"is_flagged": 1}',
        b"\xff\xfe",
    ],
)
async def test_bad_body_is_400_and_changes_nothing(api: Api, body: bytes) -> None:
    response = await api.call(
        "POST", f"/t/{HASH}", content=body, headers={"Content-Type": "application/json"}
    )
    assert "is_flagged" in assert_error(response, 400)
    assert (await api.call("GET", "/t")).json() == []


@pytest.mark.parametrize(
    "parameters",
    [
        "offset=-1",
        "offset=abc",
        "limit=1.5",
        "limit=",
        "offset=1e3",
        "limit=%2B1",
        "limit=1&limit=2",
    ],
)
async def test_bad_offset_or_limit_is_400(api: Api, parameters: str) -> None:
    reason = assert_error(await api.http.get(f"/t?token={TOKEN}&{parameters}"), 400)
    assert parameters.split("=")[0] in reason


@pytest.mark.parametrize("path", ["/x", "/t/x/y", f"/t/{HASH}/peers", "/tt"])
async def test_unknown_route_is_404(api: Api, path: str) -> None:
    assert_error(await api.call("GET", path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/t"),
        ("POST", "/t"),
        ("DELETE", "/t/"),
        ("PATCH", f"/t/{HASH}"),
        ("PUT", f"/t/{HASH}"),
        ("POST", "/openapi.json"),
    ],
)
async def test_wrong_method_is_405(api: Api, method: str, path: str) -> None:
    response = await api.call(method, path)
    assert_error(response, 405)
    assert "GET" in response.headers["allow"]


async def test_body_over_4096_bytes_is_413_and_4096_is_accepted(api: Api) -> None:
    def padded(size: int) -> bytes:
        body = b'{"is_flagged": true, "pad": ""}'
        return body[:-2] + b"x" * (size - len(body)) + body[-2:]

    assert len(padded(4096)) == 4096
    accepted = await api.call("POST", f"/t/{HASH}", content=padded(4096))
    assert accepted.json()["is_flagged"] is True
    assert_error(await api.call("POST", f"/t/{HASH}", content=padded(4097)), 413)


async def test_malformed_http_gets_a_json_400(api: Api) -> None:
    for request in (b"GARBAGE\r\n\r\n", b"GET /t/\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(request)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert orjson.loads(body)["status"] == "err"


async def test_change_while_the_log_refuses_events_is_503(api: Api) -> None:
    await api.running.writer.close()  # as at shutdown, or after a disk failure
    response = await api.call("POST", f"/t/{HASH}", json={"is_flagged": True})
    assert "not accepting changes" in assert_error(response, 503)


async def test_openapi_document_is_served_without_a_token(api: Api) -> None:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/t", "/t/{info_hash}", "/openapi.json"}


# -- tokens stay secret -----------------------------------------------------------------


async def test_tokens_never_reach_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slow_commits = LogConfig(fsync=False, commit_linger_ms=300)
    async with serving_api(tmp_path, log=slow_commits) as api:
        await api.call("GET", "/t")
        await api.call("GET", "/nowhere")
        await api.call("POST", f"/t/{HASH}", content=b"{")
        await api.call("GET", "/t", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        # A client that leaves while its change waits for the commit.
        _, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(f"POST /t/{HASH}?token={TOKEN} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await until(lambda: api.running.writer.pending > 0)
        writer.close()
        await api.running.writer.drain()
    assert "admin" in [getattr(e, "actor", None) for e in logged_events(api.db_path)]
    logged = "\n".join(
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))  # the test's own client
    )
    assert TOKEN not in logged and OTHER_TOKEN not in logged


def test_redaction_hides_query_and_bearer_tokens() -> None:
    text = (
        "Request: POST http://127.0.0.1:1212/t/ab?token=MyAccessToken&x=1 stopped; "
        "'authorization': 'Bearer s3cond-t0ken'"
    )
    assert redact(text) == (
        "Request: POST http://127.0.0.1:1212/t/ab?token=***&x=1 stopped; "
        "'authorization': 'Bearer ***'"
    )
