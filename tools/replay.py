#!/usr/bin/env python3
"""Audit and recovery for a udpt event log: ``python tools/replay.py DB_PATH [options]``.

This file is the command line and the printing; the replay, history,
verification and export logic lives in ``udpt.history``. It imports nothing
from the tracker's edges (UDP, API, daemon): it reads the log directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import lmdb
import orjson

from udpt.addresses import format_peer_address
from udpt.clients import client_name
from udpt.events.archive import Archive, History
from udpt.events.log import EventLog, LogError, LogReader
from udpt.events.types import (
    AnnounceAccepted,
    AnnounceEvent,
    AnnounceRefused,
    PeersExpired,
    TorrentAdded,
    TorrentDropped,
    TorrentFlagged,
    TorrentImported,
    TorrentUnflagged,
)
from udpt.history.export import export_events
from udpt.history.folding import CorruptRecord, Progress
from udpt.history.json_lines import FIELD_NAMES, event_to_json
from udpt.history.points import Until, event_time, format_time, parse_until
from udpt.history.recovery import rebuild_snapshot, replay
from udpt.history.summary import summarize
from udpt.history.torrent_history import HistoryEntry, TorrentHistory, peers_of, torrent_history
from udpt.history.verification import Verification, verify
from udpt.projections.swarms import PeerView

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PROBLEMS_SHOWN = 20

_EXPORT_FIELDS = "\n".join(
    f"  {kind.__name__:<18}{' '.join(names)}" for kind, names in FIELD_NAMES.items()
)

DESCRIPTION = """\
Replay a udpt event log (the db_path directory) to answer questions about it:
the state now or at any earlier point, the history of one torrent, whether the
log and its snapshots are intact, or every event as JSON lines. Only --rebuild
writes (one snapshot); everything else uses read transactions, which never
block the tracker's writer, so it is safe on the log of a running tracker as
well as on a copy.

Without a mode option it prints a summary: events by type, first and last
sequence number and time, torrents, seeders, leechers, completed, size on disk,
and how long the replay took ("replayed N events in X s (Y events/s)").
"""

EPILOG = f"""\
examples (H=c12fe1c06bba254a9dc9f519b335aa7c1367a88a, an info hash):
  python tools/replay.py /var/lib/udpt
  python tools/replay.py /var/lib/udpt --json | jq .seeders
  python tools/replay.py /var/lib/udpt --until 2026-11-29T14:05
  python tools/replay.py /var/lib/udpt --torrent $H
      who added, flagged or dropped it and when; its peers now
  python tools/replay.py /var/lib/udpt --torrent $H --until 2026-11-29T14:05
      who was in that swarm at 14:05 UTC
  python tools/replay.py /var/lib/udpt --verify
  python tools/replay.py /var/lib/udpt --export - --torrent $H | jq .type
  python tools/replay.py /var/lib/udpt --rebuild

times:
  ISO 8601: 2026-11-29T14:05, 2026-11-29T14:05:00Z, 2026-11-29T16:05:00+02:00.
  A time without an offset is UTC. Times printed are UTC with milliseconds.

