"""SIGHUP: re-read the configuration file and apply what can change while serving.

Access tokens, ``log_level`` and ``log_format`` change at once; the change is
logged by token *label* (a token never reaches a log). Everything else (ports,
the log's directory, the mode, limits) is wired into sockets and decisions at
start-up: a change to it is named in a warning asking for a restart, and the
running value stays. A file that no longer loads is reported and ignored; a
reload never stops the tracker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from udpt.config import Config, ConfigError, load_config
from udpt.logs import set_log_format, set_log_level

__all__ = ["RELOADABLE", "Reloader", "changed_keys", "reload_on_sighup"]

log = logging.getLogger(__name__)

RELOADABLE = frozenset({"log_level", "log_format", "http.access_tokens"})
"""The keys a reload applies; a change to any other one needs a restart."""

SetTokens = Callable[[Mapping[str, str]], None]


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the keys whose values differ between two configurations."""
    keys = []
    for f in fields(old):
        if not f.compare:
            continue
        before, after = getattr(old, f.name), getattr(new, f.name)
        name = prefix + f.name
        if is_dataclass(before) and is_dataclass(after):
            keys.extend(changed_keys(before, after, name + "."))
        elif before != after:
            keys.append(name)
    return keys


@contextmanager
def reload_on_sighup(
    path: Path | None, config: Config, set_tokens: SetTokens | None
) -> Iterator[None]:
    """Within the block, SIGHUP reloads ``path`` (nothing to do when it is None: no file)."""
    if path is None:
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, Reloader(path, config, set_tokens).reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


class Reloader:
    """Holds the configuration in force and applies a re-read file to it."""

    def __init__(self, path: Path, config: Config, set_tokens: SetTokens | None) -> None:
        self.path = path
        self.config = config
        self._set_tokens = set_tokens

    def reload(self) -> None:
        try:
            self._reload()
        except Exception:  # a reload must never take the tracker down
            log.exception("SIGHUP: reloading %s failed; the running configuration stays", self.path)

    def _reload(self) -> None:
        try:
            new = load_config(self.path)
        except ConfigError as error:
            log.error("SIGHUP: %s; the running configuration stays", error)
            return
        for warning in new.warnings:
            log.warning("SIGHUP: %s", warning)
        old = self.config
        applied = []
        if new.log_level != old.log_level:
            set_log_level(new.log_level)
            applied.append(f"log_level {old.log_level} -> {new.log_level}")
        if new.log_format != old.log_format:
            set_log_format(new.log_format)
            applied.append(f"log_format {old.log_format} -> {new.log_format}")
        http = old.http
        if http is not None and new.http is not None and self._set_tokens is not None:
            change = _token_change(http.access_tokens, new.http.access_tokens)
            if change:
                self._set_tokens(new.http.access_tokens)
                applied.append(f"access tokens: {change}")
                http = replace(http, access_tokens=new.http.access_tokens)
        self.config = replace(old, log_level=new.log_level, log_format=new.log_format, http=http)
        pending = [key for key in changed_keys(self.config, new) if key not in RELOADABLE]
        if applied:
            log.info("SIGHUP: applied %s", "; ".join(applied))
        if pending:
            log.warning(
                "SIGHUP: %s changed in %s; restart udpt to apply (the running value stays)",
                ", ".join(pending),
                self.path,
            )
        if not applied and not pending:
            log.info("SIGHUP: %s re-read, nothing changed", self.path)


def _token_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """What changed, by label only: ``"added 'ci'; removed 'old'; new token for 'admin'"``."""
    parts = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    replaced = sorted(label for label in set(old) & set(new) if old[label] != new[label])
    for verb, labels in (("added", added), ("removed", removed), ("new token for", replaced)):
        if labels:
            parts.append(f"{verb} " + ", ".join(repr(label) for label in labels))
    return "; ".join(parts)
