"""Log output: one handler on stderr, ISO-8601 times with their zone, text or JSON lines.

``log_level`` means what it means in UDPT: it sets how much *udpt* says, from
``trace`` to ``error``, and ``off`` silences everything. Libraries (Sanic) say
only warnings and errors unless the level is ``trace``, where everything is
shown. ``log_format = "json"`` writes one JSON object per line (``time``,
``level``, ``logger``, ``message``, and ``exception`` when there is one) for log
shippers; ``"text"`` is for people. Both can change at run time (SIGHUP).

stderr, not a file: under systemd the journal adds its own timestamps and
rotation; elsewhere the caller redirects it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import datetime

import orjson

from udpt.config import LogFormat, LogLevel
from udpt.events.types import (
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)
from udpt.events.writer import Batch

__all__ = [
    "TRACE",
    "configure_logging",
    "log_admin_changes",
    "set_log_format",
    "set_log_level",
]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LIBRARIES = ("sanic",)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _IsoTimes(logging.Formatter):
    """Text lines stamped ``2026-12-02T13:04:03.123+00:00``: sortable and unambiguous."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_time(record)


class _JsonLines(logging.Formatter):
    """One JSON object per record; the message is formatted, its arguments are not kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso_time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


def _iso_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def _formatter(log_format: LogFormat) -> logging.Formatter:
    return _JsonLines() if log_format is LogFormat.JSON else _IsoTimes(_TEXT)


_handler: logging.Handler | None = None


def configure_logging(level: LogLevel, log_format: LogFormat) -> None:
    """Send every log record to stderr through one handler, at ``level``, in ``log_format``."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    root.addHandler(_handler)
    set_log_format(log_format)
    set_log_level(level)


def set_log_level(level: LogLevel) -> None:
    """Apply ``level`` to udpt's loggers, and a quieter one to the libraries' (SIGHUP too)."""
    threshold = level.logging_level
    logging.getLogger().setLevel(threshold)
    logging.getLogger("udpt").setLevel(threshold)
    library = threshold if level is LogLevel.TRACE else max(threshold, logging.WARNING)
    for name in _LIBRARIES:
        logging.getLogger(name).setLevel(library)
    if _handler is not None:
        _handler.setLevel(threshold)


def set_log_format(log_format: LogFormat) -> None:
    """Write text or JSON lines from now on (SIGHUP too); without a handler, nothing to do."""
    if _handler is not None:
        _handler.setFormatter(_formatter(log_format))


_ADMIN_VERBS: dict[type, str] = {
    TorrentAdded: "added",
    TorrentFlagged: "flagged",
    TorrentUnflagged: "unflagged",
    TorrentDropped: "dropped",
    TorrentImported: "imported",
}
_admin_log = logging.getLogger("udpt.admin")

Committed = Callable[[int, Batch, float], None]


def log_admin_changes(committed: Committed) -> Committed:
    """The writer's ``committed`` callback, also logging each admin change with its actor.

    Logged once committed: the line states a fact of the log, with its sequence
    number, never a request that may still fail. Costs one dictionary lookup per
    event on the hot path.
    """
    verbs = _ADMIN_VERBS

    def committed_and_logged(first_seq: int, batch: Batch, seconds: float) -> None:
        committed(first_seq, batch, seconds)
        for offset, (event, _, _) in enumerate(batch):
            verb = verbs.get(type(event))
            if verb is not None:
                _admin_log.info(
                    "torrent %s %s by %r (event %d)",
                    event.info_hash.hex(),  # type: ignore[union-attr]
                    verb,
                    event.actor,  # type: ignore[union-attr]
                    first_seq + offset,
                )

    return committed_and_logged
