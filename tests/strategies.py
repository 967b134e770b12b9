"""Hypothesis strategies for udpt's events, shared by the whole suite.

Two families:

* value strategies that span everything the codec must hold, extremes
  included (``events()``, and one builder per event type whose field
  strategies can be overridden, e.g. ``accepted_announces(ip=ipv4s)``);
* ``tracker_histories()``: realistic logs in which events interact (a few
  torrents and peers, times that never go backwards, expiry at increasing
  cutoffs), for fold and replay tests.
"""

from __future__ import annotations

from itertools import product

from hypothesis import strategies as st

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
    TorrentImported,
    TorrentUnflagged,
)

__all__ = [
    "ACTOR_EXTREMES",
    "EVENT_STRATEGIES",
    "I64_MAX",
    "I64_MIN",
    "U32_MAX",
    "U64_MAX",
    "accepted_announces",
    "actors",
    "admin_events",
    "announce_events",
    "counters",
    "events",
    "expiries",
    "i64s",
    "imports",
    "info_hashes",
    "ips",
    "ipv4s",
    "ipv6s",
    "peer_ids",
    "ports",
    "refusal_reasons",
    "refused_announces",
    "tracker_histories",
    "u32s",
    "u64s",
]

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

i64s = st.integers(I64_MIN, I64_MAX)
u32s = st.integers(0, U32_MAX)
u64s = st.integers(0, U64_MAX)
counters = st.one_of(st.integers(0, U32_MAX), i64s)  # uploaded, downloaded, left: mostly small
ports = st.integers(0, 65535)
info_hashes = st.binary(min_size=20, max_size=20)
peer_ids = st.binary(min_size=20, max_size=20)
ipv4s = st.binary(min_size=4, max_size=4)
ipv6s = st.binary(min_size=16, max_size=16)
ips = st.one_of(ipv4s, ipv6s)
announce_events = st.sampled_from(AnnounceEvent)
refusal_reasons = st.sampled_from(RefusalReason)

# Labels of exactly 255 UTF-8 bytes (the most a record holds) in 1-, 2-, 3- and 4-byte
# characters, and the empty label.
ACTOR_EXTREMES = ("", "a" * 255, "é" * 127 + "a", "€" * 85, "😀" * 63 + "abc")
actors = st.one_of(
    st.text(max_size=63),  # 63 characters are at most 252 UTF-8 bytes
    st.sampled_from(ACTOR_EXTREMES),
)


def accepted_announces(
    *,
    at_ms: st.SearchStrategy[int] = i64s,
    info_hash: st.SearchStrategy[bytes] = info_hashes,
    ip: st.SearchStrategy[bytes] = ips,
    port: st.SearchStrategy[int] = ports,
    peer_id: st.SearchStrategy[bytes] = peer_ids,
    key: st.SearchStrategy[int] = u32s,
    event: st.SearchStrategy[AnnounceEvent] = announce_events,
    counter: st.SearchStrategy[int] = counters,
) -> st.SearchStrategy[AnnounceAccepted]:
    """``AnnounceAccepted``; ``counter`` draws uploaded, downloaded and left."""
    return st.builds(
        AnnounceAccepted, at_ms, info_hash, ip, port, peer_id, key, event, counter, counter, counter
    )


def refused_announces(
    *,
    at_ms: st.SearchStrategy[int] = i64s,
    info_hash: st.SearchStrategy[bytes] = info_hashes,
    ip: st.SearchStrategy[bytes] = ips,
    port: st.SearchStrategy[int] = ports,
    peer_id: st.SearchStrategy[bytes] = peer_ids,
    reason: st.SearchStrategy[RefusalReason] = refusal_reasons,
) -> st.SearchStrategy[AnnounceRefused]:
    return st.builds(AnnounceRefused, at_ms, info_hash, ip, port, peer_id, reason)


def admin_events(
    kind: type[TorrentAdded | TorrentFlagged | TorrentUnflagged | TorrentDropped],
    *,
    at_ms: st.SearchStrategy[int] = i64s,
    info_hash: st.SearchStrategy[bytes] = info_hashes,
    actor: st.SearchStrategy[str] = actors,
) -> st.SearchStrategy[Event]:
    """One of the four admin events that carry only a hash and an actor."""
    return st.builds(kind, at_ms, info_hash, actor)


def imports(
    *,
    at_ms: st.SearchStrategy[int] = i64s,
    info_hash: st.SearchStrategy[bytes] = info_hashes,
    completed: st.SearchStrategy[int] = u64s,
    actor: st.SearchStrategy[str] = actors,
) -> st.SearchStrategy[TorrentImported]:
    return st.builds(TorrentImported, at_ms, info_hash, st.booleans(), completed, actor)


def expiries(
    *, at_ms: st.SearchStrategy[int] = i64s, cutoff: st.SearchStrategy[int] = i64s
) -> st.SearchStrategy[PeersExpired]:
    return st.builds(PeersExpired, at_ms, cutoff, cutoff)


EVENT_STRATEGIES: dict[type, st.SearchStrategy[Event]] = {
    AnnounceAccepted: accepted_announces(),
    AnnounceRefused: refused_announces(),
    TorrentAdded: admin_events(TorrentAdded),
    TorrentFlagged: admin_events(TorrentFlagged),
    TorrentUnflagged: admin_events(TorrentUnflagged),
    TorrentDropped: admin_events(TorrentDropped),
    TorrentImported: imports(),
    PeersExpired: expiries(),
}


