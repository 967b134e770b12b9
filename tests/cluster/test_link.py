"""Opening the link to JetStream: a server whose JetStream does not answer is waited for.

A real ``nats-server`` on loopback, started without JetStream: it takes connections
but its JetStream API says it is unavailable, as a server that has just started may
for a moment. The node asks again until ``JETSTREAM_READY_S`` has passed, then fails
with NATS's error.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats import NATS_SERVER, NatsServer

pytestmark = [
    pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("nats") is None, reason="nats-py is not installed"),
]


@pytest.fixture
def no_jetstream(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats", jetstream=False)
    server.start()
    yield server
    server.stop()


async def test_a_jetstream_that_never_answers_is_asked_again_then_reported(
    no_jetstream: NatsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nats.js.errors import ServiceUnavailableError

    from udpt.cluster import link
    from udpt.config import ClusterConfig

    monkeypatch.setattr(link, "JETSTREAM_READY_S", 0.5)
    config = ClusterConfig(nats_url=(no_jetstream.url,), node_id="a")
    with (
        caplog.at_level(logging.INFO, logger="udpt.cluster.link"),
        pytest.raises(ServiceUnavailableError),
    ):
        await link.open_link(config, retention_s=0)
    waits = [r for r in caplog.records if "JetStream does not answer yet" in r.getMessage()]
    assert len(waits) >= 2
