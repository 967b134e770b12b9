"""Access tokens: who may use the API, and the label that names them in admin events."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from sanic import Request

from udpt.api.errors import ApiError

__all__ = ["TokenChecker"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="udpt"'}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenChecker:
    """Checks the token of a request against every configured token.

    Tokens are compared as SHA-256 digests with ``hmac.compare_digest``, against
    every configured token with no early exit, so neither the time taken nor its
    variation with the length tells how much of a guess was right, or which
    token it was close to.
    """

    def __init__(self, tokens_by_label: Mapping[str, str]) -> None:
        self.update(tokens_by_label)

    def update(self, tokens_by_label: Mapping[str, str]) -> None:
        """Check against these tokens from now on (a reload on SIGHUP)."""
        self._digests = [(label, _digest(token)) for label, token in tokens_by_label.items()]

    def actor(self, request: Request) -> str:
        """The label of the request's token; raises ``ApiError`` 401 without a valid one.

        The token comes as ``?token=`` (UDPT's way) or ``Authorization: Bearer``;
        every token a request gives must be valid, and the first names the actor.
        """
        presented = _presented_tokens(request)
        if not presented:
            raise ApiError(401, "Access Denied: no token", _CHALLENGE)
        labels = [self._label(token) for token in presented]
        if None in labels:
            raise ApiError(401, "Access Denied: wrong token", _CHALLENGE)
        return labels[0]  # type: ignore[return-value]

    def _label(self, token: str) -> str | None:
        digest = _digest(token)
        found = None
        for label, expected in self._digests:
            if hmac.compare_digest(digest, expected):
                found = label
        return found


def _presented_tokens(request: Request) -> list[str]:
    tokens = list(request.get_args(keep_blank_values=True).getlist("token", []))
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        tokens.append(credentials.strip())
    return tokens
