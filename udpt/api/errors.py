"""Every failure as UDPT's JSON error shape, and tokens kept out of the logs.

UDPT answers errors with warp's plain-text 405/500; scripts are better served by
``{"status": "err", "reason": ...}`` and an honest status code. The reasons are
fixed texts: a reply never echoes a request (which may carry a token), and never
shows a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus

import orjson
from sanic import HTTPResponse, Request
from sanic.constants import HTTP_METHODS
from sanic.exceptions import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestCancelled,
    SanicException,
)

from udpt.intake import NotRecordedError

__all__ = ["ApiError", "TokenRedactor", "error_reply", "json_reply", "redact"]

log = logging.getLogger("udpt.api")


class ApiError(Exception):
    """A request the API refuses: its status and the reason shown to the client."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


def json_reply(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> HTTPResponse:
    """``body`` as compact JSON in the key order it was built with."""
    return HTTPResponse(
        orjson.dumps(body),
        status=status,
        headers=dict(headers) if headers else None,
        content_type="application/json",
    )


def error_reply(request: Request, exception: BaseException) -> HTTPResponse:
    """The JSON reply for any exception that reaches Sanic (its own ones included).

    Installed for ``Exception`` and ``RequestCancelled`` (a ``CancelledError``),
    so Sanic's default handler, which logs the URL with its query string (and so
    the token), never runs.
    """
    status, reason, headers = _describe(request, exception)
    return json_reply({"status": "err", "reason": reason}, status, headers)


def _describe(request: Request, exception: BaseException) -> tuple[int, str, Mapping[str, str]]:
    if isinstance(exception, ApiError):
        return exception.status, exception.reason, exception.headers
    if isinstance(exception, NotFound):
        return 404, "not found", {}
    if isinstance(exception, MethodNotAllowed):
        return 405, "method not allowed", {"Allow": _allowed_methods(request)}
    if isinstance(exception, RequestCancelled):  # the client left: nobody reads this
        return 503, "request cancelled", {}
    if isinstance(exception, PayloadTooLarge):
        return 413, "request too large: the body may have at most 4096 bytes", {}
    if isinstance(exception, BadRequest):
        return 400, "malformed HTTP request", {}
    if isinstance(exception, NotRecordedError):
        return 503, "the tracker is not accepting changes now (overloaded or stopping)", {}
    if isinstance(exception, SanicException) and exception.status_code < 500:
        status = exception.status_code
        return status, HTTPStatus(status).phrase.lower(), exception.headers
    if isinstance(exception, SanicException):
        return exception.status_code, "the server could not answer", {}
    log.error("%s %s failed", request.method, request.path, exc_info=exception)
    return 500, "internal error", {}


def _allowed_methods(request: Request) -> str:
    """The methods the request's path has (Sanic's router leaves them out for a path
    with a parameter, such as /t/<info_hash>)."""
    allowed = []
    for method in HTTP_METHODS:
        try:
            request.app.router.get(request.path, method, request.headers.getone("host", None))
        except SanicException:
            continue
        allowed.append(method)
    return ", ".join(allowed)


# ``token=<value>`` in a query string, ``Bearer <value>`` in a header.
_SECRETS = re.compile(r"(?i)(token=)[^&\s'\"#]*|(bearer\s+)[^\s'\"]+")


def redact(text: str) -> str:
    """``text`` with token values replaced by ``***``."""
    return _SECRETS.sub(lambda match: (match.group(1) or match.group(2)) + "***", text)


class TokenRedactor(logging.Filter):
    """Removes tokens from Sanic's log records.

    Sanic logs ``request.url``, query string included, in a few places (a
    request whose client went away, an error in an error handler), and the
    document puts the token in the query string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
