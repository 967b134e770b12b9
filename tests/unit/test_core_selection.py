"""udpt.core: which codecs run, and CI's check that the compiled core was built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from udpt import core, wire
from udpt.udp import compiled_sockets


@pytest.mark.skipif(os.environ.get("UDPT_REQUIRE_CORE") != "1", reason="UDPT_REQUIRE_CORE unset")
def test_core_is_built() -> None:
    import udpt._core
    import udpt._sockets  # noqa: F401


def test_public_names_are_the_selected_implementation() -> None:
    compiled = wire.parse_request is not wire.parse_request_py
    assert compiled == core.COMPILED
    assert (compiled_sockets() is not None) == core.COMPILED_SOCKETS
    if core.COMPILED == core.COMPILED_SOCKETS:
        assert ("compiled" if compiled else "pure Python") == core.CORE_NAME


def test_pure_python_is_selected_by_the_environment() -> None:
    env = {**os.environ, "UDPT_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "udpt", "--version"], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "udpt 0.1.0 (pure Python core)"
