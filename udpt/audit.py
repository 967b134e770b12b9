"""Questions asked of an event log after the fact: the logic behind ``tools/replay.py``.

State as of any point (a sequence number or a time), the history of one
torrent, a full verification against the stored snapshots, and the log as JSON
lines. It is kept apart from the tool's argument parsing and printing so that
it can be tested in-process. Only ``rebuild_snapshot`` writes (one snapshot);
everything else opens read transactions, which never block the daemon's writer
(LMDB MVCC), so it all works on a live log as well as on a copy.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from udpt.addresses import format_peer_address
from udpt.clients import client_name
from udpt.events.codec import TAG_EXPIRED, DecodeError, decode_event, encode_event
from udpt.events.log import EventLog
from udpt.events.snapshots import (
    PROGRESS_EVERY,
    CorruptRecord,
    fold,
    read_in_chunks,
    restore_newest,
)
from udpt.events.types import (
    EVENT_TYPES,
    AnnounceEvent,
    Event,
    PeersExpired,
    RefusalReason,
)
from udpt.projections import SnapshotError, TrackerState
from udpt.projections.swarms import peer_views
from udpt.projections.torrents import Torrent

__all__ = [
    "CorruptRecord",
    "HistoryEntry",
    "PeerView",
    "Problem",
    "Progress",
    "Replay",
    "TorrentHistory",
    "Until",
    "Verification",
    "event_from_json",
    "event_to_json",
    "export_events",
    "format_time",
    "parse_time",
    "parse_until",
    "peers_of",
    "rebuild_snapshot",
    "replay",
    "seq_at_time",
    "summarize",
    "torrent_history",
    "verify",
]

Progress = Callable[[int], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


# -- times and points in the log ---------------------------------------------


def parse_time(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time; a time without an offset is UTC.

    Accepts ``2026-11-29T14:05``, ``2026-11-29T14:05:00Z``, ``2026-11-29T16:05+02:00``.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MILLISECOND


def format_time(at_ms: int) -> str:
    """UTC ISO 8601 with milliseconds: ``2026-11-29T14:05:00.000Z``.

    A time outside the calendar's range (only a damaged or synthetic log has
    one) is shown as the bare number of milliseconds.
    """
    try:
        moment = _EPOCH + at_ms * _MILLISECOND
    except OverflowError:
        return str(at_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Until:
    """A point in the log given by the user: a sequence number or a time (exactly one)."""

    seq: int | None = None
    at_ms: int | None = None

    def to_seq(self, log: EventLog) -> int:
        """The last sequence number at or before this point."""
        if self.seq is not None:
            return self.seq
        assert self.at_ms is not None
        return seq_at_time(log, self.at_ms)


def parse_until(text: str) -> Until:
    """``1234`` is a sequence number; anything else must be an ISO time (ValueError if not)."""
    if text.isascii() and text.isdigit():
        return Until(seq=int(text))
    try:
        return Until(at_ms=parse_time(text))
    except ValueError:
        raise ValueError(f"{text!r} is neither a sequence number nor an ISO time") from None


def _first_at_or_after(log: EventLog, seq: int) -> tuple[int, bytes] | None:
    records = log.records(seq)
    try:
        return next(records, None)
    finally:
        records.close()


def seq_at_time(log: EventLog, at_ms: int) -> int:
    """The last event at or before ``at_ms`` (0 if none), by binary search.

    Event times never go backwards along the log (``udpt.clock``; ``verify``
    checks it), so a search over sequence numbers is a search over time. Gaps
    in the sequence are allowed.
    """
    found = 0
    low, high = log.first_seq(), log.last_seq()
    while low and low <= high:
        middle = (low + high) // 2
        record = _first_at_or_after(log, middle)
        if record is None or record[0] > high or _decode(*record).at_ms > at_ms:
            high = middle - 1
        else:
            found = record[0]
            low = found + 1
    return found


def _decode(seq: int, record: bytes) -> Event:
    try:
        return decode_event(record)
    except DecodeError as exc:
        raise CorruptRecord(seq, str(exc)) from exc


def _event_time(log: EventLog, seq: int) -> int | None:
    for _, record in log.records(seq, seq):
        return _decode(seq, record).at_ms
    return None


# -- replay --------------------------------------------------------------------


@dataclass(slots=True)
class Replay:
    """A state rebuilt from the log, and what it cost."""

    state: TrackerState
    snapshot_seq: int
    """The snapshot the replay started from; 0 = from the first event."""
    replayed: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else 0.0


def replay(
    log: EventLog,
    to_seq: int | None = None,
    *,
    use_snapshots: bool = True,
    progress: Progress | None = None,
) -> Replay:
    """The state at ``to_seq`` (default: the end): newest usable snapshot + the events after it.

    Raises ``CorruptRecord`` at the first record that cannot be decoded.
    """
    restored = restore_newest(log, to_seq) if use_snapshots else None
    state = restored or TrackerState()
    started = time.perf_counter()
    replayed = fold(log, state, to_seq, progress)
    return Replay(
        state, restored.last_seq if restored else 0, replayed, time.perf_counter() - started
    )


def rebuild_snapshot(log: EventLog, progress: Progress | None = None) -> Replay:
    """Fold the whole log from nothing and store the result as the newest snapshot.

    For a lost or damaged snapshot: no stored snapshot is trusted. ``log`` must
    be open for writing; the one write transaction is short.
    """
    run = replay(log, use_snapshots=False, progress=progress)
    if run.state.last_seq:
        log.put_snapshot(run.state.last_seq, run.state.snapshot())
    return run


def summarize(log: EventLog, run: Replay) -> dict[str, Any]:
    """The replayed state in numbers, as ``tools/replay.py --json`` prints them."""
    state = run.state
    seeders, leechers, completed = state.totals()
    first_seq = log.first_seq()
    first_ms = _event_time(log, first_seq) if first_seq else None
    last_ms = _event_time(log, state.last_seq) if state.last_seq else None
    return {
        "log": str(log.path),
        "size_on_disk": log.size_on_disk(),
        "records": log.count(),
        "first_seq": first_seq,
        "first_time": None if first_ms is None else format_time(first_ms),
        "last_seq": state.last_seq,
        "last_time": None if last_ms is None else format_time(last_ms),
        "events": sum(state.stats.by_kind.values()),
        "events_by_type": dict(state.stats.by_kind),
        "torrents": len(state.torrents),
        "flagged": sum(1 for t in state.torrents.values() if t.flagged),
        "registered": sum(1 for t in state.torrents.values() if t.registered),
        "seeders": seeders,
        "leechers": leechers,
        "completed": completed,
        "peers_expired": state.stats.peers_expired,
        "snapshot_seq": run.snapshot_seq,
        "replayed": run.replayed,
        "replay_seconds": round(run.seconds, 6),
        "events_per_second": round(run.events_per_second),
    }


# -- one torrent -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """An event that concerned the torrent. For an expiry: what it did to this torrent."""

    seq: int
    event: Event
    peers_expired: int = 0
    forgotten: bool = False


@dataclass(frozen=True, slots=True)
class PeerView:
    """One peer of a swarm, as an operator reads it."""

    address: str
    peer_id: bytes
    client: str | None
    seeder: bool
    last_seen_ms: int
    uploaded: int
    downloaded: int
    left: int
    event: AnnounceEvent


@dataclass(slots=True)
class TorrentHistory:
    info_hash: bytes
    as_of_seq: int
    entries: list[HistoryEntry]
    torrent: Torrent | None
    """Its state at ``as_of_seq``; None when the tracker did not know it then."""
    complete: bool
    """False when events are missing from the log: the history has holes."""


def peers_of(torrent: Torrent) -> list[PeerView]:
    """The swarm's peers, most recently seen first."""
    peers = [
        PeerView(
            format_peer_address(view.ip, view.port),
            view.peer_id,
            client_name(view.peer_id),
            view.seeder,
            view.last_seen_ms,
            view.uploaded,
            view.downloaded,
            view.left,
            AnnounceEvent(view.event),
        )
        for view in peer_views(torrent.swarm)
    ]
    peers.sort(key=lambda peer: peer.last_seen_ms, reverse=True)
    return peers


