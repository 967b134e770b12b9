"""Name the BitTorrent client behind a peer_id, as UDPT does for the REST API's ``client`` field.

UDPT recognises two peer_id styles only: Mainline's ``M4-4-0--...`` (any peer_id
starting with ``M``) and Azureus-style ``-XX1234-...``, where ``XX`` is looked up
case-sensitively (``LT`` and ``lt`` are different clients) and the version digits
are not checked. Everything else has no name. The table is UDPT's, names and all,
so scripts that match on these strings keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["CLIENT_NAMES_BY_CODE", "client_name"]

CLIENT_NAMES_BY_CODE: Final[Mapping[bytes, str]] = MappingProxyType(
    {
        b"AG": "Ares",
        b"A~": "Ares",
        b"AR": "Arctic",
        b"AV": "Avicora",
        b"AX": "BitPump",
        b"AZ": "Azureus",
        b"BB": "BitBuddy",
        b"BC": "BitComet",
        b"BF": "Bitflu",
        b"BG": "BTG (uses Rasterbar libtorrent)",
        b"BR": "BitRocket",
        b"BS": "BTSlave",
        b"BX": "~Bittorrent X",
        b"CD": "Enhanced CTorrent",
        b"CT": "CTorrent",
        b"DE": "DelugeTorrent",
        b"DP": "Propagate Data Client",
        b"EB": "EBit",
        b"ES": "electric sheep",
        b"FT": "FoxTorrent",
        b"FW": "FrostWire",
        b"FX": "Freebox BitTorrent",
        b"GS": "GSTorrent",
        b"HL": "Halite",
        b"HN": "Hydranode",
        b"KG": "KGet",
        b"KT": "KTorrent",
        b"LH": "LH-ABC",
        b"LP": "Lphant",
        b"LT": "libtorrent",
        b"lt": "libTorrent",
        b"LW": "LimeWire",
        b"MO": "MonoTorrent",
        b"MP": "MooPolice",
        b"MR": "Miro",
        b"MT": "MoonlightTorrent",
        b"NX": "Net Transport",
        b"PD": "Pando",
        b"qB": "qBittorrent",
        b"QD": "QQDownload",
        b"QT": "Qt 4 Torrent example",
        b"RT": "Retriever",
        b"S~": "Shareaza alpha/beta",
        b"SB": "~Swiftbit",
        b"SS": "SwarmScope",
        b"ST": "SymTorrent",
        b"st": "sharktorrent",
        b"SZ": "Shareaza",
        b"TN": "TorrentDotNET",
        b"TR": "Transmission",
        b"TS": "Torrentstorm",
        b"TT": "TuoTu",
        b"UL": "uLeecher!",
        b"UT": "\u00b5Torrent",
        b"UW": "\u00b5Torrent Web",
        b"VG": "Vagaa",
        b"WD": "WebTorrent Desktop",
        b"WT": "BitLet",
        b"WW": "WebTorrent",
        b"WY": "FireTorrent",
        b"XL": "Xunlei",
        b"XT": "XanTorrent",
        b"XX": "Xtorrent",
        b"ZT": "ZipTorrent",
    }
)


def client_name(peer_id: bytes) -> str | None:
    """The client's name for ``peer_id`` by UDPT's rules, or None when UDPT would not know it."""
    style = peer_id[:1]
    if style == b"M":
        return "BitTorrent"
    if style == b"-":
        return CLIENT_NAMES_BY_CODE.get(peer_id[1:3])
    return None
