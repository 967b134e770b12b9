"""Tracker states whose table refuses one info hash: how tests make the fold of an announce fail.

A fold that fails is a bug the tracker survives (the event is counted, logged and passed
over). To make one happen with either core, the table the state is built with refuses to
store a torrent under the given hash: both folds create the torrent first and fail there,
before anything changes.
"""

from __future__ import annotations

import pytest

from udpt.projections import state as state_module
from udpt.projections.torrents import Torrent, TorrentTable

__all__ = ["refuse_torrents_of"]


def refuse_torrents_of(monkeypatch: pytest.MonkeyPatch, info_hash: bytes) -> None:
    """Every TrackerState made from now on (in this test) refuses a torrent of ``info_hash``."""

    class RefusingTable(TorrentTable):
        __slots__ = ()

        def __setitem__(self, key: bytes, torrent: Torrent) -> None:
            if key == info_hash:
                raise TypeError("this table refuses the torrent")
            super().__setitem__(key, torrent)

    monkeypatch.setattr(state_module, "TorrentTable", RefusingTable)