def torrent_history(
    log: EventLog, info_hash: bytes, to_seq: int | None = None, progress: Progress | None = None
) -> TorrentHistory:
    """Every event about ``info_hash`` up to ``to_seq``, and the torrent's state there.

    Torrents never affect one another in the fold, so folding only this
    torrent's events and the expiries gives its exact state without building
    everybody else's. The scan looks for the hash's bytes in each record before
    decoding, which skips almost every record cheaply. If events are missing
    (a damaged or pruned log), the state comes from a full replay instead.
    """
    end = log.last_seq() if to_seq is None else min(to_seq, log.last_seq())
    state = TrackerState()
    entries = []
    previous = 0
    complete = True
    for count, (seq, record) in enumerate(read_in_chunks(log, 1, end), 1):
        complete = complete and seq == previous + 1
        previous = seq
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(seq)
        if record[0] != TAG_EXPIRED and info_hash not in record:
            continue
        event = _decode(seq, record)
        if type(event) is PeersExpired:
            before = state.torrents.get(info_hash)
            peers_before = len(before.swarm) if before is not None else 0
            state.apply(seq, event)
            after = state.torrents.get(info_hash)
            expired = peers_before - (len(after.swarm) if after is not None else 0)
            if expired or (before is not None and after is None):
                entries.append(HistoryEntry(seq, event, expired, after is None))
        elif event.info_hash == info_hash:
            state.apply(seq, event)
            entries.append(HistoryEntry(seq, event))
    complete = complete and previous == end
    if not complete:
        state = replay(log, end).state
    return TorrentHistory(info_hash, end, entries, state.torrents.get(info_hash), complete)


