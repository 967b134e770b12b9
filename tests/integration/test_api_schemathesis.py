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

TOKEN = "schemathesis-token-4f9c2e"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 30
API_ADDRESS = re.compile(r"API on (127\.0\.0\.1:\d+)")

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

    def wait_for_api(self) -> str:
        """The API's base URL, read from the start-up log line; fails if it never comes."""
        deadline = time.monotonic() + START_DEADLINE_S
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"udpt exited during start-up:\n{''.join(self.stderr)}")
            if match := API_ADDRESS.search(line):
                return f"http://{match.group(1)}"
        self.process.kill()
        pytest.fail(f"udpt did not start within {START_DEADLINE_S} s:\n{''.join(self.stderr)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        finally:
            self.process.kill()
            self._reader.join(timeout=5)


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
    url = daemon.wait_for_api()
    yield url
    assert daemon.stop() == 0, "".join(daemon.stderr)
    assert TOKEN not in "".join(daemon.stderr)


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.from_dict(DOCUMENT, base_url=api_url)


schema = schemathesis.from_pytest_fixture(
    "api_schema",
    data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative],
)


# Both ways of giving the token, with the valid token: schemathesis then generates the rest.
# Its ``ignored_auth`` check replays every accepted request without any token, and with a
# wrong one in each place, and requires a 401 each time.
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
    case.call_and_validate(timeout=10)
