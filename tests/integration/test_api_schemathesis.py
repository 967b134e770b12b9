"""The OpenAPI document against the live API: schemathesis generates requests from it
(valid ones, and ones that break it) and checks every reply against it.

No 5xx for any input; status codes, content types, headers and bodies as documented;
requests the document forbids are refused with a 4xx; every /t operation refuses a
missing or wrong token. schemathesis calls the server synchronously, so the daemon runs
as a child process (``python -m udpt -c FILE``), exactly as an operator starts it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import DataGenerationMethod
from schemathesis.specs.openapi.checks import ignored_auth

from tests.support.bep15 import (
    announce_request,
    connect_request,
    parse_announce_response,
    parse_connect_response,
)

TOKEN = "schemathesis-token-4f9c2e"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 30
STARTED = re.compile(r"serving UDP on (127\.0\.0\.1):(\d+), API on (127\.0\.0\.1:\d+)")
# The document's example torrent, with the document's example peer in it, so that reading
# and dropping the example info hash reach a real torrent.
EXAMPLE_HASH = bytes.fromhex("1234567890123456789012345678901234567890")
EXAMPLE_PEER_ID = bytes.fromhex("2d7142343235302d3458295942396f5334af686b")

DOCUMENT = json.loads(resources.files("udpt").joinpath("openapi.json").read_text())


class Daemon:
    """``python -m udpt -c FILE`` in a child process, its stderr collected by a thread."""

    def __init__(self, config_file: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "udpt", "-c", str(config_file)],
            cwd=config_file.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_until_serving(self) -> tuple[tuple[str, int], str]:
        """The UDP address and the API's base URL, read from the start-up log line."""
        deadline = time.monotonic() + START_DEADLINE_S
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"udpt exited during start-up:\n{''.join(self.stderr)}")
            if match := STARTED.search(line):
                udp_host, udp_port, api = match.groups()
                return (udp_host, int(udp_port)), f"http://{api}"
        self.process.kill()
        pytest.fail(f"udpt did not start within {START_DEADLINE_S} s:\n{''.join(self.stderr)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        finally:
            self.process.kill()
            self._reader.join(timeout=5)


def announce(tracker: tuple[str, int], info_hash: bytes, peer_id: bytes) -> None:
    """One BEP 15 connect and announce, from a blocking socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(tracker)
        sock.send(connect_request(b"cnct"))
        connection_id = parse_connect_response(sock.recv(2048)).connection_id
        sock.send(announce_request(connection_id, b"annc", info_hash, peer_id, port=52391))
        parse_announce_response(sock.recv(2048))


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("udpt-api")
    config_file = directory / "udpt.toml"
    config_file.write_text(
        f'db_path = "{directory / "log"}"\n'
        "[udp]\n"
        'bind_address = "127.0.0.1:0"\n'
        "[log]\n"
        "fsync = false\n"
        "commit_linger_ms = 0\n"
        "[http]\n"
        'bind_address = "127.0.0.1:0"\n'
        "[http.access_tokens]\n"
        f'schemathesis = "{TOKEN}"\n'
    )
    daemon = Daemon(config_file)
    try:
        udp_address, url = daemon.wait_until_serving()
        announce(udp_address, EXAMPLE_HASH, EXAMPLE_PEER_ID)
        yield url
    finally:
        status = daemon.stop()
    assert status == 0, "".join(daemon.stderr)
    assert TOKEN not in "".join(daemon.stderr)


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.from_dict(DOCUMENT, base_url=api_url)


schema = schemathesis.from_pytest_fixture(
    "api_schema",
    data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
)


@schema.hook("filter_query")
def keep_queries_that_break_the_document_on_the_wire(context: object, query: dict | None) -> bool:
    """Drop generated queries that schemathesis 3.39 would misjudge.

    It breaks ``limit: integer`` into ``[0]`` or ``"0"`` (both sent as ``limit=0``) or
    ``None`` (not sent): valid requests on the wire. And it adds unknown parameters, which
    the API ignores as UDPT does, but for an operation without path parameters it forgets
    that it tolerates those. Either way it would blame the API for accepting a valid request.
    """
    return all(
        name in ("offset", "limit", "token")
        and not (
            value is None
            or isinstance(value, list)
            or (isinstance(value, str) and value.isascii() and value.isdigit())
        )
        for name, value in (query or {}).items()
    )


# (query token, Authorization header) pairs that must be refused.
WITHOUT_A_VALID_TOKEN = (
    (None, None),
    (TOKEN[:-1], None),
    (None, f"Bearer {TOKEN}x"),
    (TOKEN, "Bearer wrong"),
    ("wrong", f"Bearer {TOKEN}"),
)


# Every generated request carries the valid token both ways (fixed values: schemathesis
# neither generates nor breaks them), so that it reaches the handlers; each one the API
# accepts is then replayed with the token missing or wrong, which must give a 401.
# (schemathesis' own ``ignored_auth`` check takes fixed values for generated ones, and would
# call the valid token invalid.)
@schema.parametrize()
@schema.override(query={"token": TOKEN}, headers={"Authorization": f"Bearer {TOKEN}"})
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_replies_match_the_document(case: schemathesis.Case) -> None:
    response = case.call_and_validate(timeout=10, excluded_checks=(ignored_auth,))
    if response.status_code >= 300 or case.operation.definition.raw.get("security") == []:
        return  # refused anyway, or open to all (the document, /, /health, /status)
    for query_token, authorization in WITHOUT_A_VALID_TOKEN:
        replay = case.partial_deepcopy()
        replay.query = {k: v for k, v in (case.query or {}).items() if k != "token"}
        replay.headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
        if query_token is not None:
            replay.query["token"] = query_token
        if authorization is not None:
            replay.headers["Authorization"] = authorization
        refused = replay.call_and_validate(timeout=10, excluded_checks=(ignored_auth,))
        assert refused.status_code == 401, (query_token, authorization, refused.text)
