"""Decisions: a datagram in, an immediate reply, an event to commit, or silence.

The dispatch reads top to bottom (PROTOCOL.md §2): connect, announce, scrape.
Connects and scrapes are answered at once from the projections. An announce
becomes an event — accepted or refused — and its reply is built only after
the writer has committed and applied it, so every reply describes a state
that is already on disk.

Nothing here touches a socket or reads a clock: ``now`` arrives as an
argument and replies leave through the ``send`` callable of the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from udpt.connection_ids import ConnectionIds
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
)
from udpt.projections import TrackerState
from udpt.projections.swarms import select_peers
from udpt.wire import (
    AnnounceRequest,
    ConnectRequest,
    InvalidRequest,
    ScrapeRequest,
    build_announce_response,
    build_connect_response,
    build_error_response,
    build_scrape_response,
    parse_request,
)

__all__ = ["REFUSAL_MESSAGES", "Policy", "Tracker", "TrackerCounters", "expiry_event"]

# UDPT's exact texts (UDPT-COMPAT.md), checked in this order; the limit's text is ours,
# after PROTOCOL.md §9's "torrent not allowed", with UDPT's full stop.
REFUSAL_MESSAGES = {
    RefusalReason.NOT_REGISTERED: "torrent not registered.",
    RefusalReason.FLAGGED: "torrent flagged.",
    RefusalReason.TORRENT_LIMIT: "torrent not allowed.",
}

_STOPPED = AnnounceEvent.STOPPED
_EVENTS = tuple(AnnounceEvent)

Send = Callable[[bytes], None]
Submit = Callable[[Event, Callable[[int], None] | None], bool]


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings decisions depend on (from the configuration, fixed while serving)."""

    dynamic: bool = True
    interval: int = 1800
    default_numwant: int = 50
    max_numwant_v4: int = 200
    max_numwant_v6: int = 66
    max_scrape_hashes: int = 74
    peer_timeout_ms: int = 2_700_000
    torrent_retention_ms: int = 86_400_000
    cleanup_interval_ms: int = 600_000
    max_torrents: int = 1_000_000


def expiry_event(policy: Policy, now_ms: int) -> PeersExpired:
    """The sweep to record at ``now_ms``: peers past ``peer_timeout``, and in dynamic mode
    empty torrents past ``torrent_retention``."""
    torrent_cutoff = now_ms - policy.torrent_retention_ms if policy.dynamic else 0
    return PeersExpired(now_ms, now_ms - policy.peer_timeout_ms, max(torrent_cutoff, 0))


@dataclass(slots=True)
class TrackerCounters:
    """What happened to datagrams that never became events (for logs and benchmarks)."""

    dropped: int = 0
    bad_connection_id: int = 0
    shed: int = 0
    errors: int = 0


