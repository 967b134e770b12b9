"""Fixtures of the integration tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "replay.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    """``tools/replay.py`` loaded as a module, so ``main(argv)`` runs in-process."""
    spec = importlib.util.spec_from_file_location("replay_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
