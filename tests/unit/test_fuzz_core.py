"""A short sanitized libFuzzer run of the compiled core's byte-level code (benchmarks/fuzz_core.py).

Skipped where clang or its libFuzzer runtime is missing; .ci/run installs both.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("clang") is None, reason="no clang")
def test_a_short_fuzz_run_finds_no_crash() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/fuzz_core.py"), "--runs", "300000"],
        capture_output=True,
        text=True,
    )
    if "cannot find" in run.stderr or "libclang_rt.fuzzer" in run.stderr:
        pytest.skip("no libFuzzer runtime")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "crashes: 0" in run.stdout
