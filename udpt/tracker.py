"""Decisions: a request in, a value out — a reply now, a record to commit, or silence.

``Tracker.decide`` reads the projections and returns one of:

- ``bytes``: the reply to send at once (connects, scrapes, malformed requests);
- a ``Commit``: an event to record, and how to build its answer once it is
  committed and applied (announces, accepted or refused), so every reply
  describes a state that is already on disk;
- ``None``: silence (a bad connection id).

Admin changes (``decide_change``) return the same shape. Nothing here knows a
writer, a socket or a callback, and nothing here changes the state: the intake
(``udpt/intake.py``) takes a ``Commit`` to the log and builds its answer after
the fold. The dispatch reads top to bottom (docs/PROTOCOL.md §2): connect,
announce, scrape.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any, NamedTuple

from udpt.config import Config, Mode
from udpt.connection_ids import ConnectionIds
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    Event,
    PeersExpired,
    RefusalReason,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentUnflagged,
)
from udpt.projections import TrackerState
from udpt.quotas import NEW_TORRENTS_OVER_QUOTA, OVER_QUOTA, QuotaPolicy, SourceQuotas
from udpt.wire import (
    AnnounceRequest,
    ConnectRequest,
    Request,
    ScrapeRequest,
    build_announce_response,
    build_connect_response,
    build_error_response,
    build_scrape_response,
)

__all__ = [
    "MAX_SWEEP_INTERVAL_S",
    "REFUSAL_MESSAGES",
    "Change",
    "Commit",
    "Decision",
    "Policy",
    "Tracker",
]

# UDPT's exact texts (docs/UDPT-COMPAT.md), checked in this order; the limit's text is ours,
# after docs/PROTOCOL.md §9's "torrent not allowed", with UDPT's full stop.
REFUSAL_MESSAGES = {
    RefusalReason.NOT_REGISTERED: "torrent not registered.",
    RefusalReason.FLAGGED: "torrent flagged.",
    RefusalReason.TORRENT_LIMIT: "torrent not allowed.",
    RefusalReason.SWARM_FULL: "torrent full.",
    RefusalReason.SOURCE_FULL: "too many peers from your address.",
}

MAX_SWEEP_INTERVAL_S = 10
"""Expiry sweeps run at least this often, whatever ``cleanup_interval`` says.

Expired peers must vanish promptly (docs/PROTOCOL.md §6.7), and a sweep costs
only what it removes (projections/time_index.py), so UDPT's 600 s default
would only keep dead peers on show for ten minutes.
"""

_STOPPED = AnnounceEvent.STOPPED
_EVENTS = tuple(AnnounceEvent)


class Commit(NamedTuple):
    """Record ``event``; once it is applied, the answer is ``answer(context)``.

    ``answer`` runs right after ``event`` is folded and before any later event,
    so it sees exactly the state the event produced.
    """

    event: Event
    answer: Callable[[Any], Any]
    context: Any


Decision = bytes | Commit | None


def _as_is(reply: bytes) -> bytes:
    """The answer of a refusal: fixed when decided, sent once the refusal is recorded."""
    return reply


class Change(enum.Enum):
    """What an admin asks for through the REST API."""

    ADD = "add"
    FLAG = "flag"
    UNFLAG = "unflag"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings decisions depend on, taken from the configuration (fixed while serving)."""

    dynamic: bool
    interval: int
    default_numwant: int
    max_numwant_v4: int
    max_numwant_v6: int
    max_scrape_hashes: int
    peer_timeout_ms: int
    torrent_retention_ms: int
    sweep_interval_ms: int
    max_torrents: int
    max_peers_per_torrent: int
    max_ports_per_source: int
    quotas: QuotaPolicy

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        udp, quotas = config.udp, config.quotas
        return cls(
            dynamic=config.mode is Mode.DYNAMIC,
            interval=udp.announce_interval,
            default_numwant=udp.default_numwant,
            max_numwant_v4=udp.max_numwant,
            max_numwant_v6=udp.max_numwant_v6,
            max_scrape_hashes=udp.max_scrape_hashes,
            peer_timeout_ms=udp.peer_timeout * 1000,
            torrent_retention_ms=udp.torrent_retention * 1000,
            sweep_interval_ms=min(config.cleanup_interval, MAX_SWEEP_INTERVAL_S) * 1000,
            max_torrents=udp.max_torrents,
            max_peers_per_torrent=udp.max_peers_per_torrent,
            max_ports_per_source=udp.max_ports_per_ip_per_torrent,
            quotas=QuotaPolicy(
                prefix_v4=quotas.source_prefix_v4,
                prefix_v6=quotas.source_prefix_v6,
                announces_per_s=quotas.announces_per_second,
                announce_burst=quotas.announce_burst,
                new_torrents_per_min=quotas.new_torrents_per_minute,
                new_torrent_burst=quotas.new_torrent_burst,
                error_replies_per_s=quotas.error_replies_per_second,
                recorded_refusals_per_min=quotas.recorded_refusals_per_minute,
                max_sources=quotas.max_sources,
            ),
        )


