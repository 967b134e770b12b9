"""Which implementation runs: the compiled core or the pure Python reference.

The compiled core is two extensions, each used when it was built and
``UDPT_PURE_PYTHON`` is not ``1``: ``udpt._core`` (the codecs) and
``udpt._sockets`` (batched datagram I/O for ``udpt.udp``'s ``BatchEndpoint``).
``udpt.wire``, ``udpt.events.codec`` and ``udpt.events.batch`` read
``COMPILED`` once, at import, and then bind their public names to the compiled
functions; their pure functions stay importable under ``*_py`` names and remain
the specification the compiled ones are tested against (docs/DESIGN.md §11).
This module imports nothing from udpt, so every layer may ask it.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["COMPILED", "COMPILED_SOCKETS", "CORE_NAME"]


def _selected(extension: str) -> bool:
    if os.environ.get("UDPT_PURE_PYTHON") == "1":
        return False
    try:
        importlib.import_module(extension)
    except ImportError:  # not built: no compiler when udpt was installed
        return False
    return True


COMPILED = _selected("udpt._core")
"""True when the compiled codecs run."""

COMPILED_SOCKETS = _selected("udpt._sockets")
"""True when the UDP edge reads and sends datagrams in compiled batches."""

CORE_NAME = {
    (True, True): "compiled",
    (False, False): "pure Python",
    (True, False): "compiled codecs, pure Python sockets",
    (False, True): "pure Python codecs, compiled sockets",
}[COMPILED, COMPILED_SOCKETS]
"""For the start-up log line and ``udpt --version``."""