def events() -> st.SearchStrategy[Event]:
    """Any event of any type, with any value its record can hold."""
    return st.one_of(*EVENT_STRATEGIES.values())


# A small world, so that events of a history hit the same torrents and peers. The
# strategies are built once: building them inside the loop would dominate the run time.
_HISTORY_ENDPOINTS = tuple(
    (ip, port)
    for ip in (b"\x7f\x00\x00\x01", b"\x0a\x00\x00\x02", bytes(15) + b"\x01")
    for port in (0, 6881, 6882, 65535)
)
_HISTORY_HASHES = (b"\xee" * 20, bytes(range(20)), b"\x01" * 20)
_ADMIN_KINDS = (TorrentAdded, TorrentFlagged, TorrentUnflagged, TorrentDropped)
# Each draw costs tens of microseconds, so related choices are drawn together from products.
_step_heads = st.sampled_from(
    list(
        product(
            ("announce",) * 8 + ("refused", "imported", "admin", "admin", "expired", "expired"),
            (0, 0, 1, 7, 100),  # time since the previous event
        )
    )
)
_indexes = st.integers(0, (1 << 16) - 1)
_announce_fields = st.sampled_from(
    list(
        product(
            ((b"-qB4630-" + bytes(12), 7), (b"-TR4050-" + b"\x01" * 12, 0), (bytes(20), U32_MAX)),
            (*AnnounceEvent, *[AnnounceEvent.COMPLETED] * 2),  # repeated completions matter
            ((0, 0), (10, 20), (1 << 20, 5)),  # uploaded, downloaded
            (0, 0, 1, 16384, -1),  # left
        )
    )
)
_admin_fields = st.sampled_from(list(product(_ADMIN_KINDS, ("admin", ""))))
_import_fields = st.sampled_from(list(product((False, True), (0, 1, 1000))))
_expiry_fields = st.tuples(_indexes, st.one_of(st.none(), _indexes))


@st.composite
def tracker_histories(draw: st.DrawFn, max_events: int = 50) -> list[Event]:
    """A realistic log: 2-3 torrents, 1-5 endpoints (IPv4 and IPv6) and every kind of event.

    Announces use every event 0..3 and ``left`` zero or not; times never go
    backwards and often repeat; expiry cutoffs never decrease and are often
    exactly the time of an earlier event, so boundaries get exercised.
    """
    hashes = _HISTORY_HASHES[: draw(st.integers(2, len(_HISTORY_HASHES)))]
    # The operator never touches the first torrent (bar dropping it), as most torrents in
    # dynamic mode: so it can be forgotten once idle, while the others get registered.
    operated = hashes[1:]
    chosen = draw(st.integers(1, (1 << len(_HISTORY_ENDPOINTS)) - 1))  # a non-empty subset
    endpoints = [e for i, e in enumerate(_HISTORY_ENDPOINTS) if chosen >> i & 1][:5]
    now = draw(st.integers(0, 1 << 41))
    times = [now]
    peer_cutoff = torrent_cutoff = now - 1
    history: list[Event] = []
    last_announce = (hashes[0], *endpoints[0])
    for _ in range(draw(st.integers(0, max_events))):
        kind, elapsed = draw(_step_heads)
        now += elapsed
        times.append(now)
        same_peer_again, pick = divmod(draw(_indexes), 1 << 15)
        info_hash = hashes[pick % len(hashes)]
        if kind in ("announce", "refused"):
            ip, port = endpoints[pick // len(hashes) % len(endpoints)]
            if same_peer_again:  # half the time, so that a peer's announces interact
                info_hash, ip, port = last_announce
            last_announce = (info_hash, ip, port)
            (peer_id, key), event, (uploaded, downloaded), left = draw(_announce_fields)
            if kind == "refused":
                reason = RefusalReason.FLAGGED if left else RefusalReason.NOT_REGISTERED
                history.append(AnnounceRefused(now, info_hash, ip, port, peer_id, reason))
            else:
                history.append(
                    AnnounceAccepted(
                        now, info_hash, ip, port, peer_id, key, event, uploaded, downloaded, left
                    )
                )
        elif kind == "imported":
            info_hash = operated[pick % len(operated)]
            flagged, completed = draw(_import_fields)
            history.append(TorrentImported(now, info_hash, flagged, completed, "import"))
        elif kind == "expired":
            peer_back, torrent_back = draw(_expiry_fields)
            peer_cutoff = max(peer_cutoff, times[-1 - peer_back % min(len(times), 12)])
            if torrent_back is None:
                history.append(PeersExpired(now, peer_cutoff, 0))
            else:
                # torrents are remembered a little or a lot longer than their peers
                retention = (0, 1, 8, 100, 1000)[torrent_back % 5]
                torrent_cutoff = max(torrent_cutoff, peer_cutoff - retention)
                history.append(PeersExpired(now, peer_cutoff, torrent_cutoff))
        else:
            admin_kind, actor = draw(_admin_fields)
            if admin_kind is not TorrentDropped:
                info_hash = operated[pick % len(operated)]
            history.append(admin_kind(now, info_hash, actor))
    return history
