"""Smoke test of the benchmark load generator (benchmarks/loadgen/loadgen.c).

The benchmarks trust loadgen's numbers, so it must build warning-free, drive a
valid BEP 15 responder without complaint, and catch a responder that is broken:
an instrument that never reports a bad reply measures nothing. The responders
here are tiny asyncio fakes; they do no tracker work.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

LOADGEN_SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "loadgen" / "loadgen.c"
PROTOCOL_MAGIC = bytes.fromhex("0000041727101980")
CONNECTION_ID = bytes.fromhex("0102030405060708")
ANNOUNCE_MIN_LENGTH = 98

Answer = Callable[[bytes], bytes | None]


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """loadgen compiled with the flags the benchmark runner uses; warnings fail the test."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    binary = tmp_path_factory.mktemp("loadgen") / "loadgen"
    build = subprocess.run(
        [gcc, "-O2", "-Wall", "-Wextra", "-o", str(binary), str(LOADGEN_SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    assert build.stderr == "", f"compiler warnings:\n{build.stderr}"
    return binary


def valid_reply(request: bytes) -> bytes | None:
    """A well-formed answer: connect, a 20-byte announce with no peers, zeroed scrape entries."""
    if len(request) < 16:
        return None
    (action,) = struct.unpack_from("!I", request, 8)
    transaction_id = request[12:16]
    if action == 0 and request[:8] == PROTOCOL_MAGIC:
        return struct.pack("!I4s8s", 0, transaction_id, CONNECTION_ID)
    if action == 1 and len(request) >= ANNOUNCE_MIN_LENGTH:
        return struct.pack("!I4siii", 1, transaction_id, 1800, 0, 0)
    if action == 2:
        hashes = (len(request) - 16) // 20
        return struct.pack("!I4s", 2, transaction_id) + bytes(12 * hashes)
    return None


def announce_one_byte_too_long(request: bytes) -> bytes | None:
    """Valid answers, except announces are 21 bytes: not 20 + 6n, as a broken tracker might send."""
    reply = valid_reply(request)
    if reply is not None and reply[:4] == struct.pack("!I", 1):
        return reply + b"\x00"
    return reply


class Responder(asyncio.DatagramProtocol):
    """Answers each datagram with `answer(datagram)`, or stays silent when that is None."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._transport: asyncio.DatagramTransport | None = None
        self.sources: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport on 3.11.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sources.add(addr[0])
        reply = self._answer(data)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


async def run_against(
    loadgen: Path, answer: Answer, *extra: str, sources: set[str] | None = None
) -> dict[str, Any]:
    """Serve `answer` on 127.0.0.1:<free port>, run loadgen for 1 s, return its JSON report.

    ``extra`` are more loadgen options; ``sources`` gets the addresses the load came from.
    """
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        lambda: Responder(answer), local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        process = await asyncio.create_subprocess_exec(
            str(loadgen),
            *("--port", str(port), "--duration", "1", "--sockets", "4", "--window", "2"),
            *extra,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    finally:
        transport.close()
    if sources is not None:
        sources.update(responder.sources)
    assert process.returncode == 0, stderr.decode()
    report: dict[str, Any] = json.loads(stdout)
    return report


async def test_valid_responder_gets_only_ok_replies(loadgen: Path) -> None:
    report = await run_against(loadgen, valid_reply)

    assert report["totals"]["ok"] > 0
    assert report["types"]["announce"]["ok"] > 0
    assert report["types"]["scrape"]["ok"] > 0
    assert report["totals"]["malformed"] == 0
    assert report["violations"] == {}
    assert report["lost"] == 0
    assert report["responses_per_s"] > 0


async def test_src_ips_spreads_the_sockets_over_that_many_loopback_sources(loadgen: Path) -> None:
    sources: set[str] = set()
    report = await run_against(
        loadgen, valid_reply, "--sockets", "6", "--src-ips", "3", sources=sources
    )

    assert sources == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert report["violations"] == {}  # self_in_peers knows each socket's own address
    assert report["lost"] == 0


async def test_wrong_length_announce_replies_are_reported_malformed(loadgen: Path) -> None:
    report = await run_against(loadgen, announce_one_byte_too_long)

    announce = report["types"]["announce"]
    assert announce["malformed"] > 0
    assert announce["ok"] == 0
    assert report["types"]["scrape"]["malformed"] == 0
    assert report["violations"]["announce_length"]["first_len"] == 21


def test_non_loopback_target_is_refused(loadgen: Path) -> None:
    result = subprocess.run(
        [str(loadgen), "--host", "192.0.2.1", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )

    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_dumped_hashes_depend_only_on_seed(loadgen: Path) -> None:
    def dump(seed: int) -> list[str]:
        result = subprocess.run(
            [str(loadgen), "--torrents", "3", "--seed", str(seed), "--dump-hashes", "-"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return result.stdout.splitlines()

    hashes = dump(7)

    assert len(hashes) == 3
    assert all(len(line) == 40 and bytes.fromhex(line) for line in hashes)
    assert dump(7) == hashes
    assert dump(8) != hashes
