"""Is the tracker well? The two things that make it useless: a log that does not commit
(nothing is acknowledged) and an event loop that does not run (nothing is answered).

``LoopLagProbe`` sleeps a fixed interval again and again and records how late it
woke up: the loop's lag, which every datagram and request waiting behind a long
piece of work also suffers. ``CommitWatch`` turns the writer's failure state into
"failing since": the writer takes events again a few seconds after a failed
commit, but the log is well only once a commit has succeeded since.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from udpt.events.writer import Writer

__all__ = ["LAG_LIMIT_S", "CommitWatch", "Health", "LoopLagProbe", "assess"]

log = logging.getLogger(__name__)

LAG_LIMIT_S = 1.0
"""Lag beyond which the loop counts as not responsive: a BEP 15 client's first retry
comes after 15 s, but a second of lag already means replies queue behind something."""

_PROBE_INTERVAL_S = 0.25
_WINDOW = 20  # lags remembered: the last 5 s


class LoopLagProbe:
    """The event loop's lag, measured by a coroutine that sleeps ``interval_s`` at a time."""

    def __init__(self, interval_s: float = _PROBE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0
        self._recent: deque[float] = deque(maxlen=_WINDOW)
        self._due: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lag_s = max(0.0, loop.time() - self._due)
            self._recent.append(self.lag_s)

    def worst_recent(self, now: float) -> float:
        """The largest lag of the last few seconds, counting a wake-up that is overdue now."""
        overdue = 0.0 if self._due is None else now - self._due
        return max(overdue, *self._recent, 0.0)


class CommitWatch:
    """Whether the event log commits: failing from a failed commit until one succeeds.

    Logs the recovery (the writer logs each failure itself). ``check`` is cheap and
    called both periodically and by every health or metrics read.
    """

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self.failing_since: float | None = None
        self.reason = ""
        self._batches_then = 0

    def check(self, now: float) -> str | None:
        """Why the log does not commit, or None if it does; ``now`` is loop time."""
        writer = self._writer
        failure = writer.failure
        if failure is not None:
            if self.failing_since is None:
                self.failing_since = now
            self.reason = str(failure) or type(failure).__name__
            self._batches_then = writer.batches
        elif self.failing_since is not None and writer.batches > self._batches_then:
            log.warning(
                "the event log commits again, after %.1f s of failed commits",
                now - self.failing_since,
            )
            self.failing_since = None
        return self.reason if self.failing_since is not None else None

    async def run(self, interval_s: float = 0.5) -> None:
        """Check now and then, so a recovery is logged even when nobody asks."""
        loop = asyncio.get_running_loop()
        while True:
            self.check(loop.time())
            await asyncio.sleep(interval_s)


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict of ``/health``: ok, or the first reason it is not."""

    ok: bool
    reason: str
    committing: bool
    loop_lag_s: float


def assess(probe: LoopLagProbe, watch: CommitWatch, now: float) -> Health:
    """The tracker's health at loop time ``now``: the log first (it loses data), then the loop."""
    lag = probe.worst_recent(now)
    failure = watch.check(now)
    if failure is not None:
        return Health(False, f"log not committing: {failure}", False, lag)
    if lag > LAG_LIMIT_S:
        return Health(False, f"loop lagging: {lag:.2f} s behind", True, lag)
    return Health(True, "", True, lag)