class Tracker:
    """Turns datagrams into replies and events for one tracker state."""

    def __init__(
        self,
        state: TrackerState,
        connection_ids: ConnectionIds,
        policy: Policy,
        submit: Submit,
        rng: Random | None = None,
    ) -> None:
        self.state = state
        self.connection_ids = connection_ids
        self.policy = policy
        self._submit = submit
        self._rng = rng or Random()
        self.counters = TrackerCounters()
        self.last_expiry_ms = 0

    # -- the datagram path -------------------------------------------------

    def handle(self, data: bytes, ip: bytes, now: float, now_ms: int, send: Send) -> None:
        """Handle one datagram from canonical address ``ip``; ``send`` takes the reply."""
        request = parse_request(data, self.policy.max_scrape_hashes)
        if request is None:
            self.counters.dropped += 1
            return
        if type(request) is ConnectRequest:
            send(build_connect_response(request.transaction_id, self.connection_ids.issue(ip, now)))
            return
        if not self.connection_ids.is_valid(request.connection_id, ip, now):
            self.counters.bad_connection_id += 1
            return
        if type(request) is AnnounceRequest:
            self._announce(request, ip, now_ms, send)
        elif type(request) is ScrapeRequest:
            send(build_scrape_response(request.transaction_id, self.scrape(request.info_hashes)))
        else:
            assert type(request) is InvalidRequest
            self.counters.errors += 1
            send(build_error_response(request.transaction_id, request.message))

    def _announce(self, request: AnnounceRequest, ip: bytes, now_ms: int, send: Send) -> None:
        self.expire_if_due(now_ms)
        reason = self.refusal(request.info_hash, request.event == _STOPPED)
        if reason is not None:
            event: Event = AnnounceRefused(
                now_ms, request.info_hash, ip, request.port, request.peer_id, reason
            )
            reply = build_error_response(request.transaction_id, REFUSAL_MESSAGES[reason])

            def on_committed(seq: int) -> None:
                if seq:
                    send(reply)
        else:
            event = AnnounceAccepted(
                now_ms,
                request.info_hash,
                ip,
                request.port,
                request.peer_id,
                request.key,
                _EVENTS[request.event],
                request.uploaded,
                request.downloaded,
                request.left,
            )

            def on_committed(seq: int) -> None:
                if seq:
                    send(self.announce_reply(request, ip))

        if not self._submit(event, on_committed):
            self.counters.shed += 1

    # -- decisions ---------------------------------------------------------

    def refusal(self, info_hash: bytes, stopped: bool = False) -> RefusalReason | None:
        """Why an announce for ``info_hash`` must be refused, if it must (UDPT's order).

        A ``stopped`` announce never creates a torrent, so the torrent limit spares it.
        """
        torrent = self.state.torrents.get(info_hash)
        if not self.policy.dynamic and (torrent is None or not torrent.registered):
            return RefusalReason.NOT_REGISTERED
        if torrent is None:
            if not stopped and len(self.state.torrents) >= self.policy.max_torrents:
                return RefusalReason.TORRENT_LIMIT
        elif torrent.flagged:
            return RefusalReason.FLAGGED
        return None

    def expire_if_due(self, now_ms: int) -> None:
        """Record the passing of time when ``cleanup_interval`` has elapsed since the last sweep,
        unless the sweep would change nothing (it would only fill the log)."""
        if now_ms - self.last_expiry_ms < self.policy.cleanup_interval_ms:
            return
        sweep = expiry_event(self.policy, now_ms)
        if not self.state.sweep_would_visit(sweep) or self._submit(sweep, None):
            self.last_expiry_ms = now_ms  # a sweep refused by a full writer is tried again

    # -- replies, built from the projections --------------------------------

    def announce_reply(self, request: AnnounceRequest, ip: bytes) -> bytes:
        """The reply to an applied announce: counts after it, and peers unless it stopped.

        A torrent flagged between the decision and the commit ignored the announce
        (the flag wins in the fold), so the client hears that it is flagged.
        """
        policy = self.policy
        torrent = self.state.torrents.get(request.info_hash)
        if torrent is None:
            return build_announce_response(request.transaction_id, policy.interval, 0, 0, b"")
        if torrent.flagged and request.event != _STOPPED:
            return build_error_response(
                request.transaction_id, REFUSAL_MESSAGES[RefusalReason.FLAGGED]
            )
        swarm = torrent.swarm
        peers = b""
        if request.event != _STOPPED:
            wanted = request.num_want
            if wanted < 0:
                wanted = policy.default_numwant
            cap = policy.max_numwant_v4 if len(ip) == 4 else policy.max_numwant_v6
            peers = select_peers(
                swarm,
                ip + request.port.to_bytes(2, "big"),
                request.left == 0,
                min(wanted, cap),
                self._rng,
            )
        return build_announce_response(
            request.transaction_id, policy.interval, swarm.leechers, swarm.seeders, peers
        )

    def scrape(self, info_hashes: tuple[bytes, ...]) -> list[tuple[int, int, int]]:
        """(seeders, completed, leechers) per hash, in request order; zeros for unknown ones."""
        torrents = self.state.torrents
        entries = []
        for info_hash in info_hashes:
            torrent = torrents.get(info_hash)
            if torrent is None:
                entries.append((0, 0, 0))
            else:
                swarm = torrent.swarm
                entries.append((swarm.seeders, torrent.completed, swarm.leechers))
        return entries
