"""Which codecs run: the compiled core (``udpt._core``) or the pure Python reference.

The compiled core is used when the extension was built and ``UDPT_PURE_PYTHON``
is not ``1``. ``udpt.wire``, ``udpt.events.codec`` and ``udpt.events.batch``
read ``COMPILED`` once, at import, and then bind their public names to the
compiled functions; their pure functions stay importable under ``*_py`` names
and remain the specification the compiled ones are tested against
(docs/DESIGN.md §10). This module imports nothing from udpt, so every layer may
ask it.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["COMPILED", "CORE_NAME"]


def _compiled_core_selected() -> bool:
    if os.environ.get("UDPT_PURE_PYTHON") == "1":
        return False
    try:
        importlib.import_module("udpt._core")
    except ImportError:  # not built: no compiler when udpt was installed
        return False
    return True


COMPILED = _compiled_core_selected()
"""True when the compiled codecs run."""

CORE_NAME = "compiled" if COMPILED else "pure Python"
"""For the start-up log line and ``udpt --version``."""
