"""The log's events as JSON-lines objects, for ``tools/replay.py --export``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from udpt.events.log import EventLog
from udpt.history.folding import decode_record, read_in_chunks
from udpt.history.json_lines import event_to_json

__all__ = ["export_events"]


def export_events(
    log: EventLog,
    to_seq: int | None = None,
    info_hash: bytes | None = None,
) -> Iterator[dict[str, Any]]:
    """The events up to ``to_seq`` (of one torrent, if ``info_hash``) as ``event_to_json`` objects.

    Raises ``CorruptRecord`` at a record that cannot be decoded.
    """
    for seq, record in read_in_chunks(log, 1, to_seq):
        if info_hash is not None and info_hash not in record:
            continue
        event = decode_record(seq, record)
        if info_hash is None or getattr(event, "info_hash", None) == info_hash:
            yield event_to_json(seq, event)
