"""IP addresses as the tracker keeps them: packed bytes, 4 for IPv4 and 16 for IPv6.

The family of an address is the length of its packed form. ``canonical_ip`` runs
once per datagram, so it uses ``socket.inet_pton`` rather than ``ipaddress``
(several times slower).
"""

from __future__ import annotations

import socket
import struct

__all__ = ["canonical_ip", "compact_peer", "format_peer_address", "parse_bind_address"]

_IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96 (RFC 4291 §2.5.5.2)
_PORT = struct.Struct("!H")
_FAMILIES = {4: socket.AF_INET, 16: socket.AF_INET6}


def canonical_ip(host: str) -> bytes:
    """The packed canonical IP of the host string in a ``recvfrom`` address.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, what a dual-stack socket
    reports for an IPv4 client) becomes the 4-byte IPv4 address, so the client gets
    one identity, 6-byte peer entries and connection ids that match either socket
    (docs/PROTOCOL.md §1.6). Only ::ffff:0:0/96 is mapped: NAT64 and other IPv6 stay
    IPv6. A ``%scope`` suffix is dropped. Raises ValueError for anything else.
    """
    try:
        if ":" not in host:
            return socket.inet_pton(socket.AF_INET, host)
        packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    except OSError:
        raise ValueError(f"not an IP address: {host!r}") from None
    if packed.startswith(_IPV4_MAPPED_PREFIX):
        return packed[12:]
    return packed


def format_peer_address(ip: bytes, port: int) -> str:
    """``"a.b.c.d:port"`` or ``"[v6]:port"`` (RFC 5952 compressed form), as UDPT's API shows it."""
    family = _FAMILIES.get(len(ip))
    if family is None:
        raise ValueError(f"packed IP must be 4 or 16 bytes, got {len(ip)}")
    text = socket.inet_ntop(family, ip)
    if family == socket.AF_INET6:
        return f"[{text}]:{port}"
    return f"{text}:{port}"


def compact_peer(ip: bytes, port: int) -> bytes:
    """The BEP 23 compact entry: packed IP then big-endian port (6 or 18 bytes)."""
    return ip + _PORT.pack(port)


def parse_bind_address(text: str) -> tuple[str, int]:
    """Split ``"0.0.0.0:6969"``, ``"[::]:6969"`` or ``"127.0.0.1:0"`` into (host, port).

    The host must be an IP literal, IPv6 in brackets; a name such as ``localhost``
    is refused because it may resolve to either family, or to both. Port 0 asks the
    kernel for a free port. Raises ValueError with a short message naming the problem.
    """
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        family = socket.AF_INET6
    elif ":" in host:
        raise ValueError(f"IPv6 address must be in brackets, as in [::]:6969, got {text!r}")
    else:
        family = socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise ValueError(f"not an IP address: {host!r} in {text!r}") from None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
    return host, int(port_text)