# -- verification ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    message: str


@dataclass(slots=True)
class Verification:
    last_seq: int
    events: int = 0
    snapshots_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _missing(first: int, last: int) -> str:
    return f"event {first} is missing" if first == last else f"events {first}..{last} are missing"


def verify(log: EventLog, progress: Progress | None = None) -> Verification:
    """Decode every record, check the sequence and the clock, and check every snapshot.

    The log is folded from nothing; at each stored snapshot the rebuilt state's
    canonical bytes must equal the stored ones. Folding stops at a record that
    cannot be decoded (what follows it cannot be rebuilt). Snapshots taken while
    this runs (on a live log) are past the end it read and are not checked.
    """
    pending = deque(log.snapshot_seqs())
    result = Verification(last_seq=log.last_seq())
    problems = result.problems
    state = TrackerState()
    previous, previous_ms = 0, None
    for seq, record in read_in_chunks(log, 1, result.last_seq):
        if seq != previous + 1:
            problems.append(Problem(previous + 1, _missing(previous + 1, seq - 1)))
        while pending and pending[0] < seq:
            lost = pending.popleft()
            problems.append(Problem(lost, f"snapshot at seq {lost}, but event {lost} is missing"))
        try:
            event = decode_event(record)
        except DecodeError as exc:
            problems.append(
                Problem(seq, f"event {seq} cannot be decoded ({exc}); nothing after it was checked")
            )
            return result
        if previous_ms is not None and event.at_ms < previous_ms:
            problems.append(
                Problem(
                    seq,
                    f"event {seq} at {format_time(event.at_ms)} is earlier "
                    f"than event {previous} at {format_time(previous_ms)}",
                )
            )
        state.apply(seq, event)
        previous, previous_ms = seq, event.at_ms
        result.events += 1
        if pending and pending[0] == seq:
            pending.popleft()
            stored = log.get_snapshot(seq)  # None: the daemon replaced it meanwhile
            if stored is not None:
                result.snapshots_checked += 1
                if stored != state.snapshot():
                    problems.append(
                        Problem(
                            seq,
                            f"snapshot at seq {seq} differs from the "
                            f"replay: {_difference(state, stored)}",
                        )
                    )
        if progress is not None and result.events % PROGRESS_EVERY == 0:
            progress(seq)
    problems.extend(
        Problem(seq, f"snapshot at seq {seq} is past the last event ({previous})")
        for seq in pending
    )
    problems.sort(key=lambda problem: problem.seq)
    return result