class Tracker:
    """Decides what each request gets, from one tracker state.

    Besides the projections it keeps two things that are not state (no event
    records them, no replay needs them): the per-source quotas, and
    ``creating``, the torrents that accepted announces will create once they are
    applied, so that ``max_torrents`` also counts creations still on their way
    to the log (the intake calls ``settled`` as each one is applied or lost).
    """

    def __init__(
        self,
        state: TrackerState,
        connection_ids: ConnectionIds,
        policy: Policy,
        rng: Random | None = None,
    ) -> None:
        self.state = state
        self.connection_ids = connection_ids
        self.policy = policy
        self._rng = rng or Random()
        self.quotas = SourceQuotas(policy.quotas)
        self.creating: dict[bytes, int] = {}

    # -- the datagram path -------------------------------------------------

    def decide(self, request: Request, ip: bytes, now_ms: int) -> Decision:
        """What a parsed datagram from canonical address ``ip`` gets at ``now_ms``."""
        now = now_ms / 1000
        if isinstance(request, ConnectRequest):
            return build_connect_response(
                request.transaction_id, self.connection_ids.issue(ip, now)
            )
        if not self.connection_ids.is_valid(request.connection_id, ip, now):
            return None
        if isinstance(request, AnnounceRequest):
            if not self.quotas.take_announce(ip, now_ms):
                return self._over_quota(request.transaction_id, ip, now_ms, OVER_QUOTA)
            return self._announce(request, ip, now_ms)
        if isinstance(request, ScrapeRequest):
            return build_scrape_response(request.transaction_id, self.scrape(request.info_hashes))
        return build_error_response(request.transaction_id, request.message)

    def _over_quota(self, transaction_id: bytes, ip: bytes, now_ms: int, message: str) -> Decision:
        """An error reply for a source over quota, while it may still get one; then silence."""
        if self.quotas.may_reply_error(ip, now_ms):
            return build_error_response(transaction_id, message)
        return None

    def _announce(self, request: AnnounceRequest, ip: bytes, now_ms: int) -> Decision:
        info_hash = request.info_hash
        stopped = request.event == _STOPPED
        reason = self.refusal(info_hash, stopped)
        if reason is None and not stopped:
            reason = self._no_room(info_hash, ip, request.port)
        creates = (
            reason is None
            and not stopped
            and info_hash not in self.state.torrents
            and info_hash not in self.creating
        )
        if creates and not self.quotas.take_new_torrent(ip, now_ms):
            return self._over_quota(request.transaction_id, ip, now_ms, NEW_TORRENTS_OVER_QUOTA)
        if reason is not None:
            reply = build_error_response(request.transaction_id, REFUSAL_MESSAGES[reason])
            if not self.quotas.take_refusal_record(ip, now_ms):
                return reply  # answered, counted, not logged: see udpt/quotas.py
            refused = AnnounceRefused(
                now_ms, request.info_hash, ip, request.port, request.peer_id, reason
            )
            return Commit(refused, _as_is, reply)
        accepted = AnnounceAccepted(
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
        if creates:
            self.creating[info_hash] = self.creating.get(info_hash, 0) + 1
        return Commit(accepted, self.announce_reply, (request, ip))

    def refusal(self, info_hash: bytes, stopped: bool = False) -> RefusalReason | None:
        """Why an announce for ``info_hash`` must be refused, if it must (UDPT's order).

        A ``stopped`` announce never creates a torrent, so the torrent limit spares it.
        """
        torrents = self.state.torrents
        torrent = torrents.get(info_hash)
        if not self.policy.dynamic and (torrent is None or not torrent.registered):
            return RefusalReason.NOT_REGISTERED
        if torrent is None:
            if (
                not stopped
                and info_hash not in self.creating
                and len(torrents) + len(self.creating) >= self.policy.max_torrents
            ):
                return RefusalReason.TORRENT_LIMIT
        elif torrent.flagged:
            return RefusalReason.FLAGGED
        return None

    def _no_room(self, info_hash: bytes, ip: bytes, port: int) -> RefusalReason | None:
        """Why a peer new to the torrent has no place in its swarm, if it has none.

        Peers already in the swarm keep announcing; only newcomers are refused,
        so a host stuffing one swarm with ports cannot push the real peers out.
        Both limits count committed peers: newcomers still on their way to the
        log can pass them by at most what one source has in flight (its
        announce quota over one commit).
        """
        torrent = self.state.torrents.get(info_hash)
        if torrent is None:
            return None
        swarm, policy = torrent.swarm, self.policy
        peers = len(swarm)
        full = peers >= policy.max_peers_per_torrent
        if not full and peers < policy.max_ports_per_source:
            return None
        if ip + port.to_bytes(2, "big") in swarm:
            return None
        if full:
            return RefusalReason.SWARM_FULL
        quotas = policy.quotas
        from_source = swarm.peers_from(ip, quotas.prefix_v4 // 8, quotas.prefix_v6 // 8)
        return RefusalReason.SOURCE_FULL if from_source >= policy.max_ports_per_source else None

    def settled(self, info_hash: bytes) -> None:
        """An announce that was to create ``info_hash`` is applied (or lost): stop counting it."""
        left = self.creating.get(info_hash, 0) - 1
        if left > 0:
            self.creating[info_hash] = left
        else:
            self.creating.pop(info_hash, None)

    # -- admin changes -----------------------------------------------------

    def decide_change(
        self,
        change: Change,
        info_hash: bytes,
        actor: str,
        now_ms: int,
        answer: Callable[[bytes], Any],
    ) -> Commit | None:
        """The event an admin change records, answered by ``answer(info_hash)`` once applied.

        None: there is nothing to drop. Each change is one event whatever the
        torrent's state, so a change never depends on changes still waiting for
        their commit: adding keeps a flag as it is, only an unflag lifts it.
        """
        event: Event
        if change is Change.ADD:
            event = TorrentAdded(now_ms, info_hash, actor)
        elif change is Change.FLAG:
            event = TorrentFlagged(now_ms, info_hash, actor)
        elif change is Change.UNFLAG:
            event = TorrentUnflagged(now_ms, info_hash, actor)
        else:
            if info_hash not in self.state.torrents:
                return None
            event = TorrentDropped(now_ms, info_hash, actor)
        return Commit(event, answer, info_hash)

    # -- the passing of time -----------------------------------------------

    def sweep(self, now_ms: int) -> PeersExpired | None:
        """The expiry sweep to record at ``now_ms``, or None when it would change nothing.

        Peers past ``peer_timeout`` go, and in dynamic mode empty torrents past
        ``torrent_retention``. A sweep with nothing to visit is not worth an event:
        folding it would give the same state.
        """
        policy = self.policy
        torrent_cutoff = now_ms - policy.torrent_retention_ms if policy.dynamic else 0
        sweep = PeersExpired(now_ms, now_ms - policy.peer_timeout_ms, max(torrent_cutoff, 0))
        return sweep if self.state.sweep_would_change(sweep) else None

    # -- replies, built from the projections --------------------------------

    def announce_reply(self, context: tuple[AnnounceRequest, bytes]) -> bytes:
        """The reply to an applied announce: counts after it, and peers unless it stopped.

        A torrent flagged between the decision and the commit ignored the announce
        (the flag wins in the fold), so the client hears that it is flagged.
        """
        request, ip = context
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
            peers = swarm.select(
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
