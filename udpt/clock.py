"""The one place udpt reads the time: a clock that edges pass inward.

Event times must never go backwards in the log (swarm tables are ordered by
last-seen time and expiry relies on it), while the wall clock can step back
under NTP. ``EventClock.now_ms()`` therefore never returns less than it did
before, nor less than the last event already in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["EventClock", "ManualClock"]


class EventClock:
    """Wall-clock seconds for connection ids, and non-decreasing milliseconds for events."""

    def __init__(self, source: Callable[[], float] = time.time, floor_ms: int = 0) -> None:
        self.source = source
        self._last_ms = floor_ms

    def now(self) -> float:
        return self.source()

    def now_ms(self) -> int:
        ms = int(self.source() * 1000)
        if ms > self._last_ms:
            self._last_ms = ms
        return self._last_ms

    def raise_floor(self, floor_ms: int) -> None:
        """Never return less than ``floor_ms`` (the time of the last event in the log)."""
        self._last_ms = max(self._last_ms, floor_ms)


class ManualClock:
    """A time source that only moves when told to: tests advance it by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds
