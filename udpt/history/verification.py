"""``--verify``: decode every record, check the sequence and the clock, check every snapshot."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from udpt.events.log import LogReader
from udpt.history.folding import CorruptRecord, Fold, Progress
from udpt.history.points import format_time
from udpt.projections import SnapshotError, TrackerState
from udpt.projections.swarms import peer_views

__all__ = ["Problem", "Verification", "verify"]


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
    from_snapshot: int = 0
    """On a pruned log: the snapshot the check started from (the horizon); 0: from nothing."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _missing(first: int, last: int) -> str:
    return f"event {first} is missing" if first == last else f"events {first}..{last} are missing"


class _Checker:
    """The checks made between the events of one fold, in log order."""

    def __init__(self, log: LogReader, run: Fold, result: Verification) -> None:
        self.log = log
        self.run = run
        self.result = result
        self.pending = deque(log.snapshot_seqs())
        self.gaps_seen = 0
        self.failures_seen = 0

    def before(self, seq: int) -> None:
        """Problems found on the way to ``seq``: gaps, and snapshots of missing events."""
        problems, missing, pending = self.result.problems, self.run.missing, self.pending
        for first, last in missing[self.gaps_seen :]:
            problems.append(Problem(first, _missing(first, last)))
        self.gaps_seen = len(missing)
        while pending and pending[0] < seq:
            lost = pending.popleft()
            problems.append(Problem(lost, f"snapshot at seq {lost}, but event {lost} is missing"))

    def after(self, seq: int, state: TrackerState) -> None:
        """Problems of ``seq`` once applied: a failed apply, a stored snapshot that differs."""
        failures, problems, pending = self.run.failures, self.result.problems, self.pending
        if failures.count > self.failures_seen:
            self.failures_seen = failures.count
            problems.append(Problem(seq, f"event {seq} could not be applied (see the log)"))
        if pending and pending[0] == seq:
            pending.popleft()
            stored = self.log.get_snapshot(seq)  # None: the daemon replaced it meanwhile
            if stored is not None:
                self.result.snapshots_checked += 1
                if stored != state.snapshot():
                    problems.append(
                        Problem(
                            seq,
                            f"snapshot at seq {seq} differs from the "
                            f"replay: {_difference(state, stored)}",
                        )
                    )


def verify(log: LogReader, progress: Progress | None = None) -> Verification:
    """Fold the log from nothing, checking each event and every stored snapshot.

    On a pruned log (without its archive) the fold starts from the oldest
    snapshot taken after the pruned events: what came before is not there to check.

    Sequence numbers must have no gaps and times must never go back; at each
    stored snapshot the rebuilt state's canonical bytes must equal the stored
    ones. Folding stops at a record that cannot be decoded (what follows it
    cannot be rebuilt). Snapshots taken while this runs (on a live log) are
    past the end it read and are not checked.
    """
    result = Verification(last_seq=log.last_seq())
    problems = result.problems
    state = TrackerState()
    horizon = log.replayable_from()
    if horizon:  # pruned: what can be checked starts at the oldest snapshot past the pruning
        try:
            state = TrackerState.restore(log.get_snapshot(horizon) or b"")
        except SnapshotError as exc:
            problems.append(
                Problem(horizon, f"snapshot at seq {horizon} cannot be restored ({exc})")
            )
            return result
        result.from_snapshot = horizon
    run = Fold(log, state, result.last_seq, progress=progress)
    checker = _Checker(log, run, result)
    checker.pending = deque(seq for seq in checker.pending if seq > state.last_seq)
    previous, previous_ms = state.last_seq, None
    try:
        for seq, event in run:
            checker.before(seq)
            if previous_ms is not None and event.at_ms < previous_ms:
                problems.append(
                    Problem(
                        seq,
                        f"event {seq} at {format_time(event.at_ms)} is earlier "
                        f"than event {previous} at {format_time(previous_ms)}",
                    )
                )
            checker.after(seq, state)
            previous, previous_ms = seq, event.at_ms
            result.events += 1
    except CorruptRecord as exc:
        checker.before(exc.seq)
        problems.append(
            Problem(
                exc.seq,
                f"event {exc.seq} cannot be decoded ({exc.__cause__}); "
                "nothing after it was checked",
            )
        )
        return result
    checker.before(previous + 1)
    problems.extend(
        Problem(seq, f"snapshot at seq {seq} is past the last event ({previous})")
        for seq in checker.pending
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
        if list(peer_views(mine.swarm)) != list(peer_views(theirs.swarm)):
            return f"torrent {info_hash.hex()}: the peers differ"
    return "the bytes differ"
