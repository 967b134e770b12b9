"""The benchmark runner still runs end to end (a tiny load; its numbers are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("taskset") is None, reason="needs gcc and taskset"
)
def test_benchmark_runner_quick_run_prints_every_figure() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for figure in (
        "udpt: responses/s",
        "p99 at half peak load",
        "bytes on disk per announce",
        "replay speed",
        "restart:",
        "RSS per peer",
        "event-loop stall",
    ):
        assert figure in run.stdout, f"{figure!r} missing from the report"
    assert "udpt: lost replies, server CPU | 0," in run.stdout  # udpt answered everything
