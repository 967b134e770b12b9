"""The Sanic server of the REST API, run in the daemon's own process and event loop.

Sanic is driven through ``create_server`` (docs/PYTHON-STACK.md §1.4): no worker
manager, no child processes, no signal handlers of its own; the daemon starts
and stops it in its shutdown order. Each start builds a fresh app with a
unique name and TouchUp off, so a process (a test run) can start it many times.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from importlib import resources
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import RequestCancelled
from sanic.server import AsyncioServer

from udpt.addresses import parse_bind_address
from udpt.api.errors import TokenRedactor, error_reply
from udpt.api.operator import OperatorRoutes
from udpt.api.routes import TorrentRoutes
from udpt.config import HttpConfig

__all__ = ["MAX_BODY_BYTES", "ApiServer", "add_operator_routes", "bind_http_socket", "build_app"]

MAX_BODY_BYTES = 4096
"""Largest request body accepted (UDPT's limit); larger ones get 413."""

_SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")
_REDACTOR = TokenRedactor()
_app_numbers = itertools.count(1)


def bind_http_socket(bind_address: str) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (``[::]`` is dual-stack; port 0 = any).

    Sanic cannot bind port 0 itself (it turns 0 into 8000), so udpt always
    binds and hands Sanic the socket.
    """
    host, port = parse_bind_address(bind_address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def build_app(routes: TorrentRoutes, openapi_document: bytes) -> Sanic[Any, Any]:
    """A new Sanic app serving ``routes`` and the OpenAPI document."""
    app = Sanic(f"udpt-api-{next(_app_numbers)}", configure_logging=False, env_prefix=None)
    app.config.update(
        MOTD=False,
        TOUCHUP=False,  # TouchUp rewrites Sanic's classes in place: a 2nd app would fail
        AUTO_EXTEND=False,
        ACCESS_LOG=False,  # an access log would record ?token=
        REQUEST_MAX_SIZE=MAX_BODY_BYTES,
    )
    app.add_route(
        routes.list_torrents, "/t", methods=["GET"], name="list_torrents", ignore_body=True
    )
    app.add_route(
        routes.get_torrent,
        "/t/<info_hash:str>",
        methods=["GET"],
        name="get_torrent",
        ignore_body=True,
    )
    app.add_route(
        routes.change_torrent, "/t/<info_hash:str>", methods=["POST"], name="change_torrent"
    )
    app.add_route(
        routes.drop_torrent,
        "/t/<info_hash:str>",
        methods=["DELETE"],
        name="drop_torrent",
        ignore_body=True,
    )

    async def openapi(request: Request) -> HTTPResponse:
        return HTTPResponse(openapi_document, content_type="application/json")

    app.add_route(openapi, "/openapi.json", methods=["GET"], name="openapi", ignore_body=True)
    app.error_handler.add(Exception, error_reply)
    app.error_handler.add(RequestCancelled, error_reply)
    return app


def add_operator_routes(app: Sanic[Any, Any], operator: OperatorRoutes) -> None:
    """``/``, ``/health``, ``/status`` and ``/metrics`` (udpt/api/operator.py)."""
    for handler, path in (
        (operator.index, "/"),
        (operator.health, "/health"),
        (operator.status, "/status"),
        (operator.metrics, "/metrics"),
    ):
        name = path.strip("/") or "index"
        app.add_route(handler, path, methods=["GET"], name=name, ignore_body=True)


def _install_redactor() -> None:
    for name in _SANIC_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


class ApiServer:
    """A running REST API; ``close()`` stops it."""

    def __init__(self, app: Sanic[Any, Any], server: AsyncioServer, sock: socket.socket) -> None:
        self._app = app
        self._server = server
        self._sock = sock
        self.address: tuple[Any, ...] = sock.getsockname()

    @classmethod
    async def start(
        cls,
        http: HttpConfig,
        routes: TorrentRoutes,
        http_socket: socket.socket | None = None,
        *,
        operator: OperatorRoutes,
    ) -> ApiServer:
        """Serve ``routes`` and ``operator`` on ``http_socket`` (bound from ``http`` if None)."""
        _install_redactor()
        sock = http_socket or bind_http_socket(http.bind_address)
        document = resources.files("udpt").joinpath("openapi.json").read_bytes()
        app = build_app(routes, document)
        add_operator_routes(app, operator)
        try:
            server = await app.create_server(
                sock=sock, access_log=False, asyncio_server_kwargs={"start_serving": False}
            )
            if server is None:
                raise RuntimeError("Sanic did not create a server")
            await server.startup()
            await server.before_start()
            await server.start_serving()
            await server.after_start()
        except BaseException:
            Sanic.unregister_app(app)
            sock.close()
            raise
        return cls(app, server, sock)

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish (up to ``grace_s``), then stop.

        The daemon calls this before closing the writer, so a change already
        submitted is still committed and answered.
        """
        server = self._server
        await server.before_stop()
        server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while True:
            for connection in list(server.connections):
                connection.close_if_idle()  # keep-alive ones too, once their reply is out
            if not server.connections or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        for connection in list(server.connections):
            connection.abort()
        await server.wait_closed()
        await server.after_stop()
        Sanic.unregister_app(self._app)
        self._sock.close()