def _difference(rebuilt: TrackerState, stored: bytes) -> str:
    """The first thing a damaged snapshot gets wrong, in words."""
    try:
        found = TrackerState.restore(stored)
    except SnapshotError as exc:
        return f"it cannot be restored ({exc})"
    if found.last_seq != rebuilt.last_seq:
        return f"it says it was taken at seq {found.last_seq}"
    if found.stats.to_bytes() != rebuilt.stats.to_bytes():
        return "the event counters differ"
    for info_hash in sorted(rebuilt.torrents.keys() | found.torrents.keys()):
        mine, theirs = rebuilt.torrents.get(info_hash), found.torrents.get(info_hash)
        if mine is None or theirs is None:
            where = "only in the snapshot" if mine is None else "missing from the snapshot"
            return f"torrent {info_hash.hex()} is {where}"
        for name in ("flagged", "registered", "completed", "last_announce_ms"):
            if getattr(mine, name) != getattr(theirs, name):
                return (
                    f"torrent {info_hash.hex()}: {name} is {getattr(theirs, name)} in the "
                    f"snapshot, {getattr(mine, name)} in the log"
                )
        if [list(t.items()) for t in mine.swarm.tables()] != [
            list(t.items()) for t in theirs.swarm.tables()
        ]:
            return f"torrent {info_hash.hex()}: the peers differ"
    return "the bytes differ"


# -- JSON lines ------------------------------------------------------------------


def _ip_text(ip: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip)


def _ip_bytes(text: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, TypeError):
        raise ValueError(f"not an IP address: {text!r}") from None


def _hex(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"expected a hex string, got {text!r}")
    return bytes.fromhex(text)


def _integer(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _boolean(value: object) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _string(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _enum_name(value: AnnounceEvent | RefusalReason) -> str:
    return value.name.lower()


# Field name -> (to JSON, from JSON). Fields not listed are integers.
_FIELDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "info_hash": (bytes.hex, _hex),
    "peer_id": (bytes.hex, _hex),
    "ip": (_ip_text, _ip_bytes),
    "event": (_enum_name, lambda text: AnnounceEvent[_string(text).upper()]),
    "reason": (_enum_name, lambda text: RefusalReason[_string(text).upper()]),
    "is_flagged": (bool, _boolean),
    "actor": (str, _string),
}
_INTEGER = (int, _integer)
_TYPES_BY_NAME = {kind.__name__: kind for kind in EVENT_TYPES}
_CONVERTERS = {
    kind: tuple((name, *_FIELDS.get(name, _INTEGER)) for name in kind._fields)
    for kind in EVENT_TYPES
}


def event_to_json(seq: int, event: Event) -> dict[str, Any]:
    """``{"seq", "type", then the event's fields by name}``: bytes as lowercase hex, ``ip``
    as address text, ``event``/``reason`` as lowercase names."""
    obj: dict[str, Any] = {"seq": seq, "type": type(event).__name__}
    for (name, to_json, _), value in zip(_CONVERTERS[type(event)], event, strict=True):
        obj[name] = to_json(value)
    return obj


def event_from_json(obj: Mapping[str, Any]) -> tuple[int, Event]:
    """The (seq, event) that ``event_to_json`` made ``obj`` from; ValueError if it cannot be."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a JSON object, got {obj!r}")
    kind = _TYPES_BY_NAME.get(obj.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown event type {obj.get('type')!r}")
    converters = _CONVERTERS[kind]
    unexpected = obj.keys() - {"seq", "type"} - {name for name, _, _ in converters}
    if unexpected:
        raise ValueError(f"{kind.__name__} has no field {sorted(unexpected)[0]!r}")
    values = []
    for name, _, from_json in converters:
        if name not in obj:
            raise ValueError(f"{kind.__name__} needs the field {name!r}")
        try:
            values.append(from_json(obj[name]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{kind.__name__}.{name}: bad value {obj[name]!r}") from exc
    try:
        seq = _integer(obj.get("seq"))
    except ValueError as exc:
        raise ValueError(f"seq: {exc}") from None
    event = kind(*values)
    encode_event(event)  # the sizes and ranges a record can hold: ValueError otherwise
    return seq, event


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
        event = _decode(seq, record)
        if info_hash is None or getattr(event, "info_hash", None) == info_hash:
            yield event_to_json(seq, event)
