"""The state at a point of the log: the newest usable snapshot, then the events after it.

Start-up and the replay tool rebuild state here, and ``take_snapshot`` stores
the fold of a log as a snapshot. The daemon's periodic snapshots are written
from its live state instead (``snapshot_fork.py``): the invariant makes that
state the fold of the committed log, and ``tools/replay.py --verify`` checks
every stored snapshot against the fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from udpt.events.log import EventLog, LogReader
from udpt.heap import release_free_heap
from udpt.history.apply import ApplyFailures
from udpt.history.folding import Progress, fold
from udpt.projections import SnapshotError, TrackerState

__all__ = ["Replay", "rebuild_snapshot", "recover", "replay", "restore_newest", "take_snapshot"]


@dataclass(slots=True)
class Replay:
    """A state rebuilt from the log, and what it cost."""

    state: TrackerState
    snapshot_seq: int
    """The snapshot the replay started from; 0 = from the first event."""
    replayed: int
    seconds: float
    """Time spent folding the events after the snapshot."""

    @property
    def events_per_second(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else 0.0


def restore_newest(log: LogReader, max_seq: int | None = None) -> TrackerState | None:
    """The state of the newest snapshot at or before ``max_seq`` that restores, if any.

    A snapshot that fails to restore, or whose contents name another sequence
    number than its key, is passed over for the next older one: a damaged
    snapshot slows a start, it never stops it.
    """
    known = log.known_hash() if isinstance(log, EventLog) else None
    for seq in reversed(log.snapshot_seqs()):
        if max_seq is not None and seq > max_seq:
            continue
        try:
            state = TrackerState.restore(log.get_snapshot(seq) or b"", known)
        except SnapshotError:
            continue
        if state.last_seq == seq:
            return state
    return None


def replay(
    log: LogReader,
    to_seq: int | None = None,
    *,
    use_snapshots: bool = True,
    progress: Progress | None = None,
    failures: ApplyFailures | None = None,
) -> Replay:
    """The state at ``to_seq`` (default: the end): newest usable snapshot + the events after it.

    Raises ``CorruptRecord`` at the first record that cannot be decoded. What
    the rebuild freed is given back to the system (``release_free_heap``): a
    restarted daemon holds the state, not the transient memory of building it.
    """
    restored = restore_newest(log, to_seq) if use_snapshots else None
    state = restored or TrackerState()
    snapshot_seq = state.last_seq
    started = time.perf_counter()
    replayed = fold(log, state, to_seq, progress, failures)
    seconds = time.perf_counter() - started
    release_free_heap()
    return Replay(state, snapshot_seq, replayed, seconds)


def recover(
    log: LogReader,
    to_seq: int | None = None,
    *,
    use_snapshots: bool = True,
    progress: Progress | None = None,
    failures: ApplyFailures | None = None,
) -> tuple[TrackerState, int]:
    """The state at ``to_seq`` (default: the end), and the seq of the snapshot used (0: none)."""
    run = replay(log, to_seq, use_snapshots=use_snapshots, progress=progress, failures=failures)
    return run.state, run.snapshot_seq


def take_snapshot(log: LogReader, to_seq: int | None = None) -> int:
    """Fold the log up to ``to_seq`` (default: the end) and store the snapshot; returns its seq."""
    state, _ = recover(log, to_seq)
    if state.last_seq:
        log.put_snapshot(state.last_seq, state.snapshot())
    return state.last_seq


def rebuild_snapshot(log: LogReader, progress: Progress | None = None) -> Replay:
    """Fold the whole log from nothing and store the result as the newest snapshot.

    For a lost or damaged snapshot: no stored snapshot is trusted. ``log`` must
    be open for writing; the one write transaction is short.
    """
    run = replay(log, use_snapshots=False, progress=progress)
    if run.state.last_seq:
        log.put_snapshot(run.state.last_seq, run.state.snapshot())
    return run
