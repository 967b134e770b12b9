"""contrib/udpt.service is a valid systemd unit that runs udpt hardened and reloads on SIGHUP."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "udpt.service"


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_runs_as_a_dynamic_user_with_the_usual_hardening() -> None:
    settings = _settings()
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "udpt",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus": "2",
    }.items():
        assert settings.get(key) == [value], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's udpt.
    udpt = Path(sys.executable).parent / "udpt"
    if not udpt.exists():
        pytest.skip("the udpt console script is not installed next to this Python")
    unit = tmp_path / "udpt.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/udpt", str(udpt)),
        encoding="utf-8",
    )
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    ours = [line for line in checked.stderr.splitlines() if "udpt.service" in line]
    assert checked.returncode == 0, checked.stderr
    assert ours == []
