"""A real ``nats-server -js`` on a free loopback port, started and stopped by a test.

Readiness is the server's monitoring endpoint answering ``/healthz`` with
JetStream up (``?js-enabled-only=true``), polled until a deadline: no sleeps.
Stopping and starting again keeps the port and the storage directory, as an
operator restarting the server would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

__all__ = ["NATS_SERVER", "NatsServer", "free_port"]

NATS_SERVER = shutil.which("nats-server")
READY_TIMEOUT_S = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One JetStream server on 127.0.0.1; ``url`` is what ``[cluster] nats_url`` names."""

    def __init__(self, store_dir: Path, jetstream: bool = True) -> None:
        assert NATS_SERVER is not None, "nats-server is not installed"
        self.store_dir = store_dir
        self.jetstream = jetstream
        self.port = free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log = store_dir.parent / f"nats-{self.port}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert NATS_SERVER is not None
        with open(self._log, "ab") as output:
            self.process = subprocess.Popen(
                [
                    NATS_SERVER,
                    *(["-js"] if self.jetstream else []),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-m",
                    str(self.monitor_port),
                    "-sd",
                    str(self.store_dir),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        health = f"http://127.0.0.1:{self.monitor_port}/healthz"
        if self.jetstream:
            health += "?js-enabled-only=true"
        while True:
            assert self.process.poll() is None, f"nats-server exited: {self._log.read_text()}"
            try:
                with urllib.request.urlopen(health, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "nats-server did not become ready in time"
            time.sleep(0.02)  # poll interval of a deadline-bound wait, not a wait for state

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
