"""The JSON shapes of UDPT's REST API, built from the projections.

Key order and names are UDPT's document's, byte for byte once serialised with
orjson (which keeps insertion order and writes compact JSON).
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from udpt.addresses import format_peer_address
from udpt.clients import client_name
from udpt.projections.swarms import Swarm, peer_views
from udpt.projections.torrents import Torrent

__all__ = ["MAX_PEERS_SHOWN", "OK", "peer_pairs", "torrent_summary", "torrent_with_peers"]

MAX_PEERS_SHOWN = 1000
"""Peers listed by ``GET /t/<hash>``, as UDPT: the counts still tell the whole swarm."""

OK: dict[str, str] = {"status": "ok"}

# UDPT's names for the announce events, indexed by ``AnnounceEvent``.
_EVENT_NAMES = ("None", "Complete", "Started", "Stopped")


def torrent_summary(info_hash: bytes, torrent: Torrent) -> dict[str, Any]:
    """``{"info_hash","is_flagged","completed","seeders","leechers"}``, as ``GET /t`` lists it."""
    swarm = torrent.swarm
    return {
        "info_hash": info_hash.hex(),
        "is_flagged": torrent.flagged,
        "completed": torrent.completed,
        "seeders": swarm.seeders,
        "leechers": swarm.leechers,
    }


def torrent_with_peers(info_hash: bytes, torrent: Torrent, now_ms: int) -> dict[str, Any]:
    """The summary plus ``"peers"``, as ``GET /t/<hash>`` and flagging reply."""
    shape = torrent_summary(info_hash, torrent)
    shape["peers"] = peer_pairs(torrent.swarm, now_ms)
    return shape


def peer_pairs(swarm: Swarm, now_ms: int) -> list[list[dict[str, Any]]]:
    """``[{id, client}, {ip, uploaded, downloaded, left, event, updated}]`` per peer.

    Seeders then leechers, IPv4 then IPv6, each oldest announce first;
    ``updated`` is milliseconds since that peer's last announce.
    """
    pairs: list[list[dict[str, Any]]] = []
    for peer in islice(peer_views(swarm), MAX_PEERS_SHOWN):
        event = peer.event
        pairs.append(
            [
                {"id": peer.peer_id.hex(), "client": client_name(peer.peer_id)},
                {
                    "ip": format_peer_address(peer.ip, peer.port),
                    "uploaded": peer.uploaded,
                    "downloaded": peer.downloaded,
                    "left": peer.left,
                    "event": _EVENT_NAMES[event] if event < len(_EVENT_NAMES) else "None",
                    "updated": max(0, now_ms - peer.last_seen_ms),
                },
            ]
        )
    return pairs
