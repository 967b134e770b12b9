"""The /t routes: reads answer from the projections, changes go through the intake.

A change (add, flag, unflag, drop) is decided like an announce
(``Tracker.decide_change``) and recorded through the same intake. Its reply is
built right after that event is applied and before any later event of the same
batch, so it shows the state the change produced, and it is sent only once the
change is durable.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from sanic import HTTPResponse, Request

from udpt.api.auth import TokenChecker
from udpt.api.errors import ApiError, json_reply
from udpt.api.render import OK, torrent_summary, torrent_with_peers
from udpt.clock import EventClock
from udpt.intake import Intake
from udpt.projections import TrackerState
from udpt.tracker import Change, Tracker

__all__ = ["MAX_PAGE", "TorrentRoutes", "parse_change", "parse_info_hash"]

MAX_PAGE = 1000
"""Most torrents in one ``GET /t`` reply (UDPT's documented maximum)."""

_INFO_HASH = re.compile(r"[0-9a-fA-F]{40}")
_FLAG_BODY = 'the body must be empty, {"is_flagged": true} or {"is_flagged": false}'


def parse_info_hash(text: str) -> bytes:
    """The 20 bytes of a 40-digit hex info hash, in either case; ``ApiError`` 400 otherwise."""
    if _INFO_HASH.fullmatch(text) is None:
        raise ApiError(400, "malformed info hash: expected 40 hexadecimal digits")
    return bytes.fromhex(text)


def parse_change(body: bytes) -> Change:
    """What a POST body asks for: an empty body adds, ``is_flagged`` flags or unflags.

    An empty body leaves the flag of an existing torrent as it is (UDPT's would
    lift it, so a bulk "add these hashes" script silently lifted a blacklist);
    only an explicit ``{"is_flagged": false}`` unflags. Other members are
    ignored, as UDPT's serde structure ignores them.
    """
    if not body.strip():
        return Change.ADD
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, f"body is not valid JSON: {_FLAG_BODY}") from None
    if not isinstance(document, dict) or not isinstance(document.get("is_flagged"), bool):
        raise ApiError(400, _FLAG_BODY)
    return Change.FLAG if document["is_flagged"] else Change.UNFLAG


def _count_parameter(request: Request, name: str, default: int) -> int:
    values = request.get_args(keep_blank_values=True).getlist(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise ApiError(400, f"{name} given more than once")
    [text] = values
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, f"{name} must be a whole number, 0 or more")
    try:
        return int(text)
    except ValueError:  # more digits than int() accepts
        raise ApiError(400, f"{name} is too large") from None


class TorrentRoutes:
    """Handlers of ``/t``, ``/t/`` and ``/t/<info_hash>`` over the live state."""

    def __init__(
        self,
        state: TrackerState,
        tracker: Tracker,
        intake: Intake,
        clock: EventClock,
        tokens: TokenChecker,
    ) -> None:
        self.state = state
        self.tracker = tracker
        self.intake = intake
        self.clock = clock
        self.tokens = tokens

    # -- reads -------------------------------------------------------------

    async def list_torrents(self, request: Request) -> HTTPResponse:
        self.tokens.actor(request)
        offset = _count_parameter(request, "offset", 0)
        limit = min(_count_parameter(request, "limit", MAX_PAGE), MAX_PAGE)
        torrents = self.state.torrents
        page = torrents.page(offset, limit)
        return json_reply([torrent_summary(h, torrents[h]) for h in page])

    async def get_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        self.tokens.actor(request)
        key = parse_info_hash(info_hash)
        torrent = self.state.torrents.get(key)
        if torrent is None:
            raise ApiError(404, "torrent not found")
        return json_reply(torrent_with_peers(key, torrent, self.clock.now_ms()))

    # -- changes -----------------------------------------------------------

    async def change_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        """Add (empty body), flag (``is_flagged`` true) or unflag (``is_flagged`` false)."""
        actor = self.tokens.actor(request)
        key = parse_info_hash(info_hash)
        change = parse_change(request.body)
        answer = self._flagged_reply if change is Change.FLAG else _ok
        return await self._record(change, key, actor, answer)

    async def drop_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        actor = self.tokens.actor(request)
        return await self._record(Change.DROP, parse_info_hash(info_hash), actor, _ok)

    async def _record(self, change: Change, key: bytes, actor: str, answer: Any) -> HTTPResponse:
        commit = self.tracker.decide_change(change, key, actor, self.clock.now_ms(), answer)
        if commit is None:
            raise ApiError(404, "torrent not found")
        return json_reply(await self.intake.record(commit))

    def _flagged_reply(self, key: bytes) -> dict[str, Any]:
        return torrent_with_peers(key, self.state.torrents[key], self.clock.now_ms())


def _ok(key: bytes) -> dict[str, str]:
    return OK
