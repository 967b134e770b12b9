"""Stateless BEP 15 connection ids: proof that a client can receive at its source IP.

Why: UDP source addresses are trivially forged. Before the tracker sends anything
larger than the 16-byte connect reply, or changes a swarm, the client must echo an
id that only a host receiving at that IP could have seen. Otherwise the tracker
is a traffic amplifier (a 98-byte announce can draw a 1220-byte reply) and anyone
can insert peers at a victim's address (docs/PROTOCOL.md §2 rationale, §11).

Layout (docs/PROTOCOL.md §4.2): the id is 8 bytes,

    BLAKE2b(key=secret, digest_size=8,
            data = window (8 bytes, big-endian) + family (1 byte: 4 or 6) + packed IP)

where ``window = floor(now / window_s)``. Nothing is stored per client: the server
recomputes the MAC when the id comes back.

Checks, and the reason for each:

* Keyed MAC with a random secret of at least 128 bits: without the secret an
  attacker can only guess, with odds 2**-64 per datagram, so forging is hopeless
  even at line rate. A new secret (restart) voids every id; clients just time out
  and reconnect.
* The canonical source IP is in the MAC, and the family byte keeps an IPv4 address
  and an IPv6 address with the same leading bytes apart: an id proves one address
  only. The UDP port is deliberately left out, so an id survives NAT rebinding
  (aquatic, chihaya and opentracker also bind the IP only).
* The window is in the MAC and the current and previous windows are accepted: an
  id is honoured for at least ``window_s`` and at most ``2 * window_s`` seconds after
  issue. BEP 15 lets a client reuse an id for 60 s (libtorrent does, Transmission
  45 s) and asks trackers to accept it for 120 s; the upper bound limits how long a
  leaked id is useful. Rejecting costs at most two hashes.
* Comparison with ``hmac.compare_digest``, so response timing reveals nothing about
  how many leading bytes of a guess were right.

Precedent: aquatic's ``ConnectionValidator`` (a 4-byte timestamp plus a 4-byte
keyed BLAKE3 MAC) and aioquic's retry tokens. ``now`` is an argument, never read
from a clock here, so tests can place requests at exact times.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from hmac import compare_digest

__all__ = ["CONNECTION_ID_SIZE", "ConnectionIds", "new_secret"]

CONNECTION_ID_SIZE = 8

_SECRET_SIZE = 32
_MIN_SECRET_SIZE = 16  # docs/PROTOCOL.md §4.1: at least 128 bits
_MAX_SECRET_SIZE = 64  # the largest key BLAKE2b takes
_WINDOW = struct.Struct("!q")
_FAMILY_BYTE = {4: b"\x04", 16: b"\x06"}  # keyed on the length of the packed IP


def new_secret() -> bytes:
    """A fresh 256-bit secret from the operating system's CSPRNG."""
    return secrets.token_bytes(_SECRET_SIZE)


class ConnectionIds:
    """Issues and checks connection ids for one secret and window length."""

    __slots__ = ("_current", "_current_window", "_keyed", "_previous", "_window_s")

    CACHE_LIMIT = 65_536
    """Most ids remembered for each of the two windows (one dict entry each, about 150 bytes)."""

    def __init__(self, secret: bytes, window_s: int = 120) -> None:
        if not _MIN_SECRET_SIZE <= len(secret) <= _MAX_SECRET_SIZE:
            raise ValueError(
                f"connection-id secret must be {_MIN_SECRET_SIZE} to {_MAX_SECRET_SIZE} bytes,"
                f" got {len(secret)}"
            )
        if window_s <= 0:
            raise ValueError(f"connection-id window must be positive, got {window_s}")
        # Keying BLAKE2b hashes a whole 128-byte key block; copying a keyed state
        # skips that on every call (about a third of the cost).
        self._keyed = hashlib.blake2b(key=secret, digest_size=CONNECTION_ID_SIZE)
        self._window_s = window_s
        # ip -> its id in the current window, and in the window before. Every announce
        # and scrape is checked, and the same clients come back within a window: a
        # lookup costs a fraction of a keyed hash. A client keeps its id across a window's
        # end, so at any time many hold one of the previous window: when the window moves
        # on, the current window's ids become the previous window's. Each is bounded.
        self._current: dict[bytes, bytes] = {}
        self._previous: dict[bytes, bytes] = {}
        self._current_window = 0

    def issue(self, ip: bytes, now: float) -> bytes:
        """The id for a client at packed canonical ``ip`` (4 or 16 bytes) at time ``now``."""
        return self._current_id(int(now // self._window_s), ip)

    def is_valid(self, connection_id: bytes, ip: bytes, now: float) -> bool:
        """Whether ``connection_id`` was issued to ``ip`` in this window or the one before."""
        window = int(now // self._window_s)
        return compare_digest(connection_id, self._current_id(window, ip)) or compare_digest(
            connection_id, self._previous_id(ip)
        )

    def _current_id(self, window: int, ip: bytes) -> bytes:
        if window != self._current_window:
            self._previous = self._current if window == self._current_window + 1 else {}
            self._current = {}
            self._current_window = window
        elif len(self._current) >= self.CACHE_LIMIT:
            self._current.clear()
        cid = self._current.get(ip)
        if cid is None:
            cid = self._current[ip] = self._mac(window, ip)
        return cid

    def _previous_id(self, ip: bytes) -> bytes:
        """``ip``'s id in the window before the current one (``_current_id`` set it)."""
        cid = self._previous.get(ip)
        if cid is None:
            cid = self._mac(self._current_window - 1, ip)
            if len(self._previous) < self.CACHE_LIMIT:
                self._previous[ip] = cid
        return cid

    def _mac(self, window: int, ip: bytes) -> bytes:
        family = _FAMILY_BYTE.get(len(ip))
        if family is None:
            raise ValueError(f"packed IP must be 4 or 16 bytes, got {len(ip)}")
        mac = self._keyed.copy()
        mac.update(_WINDOW.pack(window) + family + ip)
        return mac.digest()
