"""The node's link to NATS JetStream: the connection, the two streams, the shared secret.

Names, from ``[cluster] stream`` (the prefix ``P``, default ``udpt``):

* stream ``P-log``, subject ``P.batches``: one message per group commit of any
  node, its payload a stand-alone batch value (``udpt.events.batch``, mode 0:
  it carries its own hash table), its ``Nats-Msg-Id`` header
  ``node_id:boot:number`` (JetStream drops a duplicate within two minutes).
  ``max_age`` is ``[log] retention`` (0: kept forever).
* stream ``P-secrets``, subject ``P.secrets.connection-id``: the connection-id
  secret, kept forever. The first node publishes one with
  ``Nats-Expected-Last-Subject-Sequence: 0``, which JetStream refuses once a
  secret is there; every node then reads the one stored, so every node issues
  and checks the same connection ids (a plain stream rather than a key-value
  bucket: nats-py creates buckets with options nats-server 2.9 predates).

A stream that exists is updated to this node's settings (retention and
replicas), so the last node started with a changed ``[log] retention`` sets it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError, ServiceUnavailableError

from udpt.config import ClusterConfig

__all__ = ["CONNECT_TIMEOUT_S", "StreamLink", "open_link", "shared_secret", "when_ready"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CONNECT_TIMEOUT_S = 5.0
JETSTREAM_READY_S = 30.0
"""How long a node waits for JetStream to answer once the server does: a server that has
just started answers connections before its JetStream does."""
JETSTREAM_RETRY_S = 0.1
_NOT_READY = (NoRespondersError, NoStreamResponseError, ServiceUnavailableError, NatsTimeoutError)
"""What JetStream's API answers (or fails to) before it is ready."""
DUPLICATE_WINDOW_S = 120.0
SECRET_SUBJECT = "secrets.connection-id"
# JetStream's error codes: "stream name already in use with a different configuration",
# "wrong last sequence".
_STREAM_IN_USE = 10058
_WRONG_LAST_SEQUENCE = 10071


def _nothing() -> None:
    return None


@dataclass
class StreamLink:
    """An open connection and the names a node publishes to and consumes from."""

    client: Client
    js: JetStreamContext
    stream: str
    subject: str
    node_id: str
    lost: Callable[[], None] = _nothing
    found: Callable[[], None] = _nothing

    async def close(self) -> None:
        try:
            await self.client.drain()
        except Exception:  # already closed, or the server is gone: nothing left to flush
            await self.client.close()


async def open_link(cluster: ClusterConfig, retention_s: int) -> StreamLink:
    """Connect (reconnecting forever afterwards), and make sure both streams exist.

    ``StreamLink.lost`` and ``found`` run on the loop when the connection is
    lost and found again. Raises ``OSError`` or a ``nats`` error when no server
    answers within ``CONNECT_TIMEOUT_S``: a node does not start without JetStream.
    """
    link: StreamLink | None = None

    async def on_disconnect() -> None:
        if link is not None:
            link.lost()

    async def on_reconnect() -> None:
        if link is not None:
            link.found()

    async def on_error(error: Exception) -> None:
        log.debug("NATS: %s", error)

    client = await nats.connect(
        list(cluster.nats_url),
        name=f"udpt {cluster.node_id}",
        connect_timeout=CONNECT_TIMEOUT_S,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
    try:
        js = client.jetstream(timeout=CONNECT_TIMEOUT_S)
        prefix = cluster.stream
        await _ensure_stream(
            js,
            StreamConfig(
                name=f"{prefix}-log",
                subjects=[f"{prefix}.batches"],
                storage=StorageType.FILE,
                num_replicas=cluster.replicas,
                max_age=float(retention_s) if retention_s else None,
                duplicate_window=DUPLICATE_WINDOW_S,
                discard=DiscardPolicy.OLD,
            ),
        )
        await _ensure_stream(
            js,
            StreamConfig(
                name=f"{prefix}-secrets",
                subjects=[f"{prefix}.secrets.>"],
                storage=StorageType.FILE,
                num_replicas=cluster.replicas,
            ),
        )
    except BaseException:
        await client.close()
        raise
    link = StreamLink(client, js, f"{prefix}-log", f"{prefix}.batches", cluster.node_id)
    return link


async def when_ready(step: Callable[[], Awaitable[_T]]) -> _T:
    """``step()``, asked again for up to ``JETSTREAM_READY_S`` while JetStream does not
    answer yet (a stream just created may not take messages at once either)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + JETSTREAM_READY_S
    while True:
        try:
            return await step()
        except _NOT_READY as error:
            if loop.time() >= deadline:
                raise
            log.info("JetStream does not answer yet (%s); trying again", type(error).__name__)
            await asyncio.sleep(JETSTREAM_RETRY_S)


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring it to ``config``."""
    await when_ready(partial(_add_or_update, js, config))


async def _add_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as error:
        if error.err_code != _STREAM_IN_USE:
            raise
        await js.update_stream(config)
        log.info("JetStream stream %s updated to this node's settings", config.name)


async def _store_first(js: JetStreamContext, subject: str, candidate: bytes) -> None:
    """Publish ``candidate`` unless the subject holds a message already (then: nothing)."""
    try:
        await js.publish(subject, candidate, headers={"Nats-Expected-Last-Subject-Sequence": "0"})
    except BadRequestError as error:
        if error.err_code != _WRONG_LAST_SEQUENCE:
            raise  # not "another node stored one first"


async def shared_secret(link: StreamLink, candidate: bytes, prefix: str) -> bytes:
    """The cluster's connection-id secret: ``candidate`` if this node stores it first."""
    subject = f"{prefix}.{SECRET_SUBJECT}"
    await when_ready(partial(_store_first, link.js, subject, candidate))
    stored = await when_ready(partial(link.js.get_last_msg, f"{prefix}-secrets", subject))
    if stored.data is None:
        raise RuntimeError(f"JetStream stream {prefix}-secrets holds an empty secret")
    return stored.data
