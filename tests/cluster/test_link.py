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


async def test_a_node_starting_on_a_jetstream_that_stops_answering_asks_again_then_reports(
    no_jetstream: NatsServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``ClusterWriter.start`` reads the stream's state after the link is open: a JetStream
    that does not answer then is asked again, as ``open_link`` asks, not a traceback."""
    import nats
    from nats.js.errors import ServiceUnavailableError

    from udpt.cluster import link
    from udpt.cluster.writer import ClusterWriter
    from udpt.events.log import EventLog

    monkeypatch.setattr(link, "JETSTREAM_READY_S", 0.5)
    client = await nats.connect(no_jetstream.url)
    stream_link = link.StreamLink(client, client.jetstream(timeout=0.2), "t-log", "t.batches", "a")
    try:
        with EventLog(tmp_path / "log") as event_log:
            writer = ClusterWriter(event_log, stream_link, lambda *_: None, lambda *_: None)
            with (
                caplog.at_level(logging.INFO, logger="udpt.cluster.link"),
                pytest.raises(ServiceUnavailableError),
            ):
                await writer.start()
    finally:
        await client.close()
    waits = [r for r in caplog.records if "JetStream does not answer yet" in r.getMessage()]
    assert len(waits) >= 2
