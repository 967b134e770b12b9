#!/usr/bin/env python3
"""Write a realistic udpt event log of any size, for replay and start-up benchmarks.

``python benchmarks/make_log.py DB --events 1000000 --torrents 1000 --peers 10000``

Peers (10 % IPv6, real client peer-id prefixes) join torrents chosen with a
Zipf-like popularity, announce about once per announce interval, download
until ``left`` reaches 0 (then ``completed``, and they seed), and stop after
about 30 announces. Time advances so that every peer announces once per
interval; a ``PeersExpired`` is recorded every cleanup interval of simulated
time, as the daemon does. A peer that stops is replaced by a newcomer. Every
50,000 events an operator ("alice") flags a popular torrent, whose announces
are then refused, and unflags it 10,000 events later; a few torrents are
added and one is dropped. Seeded: the same
arguments always give the same log. Events are appended 50,000 per transaction,
without fsync (a generated log needs no durability), in values of 256 events:
about one LMDB page each, as compaction leaves a live log. (Values of 50,000
events, as this wrote before, made log maintenance copy megabytes per read and
stall the daemon's loop on them: a cost no live log has.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from itertools import accumulate, islice
from pathlib import Path
from random import Random

from udpt.events.log import EventLog
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

__all__ = ["generate", "main"]

BATCH = 50_000
VALUE_EVENTS = 256
START_MS = 1_795_000_000_000  # 2026-11-18T11:06:40Z: a fixed start, so logs are reproducible
INTERVAL_MS = 1_800_000  # announce interval
CLEANUP_MS = 600_000
PEER_TIMEOUT_MS = 2_700_000
TORRENT_RETENTION_MS = 86_400_000
FLAG_EVERY = 50_000
FLAG_FOR = 10_000
STOP_CHANCE = 0.03
CLIENT_PREFIXES = (b"-qB4630-", b"-TR4050-", b"-lt0D80-", b"-UT3550-", b"-DE2110-", b"M7-4-0--")
PIECE = 16_384


class _Peer:
    """A simulated peer: where it is, what it wants and what it has done so far."""

    __slots__ = (
        "downloaded",
        "ip",
        "key",
        "left",
        "peer_id",
        "port",
        "started",
        "torrent",
        "uploaded",
    )

    def __init__(self, rng: Random, number: int, torrent: bytes) -> None:
        if rng.random() < 0.1:
            self.ip = b"\x20\x01\x0d\xb8" + rng.randbytes(12)
        else:
            self.ip = bytes(
                (
                    rng.randrange(1, 224),
                    rng.randrange(256),
                    rng.randrange(256),
                    rng.randrange(1, 255),
                )
            )
        self.port = rng.randrange(1024, 65536)
        self.peer_id = rng.choice(CLIENT_PREFIXES) + b"%012d" % number
        self.key = rng.getrandbits(32)
        self.torrent = torrent
        self.left = 0 if rng.random() < 0.3 else rng.randrange(1, 4000) * PIECE
        self.uploaded = self.downloaded = 0
        self.started = False


def generate(rng: Random, events: int, torrents: int, peers: int) -> Iterator[Event]:
    """``events`` events of a tracker with ``torrents`` torrents and ``peers`` peers."""
    hashes = [rng.randbytes(20) for _ in range(torrents)]
    # Cumulative once: choices() with plain weights sums them again at every call (the
    # same draws either way, so logs stay what they were).
    popularity = list(accumulate(1 / (rank + 1) for rank in range(torrents)))
    swarm_of = rng.choices(hashes, cum_weights=popularity, k=peers)
    population = [_Peer(rng, number, swarm_of[number]) for number in range(peers)]
    newcomers = peers
    step_ms = max(1, INTERVAL_MS // peers)
    now = START_MS
    next_cleanup = now + CLEANUP_MS
    flagged: set[bytes] = set()
    unflag_at: dict[int, bytes] = {}
    for count in range(events):
        now += rng.randrange(step_ms * 2)
        if count < 10:
            yield TorrentAdded(now, hashes[count % torrents], "alice")
        elif now >= next_cleanup:
            yield PeersExpired(now, now - PEER_TIMEOUT_MS, now - TORRENT_RETENTION_MS)
            next_cleanup += CLEANUP_MS
        elif count in unflag_at:
            info_hash = unflag_at.pop(count)
            flagged.discard(info_hash)
            yield TorrentUnflagged(now, info_hash, "alice")
        elif count % FLAG_EVERY == 0:
            info_hash = hashes[rng.randrange(min(torrents, 20))]
            flagged.add(info_hash)
            unflag_at[count + FLAG_FOR] = info_hash
            yield TorrentFlagged(now, info_hash, "alice")
        elif count == events // 2 + 1:
            yield TorrentDropped(now, hashes[-1], "bob")
        else:
            slot = rng.randrange(peers)
            announce = _announce(rng, population[slot], now, flagged)
            yield announce
            if type(announce) is AnnounceAccepted and announce.event == AnnounceEvent.STOPPED:
                torrent = rng.choices(hashes, cum_weights=popularity)[0]
                population[slot] = _Peer(rng, newcomers, torrent)
                newcomers += 1


def _announce(rng: Random, peer: _Peer, now: int, flagged: set[bytes]) -> Event:
    if peer.torrent in flagged:
        return AnnounceRefused(
            now, peer.torrent, peer.ip, peer.port, peer.peer_id, RefusalReason.FLAGGED
        )
    if not peer.started:
        event = AnnounceEvent.STARTED
        peer.started = True
    elif rng.random() < STOP_CHANCE:
        event = AnnounceEvent.STOPPED
    elif peer.left:
        got = min(peer.left, rng.randrange(1, 400) * PIECE)
        peer.left -= got
        peer.downloaded += got
        event = AnnounceEvent.COMPLETED if peer.left == 0 else AnnounceEvent.NONE
    else:
        event = AnnounceEvent.NONE
    peer.uploaded += rng.randrange(0, 200) * PIECE
    return AnnounceAccepted(
        now,
        peer.torrent,
        peer.ip,
        peer.port,
        peer.peer_id,
        peer.key,
        event,
        peer.uploaded,
        peer.downloaded,
        peer.left,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python benchmarks/make_log.py /tmp/log1m "
        "--events 1000000 --torrents 1000 --peers 10000",
    )
    parser.add_argument("db_path", type=Path, metavar="DB", help="a new log directory")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--torrents", type=int, default=1_000)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if (args.db_path / "data.mdb").exists():
        parser.error(f"{args.db_path} already holds a log: give a new directory")
    started = time.perf_counter()
    events = generate(Random(args.seed), args.events, args.torrents, args.peers)
    with EventLog(args.db_path, sync=False) as log:
        for first in range(1, args.events + 1, BATCH):
            chunk = list(islice(events, BATCH))
            values = [chunk[n : n + VALUE_EVENTS] for n in range(0, len(chunk), VALUE_EVENTS)]
            log.append_batches(first, values)
        log.env.sync(True)
        size = log.size_on_disk()
    print(
        f"wrote {args.events:,} events to {args.db_path} ({size / (1 << 20):,.1f} MiB) "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
