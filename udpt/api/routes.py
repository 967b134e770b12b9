"""The /t routes: reads answer from the projections, changes go through the event log.

A change (add, flag, unflag, drop) is an event submitted to the group-commit
writer, exactly as an announce is. Its reply is built in the writer's commit
callback, right after that event is applied and before any later event of the
same batch, so it shows the state the change produced, and it is sent only
once the change is durable.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from sanic import HTTPResponse, Request

from udpt.api.auth import TokenChecker
from udpt.api.errors import ApiError, json_reply
from udpt.api.render import OK, torrent_summary, torrent_with_peers
from udpt.clock import EventClock
from udpt.events.types import (
    Event,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentUnflagged,
)
from udpt.events.writer import GroupCommitWriter, WriterClosed
from udpt.projections import TrackerState

__all__ = ["MAX_PAGE", "TorrentRoutes", "parse_flag", "parse_info_hash"]

MAX_PAGE = 1000
"""Most torrents in one ``GET /t`` reply (UDPT's documented maximum)."""

_INFO_HASH = re.compile(r"[0-9a-fA-F]{40}")
_FLAG_BODY = 'the body must be empty, {"is_flagged": true} or {"is_flagged": false}'

T = TypeVar("T")


def parse_info_hash(text: str) -> bytes:
    """The 20 bytes of a 40-digit hex info hash, in either case; ``ApiError`` 400 otherwise."""
    if _INFO_HASH.fullmatch(text) is None:
        raise ApiError(400, "malformed info hash: expected 40 hexadecimal digits")
    return bytes.fromhex(text)


def parse_flag(body: bytes) -> bool:
    """The ``is_flagged`` a POST body asks for: an empty body means false (add).

    Other members are ignored, as UDPT's serde structure ignores them.
    """
    if not body.strip():
        return False
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, f"body is not valid JSON: {_FLAG_BODY}") from None
    if not isinstance(document, dict) or not isinstance(document.get("is_flagged"), bool):
        raise ApiError(400, _FLAG_BODY)
    return document["is_flagged"]


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
        writer: GroupCommitWriter,
        clock: EventClock,
        tokens: TokenChecker,
    ) -> None:
        self.state = state
        self.writer = writer
        self.clock = clock
        self.tokens = tokens
        # Flags submitted but not yet applied, per info hash: an unflag decided
        # meanwhile must be recorded as TorrentUnflagged, or the pending flag
        # would win although it came first.
        self._flags_in_flight: Counter[bytes] = Counter()

    # -- reads -------------------------------------------------------------

    async def list_torrents(self, request: Request) -> HTTPResponse:
        self.tokens.actor(request)
        offset = _count_parameter(request, "offset", 0)
        limit = min(_count_parameter(request, "limit", MAX_PAGE), MAX_PAGE)
        torrents = self.state.torrents
        end = offset + limit
        # The first pages cost O(n log end) rather than a full sort.
        ordered = heapq.nsmallest(end, torrents) if end < len(torrents) else sorted(torrents)
        return json_reply([torrent_summary(h, torrents[h]) for h in ordered[offset:end]])

    async def get_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        self.tokens.actor(request)
        key = parse_info_hash(info_hash)
        torrent = self.state.torrents.get(key)
        if torrent is None:
            raise ApiError(404, "torrent not found")
        return json_reply(torrent_with_peers(key, torrent, self.clock.now_ms()))

    # -- changes -----------------------------------------------------------

    async def change_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        """Add (empty body, or ``is_flagged`` false) or unflag; or flag (``is_flagged`` true)."""
        actor = self.tokens.actor(request)
        key = parse_info_hash(info_hash)
        flag = parse_flag(request.body)
        now_ms = self.clock.now_ms()
        if flag:
            body = await self._commit(
                TorrentFlagged(now_ms, key, actor), lambda: self._flagged_reply(key)
            )
            return json_reply(body)
        torrent = self.state.torrents.get(key)
        if (torrent is not None and torrent.flagged) or self._flags_in_flight[key]:
            await self._commit(TorrentUnflagged(now_ms, key, actor), _nothing)
        else:
            await self._commit(TorrentAdded(now_ms, key, actor), _nothing)
        return json_reply(OK)

    async def drop_torrent(self, request: Request, info_hash: str) -> HTTPResponse:
        actor = self.tokens.actor(request)
        key = parse_info_hash(info_hash)
        if key not in self.state.torrents:
            raise ApiError(404, "torrent not found")
        await self._commit(TorrentDropped(self.clock.now_ms(), key, actor), _nothing)
        return json_reply(OK)

    def _flagged_reply(self, key: bytes) -> dict[str, Any]:
        return torrent_with_peers(key, self.state.torrents[key], self.clock.now_ms())

    def _commit(self, event: Event, reply: Callable[[], T]) -> asyncio.Future[T]:
        """Submit ``event``; the future gets ``reply()``, computed right after it is applied.

        Submitting is synchronous: the event's time (read just before) and its
        place in the log agree with every other event's.
        """
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        flagging = isinstance(event, TorrentFlagged)

        def committed(seq: int) -> None:
            if flagging:
                self._flags_in_flight[event.info_hash] -= 1
                if not self._flags_in_flight[event.info_hash]:
                    del self._flags_in_flight[event.info_hash]
            if done.done():  # the client went away; the change stands
                return
            if not seq:
                done.set_exception(WriterClosed("the event log failed to commit"))
                return
            try:
                done.set_result(reply())
            except Exception as exc:
                done.set_exception(exc)

        if not self.writer.submit(event, committed):
            raise WriterClosed("the event log is not accepting events")
        if flagging:
            self._flags_in_flight[event.info_hash] += 1
        return done


def _nothing() -> None:
    return None
