"""Per-source quotas: one host cannot take the tracker for itself.

A source is an address prefix (``/32`` for IPv4 and ``/64`` for IPv6 by
default: one host, or one IPv6 subnet, which a single machine usually holds
whole). Each source has two token buckets: announces per second, and new
torrents per minute (announces that would create a torrent in dynamic mode).
A request over quota gets a BEP 15 error reply, at most ``error_replies_per_s``
of them per source, and silence beyond that, so a flood cannot turn the tracker
into a reflector either.

Why these defaults no real client reaches: a client announces each torrent once
per ``announce_interval`` (1800 s), plus its started / completed / stopped
events. A seedbox with 10,000 torrents behind one address averages under 6
announces/s and starts with a burst of at most one announce per torrent; the
default allows 50/s with a burst of 10,000. New torrents are rarer still: a
swarm is created once, by its first peer, so 1,000 a minute (burst 1,000) is
far above any client and is what bounds a random-hash flood.

Refusals (flagged, not registered, over ``max_torrents``) are recorded as
events for audit, but at most ``recorded_refusals_per_min`` of them per source
(burst the same); past that a refusal is answered at once and only counted, so
one host cannot grow the log with refused announces: the audit trail keeps
who tried what, first, and the counters keep how often.

Quota state is not part of the tracker's state: a refusal over quota records
no event and changes no projection, so the log and its replay never depend on
it. The table of sources is bounded (``max_sources``); the source idle longest
goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["OVER_QUOTA", "QuotaPolicy", "SourceQuotas"]

OVER_QUOTA = "rate limit exceeded."
"""The error text a source over its announce quota gets (while it still gets replies)."""

NEW_TORRENTS_OVER_QUOTA = "too many new torrents."
"""The error text for an announce that would create a torrent past the source's quota."""


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Quotas per source; a rate of 0 turns that quota off."""

    prefix_v4: int
    prefix_v6: int
    announces_per_s: float
    announce_burst: int
    new_torrents_per_min: float
    new_torrent_burst: int
    error_replies_per_s: float
    recorded_refusals_per_min: float
    max_sources: int


class _Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``per_ms`` tokens a millisecond."""

    __slots__ = ("burst", "filled_ms", "per_ms", "tokens")

    def __init__(self, burst: float, per_ms: float, now_ms: int) -> None:
        self.burst = burst
        self.per_ms = per_ms
        self.tokens = burst
        self.filled_ms = now_ms

    def take(self, now_ms: int) -> bool:
        """Take one token if there is one (after refilling for the time since the last)."""
        elapsed = now_ms - self.filled_ms
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.per_ms)
            self.filled_ms = now_ms
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _Source:
    """One source's buckets (those whose quota is on)."""

    __slots__ = ("announces", "errors", "new_torrents", "refusals")

    def __init__(self, policy: QuotaPolicy, now_ms: int) -> None:
        self.announces = _Bucket(policy.announce_burst, policy.announces_per_s / 1000, now_ms)
        self.new_torrents = _Bucket(
            policy.new_torrent_burst, policy.new_torrents_per_min / 60_000, now_ms
        )
        errors = max(1.0, policy.error_replies_per_s)
        self.errors = _Bucket(errors, errors / 1000, now_ms)
        refusals = policy.recorded_refusals_per_min
        self.refusals = _Bucket(refusals, refusals / 60_000, now_ms)


class SourceQuotas:
    """Token buckets per source prefix, with counters of what they refused."""

    def __init__(self, policy: QuotaPolicy) -> None:
        self.policy = policy
        self._sources: OrderedDict[bytes, _Source] = OrderedDict()
        self._v4_bytes = policy.prefix_v4 // 8
        self._v6_bytes = policy.prefix_v6 // 8
        self.announces_refused = 0
        self.new_torrents_refused = 0
        self.silenced = 0
        self.refusals_unrecorded = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._sources)

    def source_of(self, ip: bytes) -> bytes:
        """The prefix of packed address ``ip`` that names its source (whole bytes only)."""
        return ip[: self._v4_bytes] if len(ip) == 4 else ip[: self._v6_bytes]

    def _source(self, ip: bytes, now_ms: int) -> _Source:
        key = self.source_of(ip)
        sources = self._sources
        source = sources.get(key)
        if source is None:
            if len(sources) >= self.policy.max_sources:
                sources.popitem(last=False)
                self.evicted += 1
            source = sources[key] = _Source(self.policy, now_ms)
        else:
            sources.move_to_end(key)
        return source

    def take_announce(self, ip: bytes, now_ms: int) -> bool:
        """Whether an announce from ``ip`` is within its source's quota (and count it)."""
        if not self.policy.announces_per_s or self._source(ip, now_ms).announces.take(now_ms):
            return True
        self.announces_refused += 1
        return False

    def take_new_torrent(self, ip: bytes, now_ms: int) -> bool:
        """Whether ``ip``'s source may create one more torrent now (and count it)."""
        policy = self.policy
        if not policy.new_torrents_per_min or self._source(ip, now_ms).new_torrents.take(now_ms):
            return True
        self.new_torrents_refused += 1
        return False

    def may_reply_error(self, ip: bytes, now_ms: int) -> bool:
        """Whether a refused source still gets an error reply now, or silence."""
        if self._source(ip, now_ms).errors.take(now_ms):
            return True
        self.silenced += 1
        return False

    def take_refusal_record(self, ip: bytes, now_ms: int) -> bool:
        """Whether a refusal for ``ip`` is recorded as an event, or only answered and counted."""
        policy = self.policy
        if not policy.recorded_refusals_per_min or self._source(ip, now_ms).refusals.take(now_ms):
            return True
        self.refusals_unrecorded += 1
        return False
