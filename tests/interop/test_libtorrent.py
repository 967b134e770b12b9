"""Real BitTorrent clients find each other through udpt, and only through udpt.

Two libtorrent sessions on 127.0.0.1 with DHT, LSD, UPnP, NAT-PMP and the
default plugins (PEX among them) off: the only way the downloader can learn
the seeder's address is our announce reply. The file must arrive byte for
byte, and libtorrent's scrape must agree with the tracker's own counters.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.support.daemon import make_config, running_tracker

lt = pytest.importorskip("libtorrent")

PAYLOAD_SIZE = 3 * 1024 * 1024 + 12345  # several pieces, the last one short


def make_session() -> lt.session:
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "alert_mask": lt.alert_category.status
        | lt.alert_category.tracker
        | lt.alert_category.error,
    }
    return lt.session(settings, 0)  # flags 0: no default plugins, so no PEX


def make_torrent(payload: Path, tracker_url: str) -> lt.torrent_info:
    creator = lt.create_torrent(lt.list_files(str(payload)), 256 * 1024)
    creator.add_tracker(tracker_url)
    lt.set_piece_hashes(creator, str(payload.parent))
    return lt.torrent_info(lt.bencode(creator.generate()))


def add(session: lt.session, info: lt.torrent_info, save_path: Path) -> lt.torrent_handle:
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = str(save_path)
    return session.add_torrent(params)


async def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_two_libtorrent_clients_transfer_a_file_through_udpt(tmp_path: Path) -> None:
    seed_dir, leech_dir = tmp_path / "seed", tmp_path / "leech"
    seed_dir.mkdir()
    leech_dir.mkdir()
    payload = seed_dir / "payload.bin"
    payload.write_bytes(os.urandom(PAYLOAD_SIZE))

    async with running_tracker(make_config(tmp_path / "db")) as tracker:
        port = tracker.udp_addresses[0][1]
        info = make_torrent(payload, f"udp://127.0.0.1:{port}/announce")
        info_hash = info.info_hash().to_bytes()
        seeder_session, leecher_session = make_session(), make_session()
        seeder = add(seeder_session, info, seed_dir)
        await wait_for(lambda: seeder.status().is_seeding, 20, "the seeder to check its data")
        await wait_for(
            lambda: (
                info_hash in tracker.state.torrents
                and tracker.state.torrents[info_hash].swarm.seeders == 1
            ),
            20,
            "the seeder's announce",
        )

        leecher = add(leecher_session, info, leech_dir)
        await wait_for(lambda: leecher.status().is_seeding, 60, "the download to finish")
        assert (leech_dir / "payload.bin").read_bytes() == payload.read_bytes()

        # The finished download announces `completed`; then both are seeders.
        torrent = tracker.state.torrents[info_hash]
        await wait_for(
            lambda: torrent.completed == 1 and torrent.swarm.seeders == 2,
            20,
            "the completed announce",
        )

        leecher.scrape_tracker()
        scrape = await wait_for(
            lambda: next(
                (a for a in leecher_session.pop_alerts() if isinstance(a, lt.scrape_reply_alert)),
                None,
            ),
            20,
            "libtorrent's scrape reply",
        )
        assert (scrape.complete, scrape.incomplete) == (
            torrent.swarm.seeders,
            torrent.swarm.leechers,
        )
        assert tracker.tracker.scrape((info_hash,)) == [(2, 1, 0)]

        # Pausing (before a session is destroyed) makes libtorrent announce `stopped`.
        leecher_session.pause()
        await wait_for(lambda: torrent.swarm.seeders == 1, 20, "the leecher's `stopped`")
        seeder_session.pause()
        await wait_for(lambda: len(torrent.swarm) == 0, 20, "the seeder's `stopped`")
