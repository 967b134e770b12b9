"""The log's events as JSON-lines objects, for ``tools/replay.py --export``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from udpt.events.log import LogReader
from udpt.history.json_lines import event_to_json

__all__ = ["export_events"]


def export_events(
    log: LogReader,
    to_seq: int | None = None,
    info_hash: bytes | None = None,
) -> Iterator[dict[str, Any]]:
    """The events up to ``to_seq`` (of one torrent, if ``info_hash``) as ``event_to_json`` objects.

    Raises ``CorruptRecord`` at a record that cannot be decoded.
    """
    for first, events in log.event_batches(1, to_seq):
        for seq, event in enumerate(events, first):
            if info_hash is None or getattr(event, "info_hash", None) == info_hash:
                yield event_to_json(seq, event)
