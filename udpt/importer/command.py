"""``udpt import-udpt FILE --db DIR``: UDPT's torrents into a new udpt event log."""

from __future__ import annotations

import sys
from pathlib import Path

from udpt.clock import EventClock
from udpt.events.log import EventLog, LogError
from udpt.events.types import TorrentImported
from udpt.importer.udpt_database import UdptDatabaseError, UdptReadReport, read_udpt_database

__all__ = ["main_import"]


def main_import(
    file: str | Path,
    db: str | Path,
    actor: str = "import",
    *,
    clock: EventClock | None = None,
) -> int:
    """``udpt import-udpt FILE --db DIR``: append one ``TorrentImported`` per torrent.

    Prints a report to stdout. Returns 0 when torrents were imported or the
    database was validly empty, 1 when nothing could be read from it, 2 when the
    file cannot be read or the log cannot take the import (it must be new: a
    second import, or one into a running tracker's log, would overwrite counters
    that moved on since).
    """
    try:
        report = read_udpt_database(file)
    except UdptDatabaseError as error:
        print(f"udpt: {error}", file=sys.stderr)
        return 2
    print(f"Read {file} ({report.format}).")
    _print_problems(report)

    if not report.torrents:
        if report.truncated or report.skipped:
            print(f"Nothing imported: no torrent could be read from {file}.")
            return 1
        print(f"Nothing imported: {file} holds no torrents.")
        return 0

    at_ms = (clock or EventClock()).now_ms()
    events = [
        TorrentImported(at_ms, torrent.info_hash, torrent.is_flagged, torrent.completed, actor)
        for torrent in report.torrents
    ]
    try:
        with EventLog(db) as log:
            if log.last_seq():
                print(
                    f"udpt: {db}: the log already holds events; import into a new directory",
                    file=sys.stderr,
                )
                return 2
            first, last = log.append_events(events)
    except (LogError, OSError) as error:
        print(f"udpt: {db}: cannot write the log: {error}", file=sys.stderr)
        return 2

    flagged = sum(torrent.is_flagged for torrent in report.torrents)
    completed = sum(torrent.completed for torrent in report.torrents)
    print(
        f"Imported {_count(len(report.torrents), 'torrent')} into {db} (events {first}-{last}): "
        f"{flagged} flagged, {completed} completed downloads in all."
    )
    return 0


def _print_problems(report: UdptReadReport) -> None:
    if report.stream_note:
        print(f"Note: {report.stream_note}.")
    if report.skipped:
        print(f"Skipped {_count(len(report.skipped), 'record')}:")
        for reason in report.skipped:
            print(f"  {reason}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
