"""The operator's routes: ``/`` and ``/health`` and ``/status`` (no token), ``/metrics`` (token).

``/health`` is for load balancers and service managers, which carry no token:
200 while the log commits and the event loop keeps up, 503 with the reason
otherwise. ``/`` answers 200 without a token, as UDPT's does (probes and
people check the port that way). The status page shows nothing secret.
``/metrics`` needs a token like the rest of the API: the exposition names
counts an operator may not want public.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sanic import HTTPResponse, Request

from udpt import __version__
from udpt.api.auth import TokenChecker
from udpt.api.errors import json_reply
from udpt.api.status_page import render_status_page
from udpt.metrics import CONTENT_TYPE, build_registry, render
from udpt.observe import ACTIONS, SAMPLE_EVERY_S, Observer

__all__ = ["OperatorRoutes"]

_INDEX = (
    "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>udpt</title>"
    "<p>udpt {version}: a UDP BitTorrent tracker (BEP 15). "
    '<a href="/status">status</a> · <a href="/health">health</a> · '
    '<a href="/openapi.json">REST API</a></p></html>'
)


class OperatorRoutes:
    """Handlers that read an ``Observer``; only ``/metrics`` checks a token."""

    def __init__(self, observer: Observer, tokens: TokenChecker) -> None:
        self.observer = observer
        self.tokens = tokens
        self._registry = build_registry(observer)

    async def index(self, request: Request) -> HTTPResponse:
        return HTTPResponse(_INDEX.format(version=__version__), content_type="text/html")

    async def health(self, request: Request) -> HTTPResponse:
        health = self.observer.health()
        if not health.ok:
            return json_reply({"status": "err", "reason": health.reason}, 503)
        state = self.observer.state
        return json_reply(
            {
                "status": "ok",
                "last_seq": state.last_seq,
                "torrents": len(state.torrents),
                "loop_lag_seconds": round(health.loop_lag_s, 4),
                "uptime_seconds": round(time.time() - self.observer.started_at),
            }
        )

    async def metrics(self, request: Request) -> HTTPResponse:
        self.tokens.actor(request)
        return HTTPResponse(render(self._registry), content_type=CONTENT_TYPE)

    async def status(self, request: Request) -> HTTPResponse:
        return HTTPResponse(render_status_page(self.status_data()), content_type="text/html")

    def status_data(self) -> dict[str, Any]:
        """What the status page shows, as JSON-ready values (also embedded in the page)."""
        observer = self.observer
        counters = observer.counters
        health = observer.health()
        facts = observer.log_facts()
        census = observer.census.counts
        samples = list(observer.samples)
        now = observer.sample_now()
        if not samples or now.at - samples[-1].at >= SAMPLE_EVERY_S / 2:
            samples.append(now)  # a live point, unless so close to the last that it is noise
        commits = observer.commits
        loop_now = asyncio.get_running_loop().time()
        writer = (
            "committing"
            if commits.failing_since is None
            else f"failing for {loop_now - commits.failing_since:.0f} s: {commits.reason}"
        )
        return {
            "version": __version__,
            "uptime_seconds": time.time() - observer.started_at,
            "health": {
                "ok": health.ok,
                "reason": health.reason,
                "loop_lag_seconds": health.loop_lag_s,
            },
            "torrents": len(observer.state.torrents),
            "peers": None
            if census is None
            else {
                family: {role: census[family, role] for role in ("seeder", "leecher")}
                for family in ("4", "6")
            },
            "peers_counted_seconds_ago": None
            if observer.census.counted_at is None
            else time.time() - observer.census.counted_at,
            "requests_total": sum(counters.requests.values()),
            "responses_total": sum(counters.responses.values()),
            "dropped": {reason: n for reason, n in counters.dropped.items() if n},
            "writer": writer,
            "log": {
                "size_bytes": facts.size_bytes,
                "first_seq": facts.first_seq,
                "last_seq": facts.last_seq,
                "snapshot_seq": facts.snapshot_seq,
                "snapshot_age_seconds": facts.snapshot_age_s,
            },
            "actions": list(ACTIONS),
            "samples": [
                {"at": sample.at, "requests": sample.requests, "dropped": sample.dropped}
                for sample in samples
            ],
        }
