"""The torture benchmark still runs end to end, every scenario printing its figures.

A smoke run (``--quick``, a few seconds of each scenario); the numbers are not
checked against the targets here, only that each scenario measured them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCENARIOS = ("0. ", "1. ", "2. ", "3. ", "4. ", "5. ")  # baseline, garbage, floods, SIGKILL
FIGURES = (
    "legit requests answered normally",
    "legit announce p99",
    "daemon RSS growth",
    "data-directory growth",
    "kernel receive drops",
    "longest probe answer",
)
CHECKS = {
    "1. ": ("s from the burst's start)",),
    "2. ": ("new torrents the flood created", "legit announces for new torrents", "flood's share"),
    "3. ": ("new torrents the flood created", "legit announces for new torrents"),
    "4. ": ("flood's share of data-directory growth",),
    "5. ": ("tools/replay.py --verify exit 0 after each SIGKILL | 2/2 |",),
}


def scenario_rows(report: str) -> dict[str, list[str]]:
    """The table's rows grouped by scenario (the first cell names it on its first row)."""
    groups: dict[str, list[str]] = {}
    current = None
    for line in report.splitlines():
        if not line.startswith("| ") or line.startswith("| scenario"):
            continue
        name = line.split("|")[1].strip()
        if name:
            current = name
            groups[current] = []
        if current is not None:
            groups[current].append(line)
    return groups


@pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("taskset") is None, reason="needs gcc and taskset"
)
def test_torture_quick_run_prints_every_scenarios_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "torture.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    groups = scenario_rows(run.stdout)
    assert len(groups) == len(SCENARIOS), list(groups)
    for prefix in SCENARIOS:
        (name,) = [n for n in groups if n.startswith(prefix)]
        text = "\n".join(groups[name])
        for figure in FIGURES + CHECKS.get(prefix, ()):
            assert figure in text, f"{figure!r} missing from scenario {name!r}"
        for line in groups[name]:
            value = line.split("|")[3].strip()
            assert value and value != "n/a", f"no figure in {line!r}"
