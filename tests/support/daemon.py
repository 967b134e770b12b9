"""Run the real daemon (``udpt.daemon.serve``) inside the test's event loop.

Real UDP socket on an ephemeral port, real LMDB log in a temp directory, the
real Sanic API when ``http`` is given; a manual clock and a seeded RNG so
time-dependent cases are deterministic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from random import Random
from typing import Any

from udpt.clock import EventClock, ManualClock
from udpt.config import Config, HttpConfig, Mode, load_config
from udpt.daemon import Running, serve
from udpt.events.types import Event
from udpt.tracker import Commit
from udpt.udp import bind_udp_socket

__all__ = ["make_config", "record", "running_tracker"]


def make_config(
    db_path: Path, *, mode: str = "dynamic", tokens: Mapping[str, str] | None = None, **udp: Any
) -> Config:
    """Defaults with the log in ``db_path``; ``tokens`` turns the API on; ``udp`` sets [udp]
    (and ``cleanup_interval``, ``log`` and ``quotas``, which replace theirs)."""
    config = load_config(None)
    http = None if tokens is None else HttpConfig("127.0.0.1:0", dict(tokens))
    cleanup = udp.pop("cleanup_interval", config.cleanup_interval)
    log = udp.pop("log", config.log)
    quotas = udp.pop("quotas", config.quotas)
    return dataclasses.replace(
        config,
        db_path=db_path,
        mode=Mode(mode),
        http=http,
        cleanup_interval=cleanup,
        log=log,
        quotas=quotas,
        udp=dataclasses.replace(config.udp, **udp),
    )


def _http_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@asynccontextmanager
async def running_tracker(
    config: Config, *, host: str = "127.0.0.1", clock: ManualClock | None = None, seed: int = 0
) -> AsyncIterator[Running]:
    """Start ``serve(config)`` on ``host`` port 0 and yield it once ready; stop it on exit."""
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    event_clock = EventClock(clock) if clock is not None else EventClock()
    task = asyncio.create_task(
        serve(
            config,
            udp_socket=bind_udp_socket(host, 0),
            http_socket=_http_socket(host) if config.http is not None else None,
            clock=event_clock,
            rng=Random(seed),
            stop_event=stop,
            ready=lambda running: ready.set_result(running),
        )
    )
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # start-up failed: raise its error here
        raise RuntimeError("the tracker stopped during start-up")
    if not done:
        task.cancel()
        raise TimeoutError("the tracker did not start within 30 s")
    try:
        yield ready.result()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def record(running: Running, event: Event) -> None:
    """Record ``event`` through the tracker's intake, as the API does; wait for its commit."""
    await running.intake.record(Commit(event, _no_answer, None))


def _no_answer(context: None) -> None:
    return None
