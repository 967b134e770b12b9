"""Fixtures shared by the whole suite. Keep this file to generic fixtures only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from udpt.events.log import EventLog


@pytest.fixture
def tmp_log(tmp_path: Path) -> Iterator[EventLog]:
    """An empty, open event log in a fresh directory; closed after the test."""
    with EventLog(tmp_path / "log") as event_log:
        yield event_log