--export lines (one JSON object per event, in log order; field names are stable):
  seq, type (the event's class name), then its fields by name:
{_EXPORT_FIELDS}
  at_ms, peer_cutoff_ms, torrent_cutoff_ms: milliseconds since the epoch (UTC);
  info_hash, peer_id: lowercase hex; ip: "192.0.2.1" or "2001:db8::1";
  event: none | completed | started | stopped; reason: not_registered | flagged;
  actor: the label of the API token that made the change (never the token).
  udpt.history.json_lines.event_from_json(obj) turns a line back into (seq, event).

exit status:
  0 done; 1 --verify found a problem, or a record cannot be decoded;
  2 bad arguments, or no udpt log at DB_PATH.
"""


def _until(text: str) -> Until:
    try:
        return parse_until(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _info_hash(text: str) -> bytes:
    if len(text) != 40:
        raise argparse.ArgumentTypeError(f"an info hash is 40 hex digits, got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/replay.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("db_path", type=Path, metavar="DB_PATH", help="the log directory")
    parser.add_argument(
        "--until",
        type=_until,
        metavar="SEQ|TIME",
        help="the state as of event SEQ, or of the last event at or before TIME "
        "(e.g. --until 120000, --until 2026-11-29T14:05); with --export, stop there",
    )
    parser.add_argument(
        "--torrent",
        type=_info_hash,
        metavar="HASH",
        help="the history of one torrent (40 hex digits): every event with its time, the "
        "actor of admin changes, and its state and peers at the end "
        "(e.g. --torrent c12fe1c06bba254a9dc9f519b335aa7c1367a88a); "
        "with --until, as of then; with --export, only its events",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary, --torrent or --verify result as one JSON object "
        "(e.g. --json | jq .leechers)",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        metavar="DIR",
        help="read the archive of pruned events ([log] archive_dir) and the log as one "
        "history: every mode then starts at the archive's first event (e.g. --archive "
        "/var/lib/udpt-archive)",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="replay from the first event instead of the newest stored snapshot: slower, "
        "trusts only the log (e.g. to time a full replay)",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--verify",
        action="store_true",
        help="decode every record, check that sequence numbers have no gaps and times never "
        "go back, rebuild the state from nothing and compare it with every stored snapshot; "
        "exits 1 naming the first sequence number that is wrong (e.g. --verify)",
    )
    modes.add_argument(
        "--export",
        metavar="FILE",
        help="write every event as a JSON line to FILE, or to stdout for '-' "
        "(e.g. --export events.jsonl); the format is below",
    )
    modes.add_argument(
        "--rebuild",
        action="store_true",
        help="fold the whole log from nothing and store the result as the newest snapshot, "
        "after a snapshot was lost or damaged (e.g. --rebuild)",
    )
    return parser


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.verify and (args.until or args.torrent):
        parser.error("--verify checks the whole log: it takes no --until or --torrent")
    if args.rebuild and (args.until or args.torrent or args.json):
        parser.error("--rebuild snapshots the end of the whole log: it takes no other option")
    if args.export and args.json:
        parser.error("--export always writes JSON lines: drop --json")


# -- output helpers ------------------------------------------------------------


@contextmanager
def _progress(label: str, end: int) -> Iterator[Progress | None]:
    """A one-line counter on stderr when it is a terminal; nothing in pipes, files or logs."""
    if not sys.stderr.isatty() or end <= 0:
        yield None
        return
    shown = False

    def show(seq: int) -> None:
        nonlocal shown
        shown = True
        sys.stderr.write(f"\r{label}: event {seq:,} of {end:,} ({100 * seq // end}%)")
        sys.stderr.flush()

    try:
        yield show
    finally:
        if shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _size(size: int) -> str:
    if size < 1 << 20:
        return f"{size / 1024:,.1f} KiB"
    return f"{size / (1 << 20):,.1f} MiB"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _peer_id_text(peer_id: bytes) -> str:
    """The peer id as text when it is printable ASCII (``-TR4050-...``), else as hex."""
    if peer_id.isascii() and peer_id.decode("ascii").isprintable():
        return peer_id.decode("ascii")
    return peer_id.hex()


def _time_asked(until: Until | None) -> str:
    """What ``--until TIME`` resolved to, for the reader who asked for a time."""
    if until is None or until.at_ms is None:
        return ""
    return f"  (the last event at or before {format_time(until.at_ms)})"


# -- modes ---------------------------------------------------------------------------


def _to_seq(log: LogReader, until: Until | None) -> int | None:
    """The seq ``--until`` names; LogError (one line) if it lies before the log's horizon."""
    if until is None:
        return None
    seq = until.to_seq(log)
    horizon = log.replayable_from()
    if horizon and seq < horizon:
        first = log.first_seq()
        asked = f"event {seq:,}" if until.at_ms is None else format_time(until.at_ms)
        raise LogError(
            f"{asked} is before the log's horizon: its history starts at event {first:,} "
            f"({format_time(event_time(log, first) or 0)}) and states can be rebuilt from "
            f"event {horizon:,}; older events were pruned (--archive DIR reads them back)"
        )
    return seq


def _summary(log: LogReader, args: argparse.Namespace) -> int:
    to_seq = _to_seq(log, args.until)
    with _progress("replaying", to_seq or log.last_seq()) as progress:
        run = replay(log, to_seq, use_snapshots=not args.no_snapshot, progress=progress)
    summary = summarize(log, run)
    if args.json:
        _print_json(summary)
        return EXIT_OK
    by_type = summary["events_by_type"]
    width = max(map(len, by_type))
    lines = [
        f"log          {summary['log']}  ({_size(summary['size_on_disk'])} on disk, "
        f"{summary['records']:,} records)",
        f"first        event {summary['first_seq']:,}  {summary['first_time'] or '-'}",
        f"as of        event {summary['last_seq']:,}  {summary['last_time'] or '-'}"
        f"{_time_asked(args.until)}",
        f"events       {summary['events']:,}",
        *(f"  {name:<{width}}  {count:>12,}" for name, count in by_type.items()),
        f"torrents     {summary['torrents']:,}  ({summary['flagged']:,} flagged, "
        f"{summary['registered']:,} registered)",
        f"seeders      {summary['seeders']:,}",
        f"leechers     {summary['leechers']:,}",
        f"completed    {summary['completed']:,}",
        f"expired      {summary['peers_expired']:,} peers",
        f"replayed {run.replayed:,} events in {run.seconds:.2f} s "
        f"({run.events_per_second:,.0f} events/s) "
        + (
            f"after the snapshot at event {run.snapshot_seq:,}"
            if run.snapshot_seq
            else "from the first event"
        ),
    ]
    print("\n".join(lines))
    return EXIT_OK


def _client_suffix(peer_id: bytes) -> str:
    name = client_name(peer_id)
    return f" ({name})" if name else ""


def _describe(entry: HistoryEntry) -> str:
    """One line of a torrent's history, after its time and sequence number."""
    name = f"{type(entry.event).__name__:<17} "
    match entry.event:
        case AnnounceAccepted() as e:
            return (
                f"{name}{_who(e.ip, e.port, e.peer_id)}  {e.event.name.lower()}, "
                f"left {e.left:,}, uploaded {e.uploaded:,}, downloaded {e.downloaded:,}"
            )
        case AnnounceRefused() as e:
            return f"{name}{_who(e.ip, e.port, e.peer_id)}  refused: {e.reason.name.lower()}"
        case PeersExpired() as e:
            forgotten = "; torrent forgotten" if entry.forgotten else ""
            return (
                f"{name}{_count(entry.peers_expired, 'peer')} not seen since "
                f"{format_time(e.peer_cutoff_ms)}{forgotten}"
            )
        case TorrentImported() as e:
            flag = "flagged" if e.is_flagged else "not flagged"
            return f"{name}by {e.actor!r}: {flag}, completed {e.completed:,}"
        case TorrentAdded() | TorrentFlagged() | TorrentUnflagged() | TorrentDropped() as e:
            return f"{name}by {e.actor!r}"
    raise AssertionError(f"unknown event {entry.event!r}")


def _who(ip: bytes, port: int, peer_id: bytes) -> str:
    return f"{format_peer_address(ip, port)}  {_peer_id_text(peer_id)}{_client_suffix(peer_id)}"


def _peer_line(peer: PeerView) -> str:
    role = "seeder " if peer.seeder else "leecher"
    address = format_peer_address(peer.ip, peer.port)
    return (
        f"  {address:<24} {_peer_id_text(peer.peer_id)}{_client_suffix(peer.peer_id)}  {role}  "
        f"last seen {format_time(peer.last_seen_ms)}  left {peer.left:,}"
    )


def _torrent_lines(history: TorrentHistory, until: Until | None) -> list[str]:
    lines = [
        f"torrent {history.info_hash.hex()}, history to event {history.as_of_seq:,}"
        f"{_time_asked(until)}"
    ]
    if not history.complete:
        lines.append("  (events are missing from the log: this history has holes)")
    lines.extend(
        f"{format_time(entry.event.at_ms)}  {entry.seq:>10,}  {_describe(entry)}"
        for entry in history.entries
    )
    torrent = history.torrent
    if torrent is None:
        lines.append("state: not tracked (never announced, dropped, or forgotten when empty)")
        return lines
    flags = [
        word
        for word, on in (("flagged", torrent.flagged), ("registered", torrent.registered))
        if on
    ]
    swarm = torrent.swarm
    lines.append(
        f"state: {', '.join(flags) or 'not registered'}; {_count(swarm.seeders, 'seeder')}, "
        f"{_count(swarm.leechers, 'leecher')}, completed {torrent.completed:,}"
    )
    peers = peers_of(torrent)
    lines.append(f"peers ({len(peers):,}), most recently seen first:")
    lines.extend(_peer_line(peer) for peer in peers)
    return lines


def _torrent_json(history: TorrentHistory) -> dict[str, Any]:
    entries = []
    for entry in history.entries:
        obj = event_to_json(entry.seq, entry.event)
        obj["time"] = format_time(entry.event.at_ms)
        if type(entry.event) is PeersExpired:
            obj["peers_expired"] = entry.peers_expired
            obj["forgotten"] = entry.forgotten
        entries.append(obj)
    torrent = history.torrent
    return {
        "info_hash": history.info_hash.hex(),
        "as_of_seq": history.as_of_seq,
        "complete": history.complete,
        "history": entries,
        "torrent": None
        if torrent is None
        else {
            "flagged": torrent.flagged,
            "registered": torrent.registered,
            "completed": torrent.completed,
            "seeders": torrent.swarm.seeders,
            "leechers": torrent.swarm.leechers,
        },
        "peers": []
        if torrent is None
        else [
            {
                "address": format_peer_address(peer.ip, peer.port),
                "peer_id": peer.peer_id.hex(),
                "client": client_name(peer.peer_id),
                "seeder": peer.seeder,
                "last_seen": format_time(peer.last_seen_ms),
                "uploaded": peer.uploaded,
                "downloaded": peer.downloaded,
                "left": peer.left,
                "event": AnnounceEvent(peer.event).name.lower(),
            }
            for peer in peers_of(torrent)
        ],
    }


def _torrent(log: LogReader, args: argparse.Namespace) -> int:
    to_seq = _to_seq(log, args.until)
    with _progress("reading", to_seq or log.last_seq()) as progress:
        history = torrent_history(log, args.torrent, to_seq, progress)
    if args.json:
        _print_json(_torrent_json(history))
    else:
        print("\n".join(_torrent_lines(history, args.until)))
    return EXIT_OK


def _verification_lines(result: Verification) -> list[str]:
    checked = (
        f"{result.events:,} events (to event {result.last_seq:,}) and "
        f"{result.snapshots_checked} snapshots"
    )
    if result.from_snapshot:
        checked += f" after the snapshot at {result.from_snapshot:,} (older events are pruned)"
    if result.ok:
        return [f"OK: {checked} verified"]
    problems = result.problems
    lines = [
        f"FAILED at event {problems[0].seq:,}: {problems[0].message}",
        f"checked {checked}; {len(problems):,} problems:",
    ]
    lines.extend(
        f"  {problem.seq:>10,}  {problem.message}" for problem in problems[:PROBLEMS_SHOWN]
    )
    if len(problems) > PROBLEMS_SHOWN:
        lines.append(f"  ... and {len(problems) - PROBLEMS_SHOWN:,} more")
    return lines


def _verify(log: LogReader, args: argparse.Namespace) -> int:
    with _progress("verifying", log.last_seq()) as progress:
        result = verify(log, progress)
    if args.json:
        _print_json(
            {
                "ok": result.ok,
                "last_seq": result.last_seq,
                "events": result.events,
                "snapshots_checked": result.snapshots_checked,
                "from_snapshot": result.from_snapshot,
                "first_problem_seq": result.problems[0].seq if result.problems else None,
                "problems": [{"seq": p.seq, "message": p.message} for p in result.problems],
            }
        )
    else:
        print("\n".join(_verification_lines(result)))
    return EXIT_OK if result.ok else EXIT_FAILED


def _write_lines(log: LogReader, args: argparse.Namespace, out: BinaryIO) -> int:
    """Write the JSON lines in batches; returns how many."""
    to_seq = _to_seq(log, args.until)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    batch: list[bytes] = []
    written = 0
    with _progress("exporting", to_seq or log.last_seq()) as progress:
        for obj in export_events(log, to_seq, args.torrent):
            batch.append(dumps(obj, option=newline))
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                written += len(batch)
                batch.clear()
                if progress is not None:
                    progress(obj["seq"])
        out.write(b"".join(batch))
    return written + len(batch)


def _export(log: LogReader, args: argparse.Namespace) -> int:
    if args.export == "-":
        try:
            _write_lines(log, args, sys.stdout.buffer)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (head, a pager) is gone: not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    with open(args.export, "wb") as out:
        count = _write_lines(log, args, out)
    if sys.stderr.isatty():
        print(f"exported {count:,} events to {args.export}", file=sys.stderr)
    return EXIT_OK


def _rebuild(log: LogReader, args: argparse.Namespace) -> int:
    if log.replayable_from():
        raise LogError(
            f"events before {log.first_seq():,} were pruned: a rebuild from nothing needs "
            "them all (--archive DIR)"
        )
    with _progress("replaying", log.last_seq()) as progress:
        run = rebuild_snapshot(log, progress)
    seq = run.state.last_seq
    if not seq:
        print("the log is empty: no snapshot written")
        return EXIT_OK
    size = len(log.get_snapshot(seq) or b"")
    print(
        f"wrote a snapshot at event {seq:,} ({_size(size)}) after replaying {run.replayed:,} "
        f"events in {run.seconds:.2f} s ({run.events_per_second:,.0f} events/s)"
    )
    return EXIT_OK


@contextmanager
def _open_log(path: Path, *, write: bool) -> Iterator[EventLog]:
    """The log at ``path``, read-only unless ``write``; never creates one."""
    if not (path / "data.mdb").exists():
        raise LogError(f"{path}: no udpt log here (no data.mdb)")
    log = EventLog(path, readonly=not write)
    try:
        yield log
    finally:
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    if args.verify:
        mode = _verify
    elif args.export:
        mode = _export
    elif args.rebuild:
        mode = _rebuild
    elif args.torrent:
        mode = _torrent
    else:
        mode = _summary
    try:
        with _open_log(args.db_path, write=args.rebuild) as log:
            if args.archive is None:
                return mode(log, args)
            if not args.archive.is_dir():
                raise LogError(f"{args.archive}: no archive here (not a directory)")
            return mode(History(log, Archive(args.archive)), args)
    except (LogError, lmdb.Error) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CorruptRecord as exc:
        print(f"replay: {exc}; --verify lists every problem", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
