"""Configuration: a TOML file read into nested frozen dataclasses, one per TOML table.

The format is UDPT's (``udpt -c udpt.toml``): every key UDPT knows keeps its meaning
(``mode``, ``log_level``, ``db_path``, ``cleanup_interval``, ``[udp]``, ``[http]``,
``[http.access_tokens]``); keys of ours are added to ``[udp]`` and live in ``[log]``.

Defaults are the field defaults below and nowhere else. The REST API is the one setting
whose default depends on the file: with no file at all (``load_config(None)``) it is on, at
127.0.0.1:1212 with no tokens, so that a newcomer's first run works; a file without an
``[http]`` table turns it off (``Config.http is None``), as in UDPT.

A bad file or value raises ``ConfigError``, whose text is one line naming file, key and
problem. Unknown keys do not stop the tracker: ``load_config`` reports each one, by name, in
``Config.warnings`` (which the caller prints), together with settings that are legal but
almost certainly a mistake.
"""

from __future__ import annotations

import enum
import logging
import re
import textwrap
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, is_dataclass, replace
from datetime import date, datetime, time
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

from udpt.addresses import parse_bind_address

__all__ = [
    "ClusterConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "Mode",
    "QuotaConfig",
    "UdpConfig",
    "load_config",
]

# Durations are capped at ten years: far beyond any sane setting, and small enough that
# ``now - duration`` in milliseconds stays positive and BEP 15's i32 `interval` cannot overflow.
_MAX_SECONDS = 10 * 365 * 86400

# The most peers one UDP reply can carry: 65507 bytes of IPv4 UDP payload, minus the 20-byte
# announce header, over 6 bytes per IPv4 peer and 18 per IPv6 peer (docs/PROTOCOL.md §6.5, §7.1).
_MAX_PEERS_V4 = (65507 - 20) // 6
_MAX_PEERS_V6 = (65507 - 20) // 18

# The name an error gives to the configuration when no file was read.
_DEFAULTS_SOURCE = "built-in defaults"

# First bytes of every bzip2 stream; UDPT 3.1 writes its database as bzip2'd JSON lines.
_BZIP2_MAGIC = b"BZh"


class ConfigError(Exception):
    """A configuration that cannot be used; ``str()`` is one line: ``file: key: problem``."""

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        super().__init__(file, key, problem)
        self.file = file
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        where = self.file if self.key is None else f"{self.file}: {self.key}"
        return " ".join(f"{where}: {self.problem}".splitlines())


class Mode(enum.StrEnum):
    """How announces for unknown torrents are treated (UDPT's ``mode``)."""

    DYNAMIC = "dynamic"
    """Any announce creates its torrent; torrents nobody added are dropped once empty."""
    STATIC = "static"
    """Only torrents added through the REST API are tracked."""
    PRIVATE = "private"
    """As static (UDPT gives private no behaviour of its own)."""


class LogLevel(enum.StrEnum):
    """UDPT's ``log_level`` names; ``warning`` is accepted in the file as ``warn``."""

    OFF = "off"
    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"

    @property
    def logging_level(self) -> int:
        """The level to give Python's ``logging`` (``off`` is above CRITICAL)."""
        return _LOGGING_LEVELS[self]


_LOGGING_LEVELS = {
    LogLevel.OFF: logging.CRITICAL + 1,
    LogLevel.TRACE: 5,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}


class LogFormat(enum.StrEnum):
    """How log lines are written (``log_format``, ours)."""

    TEXT = "text"
    """One line per record for people: ISO-8601 time with zone, level, logger, message."""
    JSON = "json"
    """One JSON object per line for log shippers (time, level, logger, message, exception)."""


class _Invalid(Exception):
    """A value's problem; ``subkey`` names the entry of a table value that has it."""

    def __init__(self, problem: str, subkey: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.subkey = subkey


# TOML's names for the types tomllib returns; bool before int and datetime before date,
# as each is a subclass of the next.
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
    (datetime, "a datetime"),
    (date, "a date"),
    (time, "a time"),
)


def _type_name(value: object) -> str:
    """The TOML name of a parsed value's type, as the user wrote it."""
    return next((name for kind, name in _TOML_TYPES if isinstance(value, kind)), "a value")


def _expect_string(raw: object) -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"expected a string, got {_type_name(raw)}")
    return raw


def _parse_mode(raw: object) -> Mode:
    text = _expect_string(raw)
    try:
        return Mode(text)
    except ValueError:
        choices = ", ".join(f'"{mode}"' for mode in Mode)
        raise _Invalid(f'must be one of {choices}, got "{text}"') from None


def _parse_log_level(raw: object) -> LogLevel:
    text = _expect_string(raw)
    if text == "warning":
        return LogLevel.WARN
    try:
        return LogLevel(text)
    except ValueError:
        choices = ", ".join(f'"{level}"' for level in LogLevel)
        raise _Invalid(f'must be one of {choices} (or "warning"), got "{text}"') from None


def _parse_log_format(raw: object) -> LogFormat:
    text = _expect_string(raw)
    try:
        return LogFormat(text)
    except ValueError:
        raise _Invalid(f'must be "text" or "json", got "{text}"') from None


def _parse_path(raw: object) -> Path:
    text = _expect_string(raw)
    if not text:
        raise _Invalid("must not be empty")
    return Path(text)


def _parse_bind_address(raw: object) -> str:
    text = _expect_string(raw)
    try:
        parse_bind_address(text)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    return text


def _whole_bytes_prefix(bits: int) -> Callable[[object], int]:
    """A parser for a prefix length in whole bytes, from 8 to ``bits``."""

    def parse(raw: object) -> int:
        if type(raw) is not int:
            raise _Invalid(f"expected an integer, got {_type_name(raw)}")
        if not (8 <= raw <= bits and raw % 8 == 0):
            raise _Invalid(f"must be a multiple of 8 from 8 to {bits}, got {raw}")
        return raw

    return parse


def _parse_access_tokens(raw: object) -> Mapping[str, str]:
    if not isinstance(raw, dict):
        raise _Invalid(f"expected a table of label = token, got {_type_name(raw)}")
    labels_by_token: dict[str, str] = {}
    for label, token in raw.items():
        if not label:
            raise _Invalid("an empty label cannot name who made an admin change", label)
        if len(label.encode("utf-8")) > 255:
            raise _Invalid(
                "label longer than 255 bytes (it is recorded in every admin event)", label
            )
        if not isinstance(token, str):
            raise _Invalid(f"expected a string token, got {_type_name(token)}", label)
        if not token:
            raise _Invalid("empty token (it would let anyone in)", label)
        if token in labels_by_token:
            other = _toml_key(labels_by_token[token])
            raise _Invalid(f"same token as http.access_tokens.{other}", label)
        labels_by_token[token] = label
    return MappingProxyType(dict(raw))


def _parse_nats_urls(raw: object) -> tuple[str, ...]:
    """One server URL or an array of them (any one is enough to join the NATS cluster)."""
    urls = [raw] if isinstance(raw, str) else raw
    if not isinstance(urls, list) or not urls:
        raise _Invalid(f"expected a URL string or a non-empty array of them, got {_type_name(raw)}")
    for url in urls:
        if not isinstance(url, str) or not url:
            raise _Invalid('every entry must be a non-empty string such as "nats://host:4222"')
        if not url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise _Invalid(f'"{url}" is not a NATS URL (nats://host:port)')
    return tuple(urls)


# JetStream names (streams, buckets) and our message ids: no dots, wildcards or spaces.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _parse_name(what: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        text = _expect_string(raw)
        if not _NAME.fullmatch(text):
            raise _Invalid(f'{what}: 1 to 64 of A-Z a-z 0-9 _ -, got "{text}"')
        return text

    return parse


def _spec(
    doc: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    parse: Callable[[object], Any] | None = None,
) -> dict[str, Any]:
    """A TOML key's documentation (printed by ``to_toml``) and checks, as field metadata.

    Without ``parse`` the TOML value must have the field's type exactly (a boolean is not an
    integer, an integer is not a float) and lie within ``minimum`` and ``maximum``.
    """
    return {"doc": doc, "minimum": minimum, "maximum": maximum, "parse": parse}


@dataclass(frozen=True, slots=True)
class UdpConfig:
    """The BEP 15 tracker endpoint: UDPT's two keys, then ours."""

    bind_address: str = field(
        default="0.0.0.0:6969",
        metadata=_spec(
            'Address and port for the UDP tracker: "0.0.0.0:6969" for IPv4, "[::]:6969" for '
            "IPv4 and IPv6 on one dual-stack socket. Port 0 picks a free port.",
            parse=_parse_bind_address,
        ),
    )
    announce_interval: int = field(
        default=1800,
        metadata=_spec(
            "Seconds between regular announces, sent to clients in every announce reply.",
            minimum=1,
            maximum=_MAX_SECONDS,
        ),
    )
    peer_timeout: int = field(
        default=2700,
        metadata=_spec(
            "Seconds without an announce after which a peer is gone from replies and counts "
            "(keep it longer than announce_interval).",
            minimum=1,
            maximum=_MAX_SECONDS,
        ),
    )
    default_numwant: int = field(
        default=50,
        metadata=_spec(
            "Peers returned when a client sends num_want -1 (the BEP 15 default); 0 = none.",
            minimum=0,
            maximum=_MAX_PEERS_V4,
        ),
    )
    max_numwant: int = field(
        default=200,
        metadata=_spec(
            "Most peers in one reply to an IPv4 client (200 keeps the reply at 1220 bytes, "
            f"under a 1280-byte MTU; at most {_MAX_PEERS_V4}, what fits in one datagram).",
            minimum=1,
            maximum=_MAX_PEERS_V4,
        ),
    )
    max_numwant_v6: int = field(
        default=66,
        metadata=_spec(
            "Most peers in one reply to an IPv6 client (66 keeps the reply at 1208 bytes; "
            f"at most {_MAX_PEERS_V6}).",
            minimum=1,
            maximum=_MAX_PEERS_V6,
        ),
    )
    max_scrape_hashes: int = field(
        default=74,
        metadata=_spec(
            "Most info hashes answered in one scrape; the rest are ignored (BEP 15: about 74).",
            minimum=1,
            maximum=74,
        ),
    )
    connection_id_lifetime: int = field(
        default=120,
        metadata=_spec(
            "Seconds a connection id stays valid after the connect reply (BEP 15 asks for "
            "at least 60).",
            minimum=60,
            maximum=3600,
        ),
    )
    torrent_retention: int = field(
        default=86400,
        metadata=_spec(
            "Dynamic mode: seconds an empty torrent nobody added keeps its completed counter "
            "before it is dropped; 0 = dropped at the first sweep after it empties, as UDPT does.",
            minimum=0,
            maximum=_MAX_SECONDS,
        ),
    )
    max_torrents: int = field(
        default=1_000_000,
        metadata=_spec(
            "Dynamic mode: most torrents held at once. Announces that would create one more "
            'get "torrent not allowed.", so a flood of random info hashes cannot exhaust memory.',
            minimum=1,
        ),
    )
    max_peers_per_torrent: int = field(
        default=50_000,
        metadata=_spec(
            'Most peers one torrent holds; a new peer past it gets "torrent full." (peers '
            "already in the swarm keep announcing), so one host cannot stuff a swarm.",
            minimum=1,
        ),
    )
    max_ports_per_ip_per_torrent: int = field(
        default=64,
        metadata=_spec(
            "Most peers of one torrent from one source (an address, or the quotas' prefix); a "
            'new one past it gets "too many peers from your address." (ours; UDPT has no such '
            "limit), so one host cannot take a swarm's places with its ports.",
            minimum=1,
        ),
    )
    max_pending: int = field(
        default=100_000,
        metadata=_spec(
            "Announces waiting for their commit beyond which new announces are dropped "
            "unanswered (clients retry), so a slow disk cannot exhaust memory.",
            minimum=1,
        ),
    )
    receive_buffer: int = field(
        default=8192,
        metadata=_spec(
            "Bytes read per datagram; longer datagrams are truncated (only BEP 41 options or "
            "scrape hashes can be cut).",
            minimum=2048,
            maximum=65536,
        ),
    )


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """Per-source quotas (ours), so one host cannot shut others out; 0 turns a quota off."""

    source_prefix_v4: int = field(
        default=32,
        metadata=_spec(
            "Leading bits of an IPv4 address that name one source (a multiple of 8).",
            parse=_whole_bytes_prefix(32),
        ),
    )
    source_prefix_v6: int = field(
        default=64,
        metadata=_spec(
            "Leading bits of an IPv6 address that name one source (a multiple of 8; a /64 "
            "is usually one site).",
            parse=_whole_bytes_prefix(128),
        ),
    )
    announces_per_second: int = field(
        default=200,
        metadata=_spec(
            "Announces per second one source may send, on average (a client sends one per "
            "torrent per announce_interval).",
            minimum=0,
        ),
    )
    announce_burst: int = field(
        default=20_000,
        metadata=_spec(
            "Announces one source may send at once (clients behind one address starting up).",
            minimum=1,
        ),
    )
    new_torrents_per_minute: int = field(
        default=500,
        metadata=_spec(
            "Dynamic mode: torrents one source may create per minute, on average (with the "
            "burst, at most 1,000 in a minute; a client that starts with more new torrents "
            "creates the rest as it retries).",
            minimum=0,
        ),
    )
    new_torrent_burst: int = field(
        default=500,
        metadata=_spec("Dynamic mode: torrents one source may create at once.", minimum=1),
    )
    error_replies_per_second: int = field(
        default=1,
        metadata=_spec(
            "Error replies a source over quota gets per second; beyond them, silence.",
            minimum=1,
        ),
    )
    recorded_refusals_per_minute: int = field(
        default=60,
        metadata=_spec(
            "Refused announces (flagged, not registered, over max_torrents) recorded as events "
            "per source and minute; the rest are answered and counted, not logged. 0 = all.",
            minimum=0,
        ),
    )
    max_sources: int = field(
        default=100_000,
        metadata=_spec(
            "Sources whose quotas are remembered; the one idle longest is forgotten first.",
            minimum=1,
        ),
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The REST API (UDPT's): meant for trusted networks only."""

    bind_address: str = field(
        default="127.0.0.1:1212",
        metadata=_spec(
            "Address and port for the REST API. Keep it on a trusted network.",
            parse=_parse_bind_address,
        ),
    )
    access_tokens: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_spec(
            "label = token. Every request needs one of the tokens (?token=... or "
            "Authorization: Bearer ...); the label names the actor in the admin events it makes. "
            "No tokens = every request is refused.",
            parse=_parse_access_tokens,
        ),
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The event log (ours): where every accepted announce and admin change is kept."""

    fsync: bool = field(
        default=True,
        metadata=_spec(
            "Flush each committed batch to disk before replying (false: faster, but a power "
            "loss can lose acknowledged changes; a process crash cannot).",
        ),
    )
    commit_linger_ms: int = field(
        default=0,
        metadata=_spec(
            "Milliseconds the writer waits for more events before committing a batch; "
            "0 = commit as soon as the writer is free (events arriving during a commit "
            "make the next batch, so batches grow with the load anyway).",
            minimum=0,
            maximum=1000,
        ),
    )
    snapshot_interval: int = field(
        default=300,
        metadata=_spec(
            "Seconds between snapshots of the live state (restart = snapshot + replay of the "
            "rest); 0 = only at shutdown.",
            minimum=0,
            maximum=_MAX_SECONDS,
        ),
    )
    retention: int = field(
        default=604800,
        metadata=_spec(
            "Seconds of announces and expiries the log keeps; older ones are pruned once a "
            "snapshot covers them (admin events are kept forever); 0 = keep everything.",
            minimum=0,
            maximum=_MAX_SECONDS,
        ),
    )
    archive_dir: str = field(
        default="",
        metadata=_spec(
            "Directory where pruned events are first written, as immutable compressed files "
            '(`tools/replay.py --archive DIR` reads them with the log); "" = no archive.',
            parse=_expect_string,
        ),
    )
    map_size_mib: int = field(
        default=65536,
        metadata=_spec(
            "Initial LMDB map size in MiB (at most 1 PiB); it grows on demand, this only sets "
            "the first step.",
            minimum=1,
            maximum=1 << 30,
        ),
    )


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Several nodes sharing one history through NATS JetStream (ours; needs ``udpt[cluster]``)."""

    nats_url: tuple[str, ...] = field(
        default=("nats://127.0.0.1:4222",),
        metadata=_spec(
            'A NATS server URL, or an array of them ("nats://host:4222"); the servers must run '
            "JetStream (nats-server -js).",
            parse=_parse_nats_urls,
        ),
    )
    node_id: str = field(
        default="",
        metadata=_spec(
            "This node's name, unique in the cluster (required): it names the node's batches "
            "in the stream.",
            parse=_parse_name("a node id"),
        ),
    )
    stream: str = field(
        default="udpt",
        metadata=_spec(
            "Prefix of the JetStream stream (PREFIX-log, subject PREFIX.batches) and key-value "
            "bucket (PREFIX-secrets) udpt creates; every node of one cluster uses the same.",
            parse=_parse_name("a stream prefix"),
        ),
    )
    replicas: int = field(
        default=1,
        metadata=_spec(
            "JetStream replicas of the stream and bucket udpt creates (1, or 3 on a "
            "three-server NATS cluster).",
            minimum=1,
            maximum=5,
        ),
    )


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; build it with ``load_config``."""

    mode: Mode = field(
        default=Mode.DYNAMIC,
        metadata=_spec(
            '"dynamic": any announce creates its torrent; "static" and "private": only '
            "torrents added through the REST API are tracked.",
            parse=_parse_mode,
        ),
    )
    log_level: LogLevel = field(
        default=LogLevel.INFO,
        metadata=_spec(
            '"off", "trace", "debug", "info", "warn" (or "warning") or "error".',
            parse=_parse_log_level,
        ),
    )
    log_format: LogFormat = field(
        default=LogFormat.TEXT,
        metadata=_spec(
            '"text" (lines for people) or "json" (one JSON object per line, for log shippers). '
            "Ours; log_level and log_format can change without a restart (SIGHUP).",
            parse=_parse_log_format,
        ),
    )
    db_path: Path = field(
        default=Path("udpt-data"),
        metadata=_spec(
            "Directory of the event log (created if missing; relative to the working "
            "directory). Not UDPT's bz2 file: convert that one with "
            "`udpt import-udpt FILE --db DIR`.",
            parse=_parse_path,
        ),
    )
    cleanup_interval: int = field(
        default=600,
        metadata=_spec(
            "Seconds between sweeps that drop expired peers and, in dynamic mode, empty torrents "
            "(udpt sweeps at least every 10 s: a sweep costs only what it removes).",
            minimum=1,
            maximum=_MAX_SECONDS,
        ),
    )
    udp: UdpConfig = field(default_factory=UdpConfig, metadata=_spec(doc="The UDP tracker."))
    http: HttpConfig | None = field(
        default_factory=HttpConfig,
        metadata=_spec(
            "The REST API; leave the table out of a file to turn the API off.",
        ),
    )
    log: LogConfig = field(default_factory=LogConfig, metadata=_spec(doc="The event log."))
    quotas: QuotaConfig = field(
        default_factory=QuotaConfig, metadata=_spec(doc="Quotas per source address.")
    )
    cluster: ClusterConfig | None = field(
        default=None,
        metadata=_spec(
            "Several nodes sharing one history through NATS JetStream; without the table udpt "
            "runs alone.",
        ),
    )
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Unknown keys and doubtful settings found by ``load_config``, one line each, naming
    file and key; not part of the TOML (and not compared)."""

    def to_toml(self, *, reveal_tokens: bool = False) -> str:
        """The configuration as a commented TOML file that ``load_config`` reads back equal.

        Access tokens are printed as ``"***"`` unless ``reveal_tokens`` is true; such a copy is
        for reading (``udpt --print-config``), and with two tokens or more it does not load.
        """
        lines: list[str] = []
        _write_table(lines, self, (), reveal_tokens)
        return "\n".join(lines).strip() + "\n"


def load_config(path: str | Path | None) -> Config:
    """Read ``path`` (None = built-in defaults) and check it; raise ``ConfigError`` if unusable.

    Unknown keys and doubtful settings are returned in ``Config.warnings``.
    """
    warnings: list[str] = []
    if path is None:
        source = _DEFAULTS_SOURCE
        config = Config()
    else:
        source = str(path)
        document = _read_toml(source)
        config = _read_table(Config, document, (), source, warnings)
        if "http" not in document:
            config = replace(config, http=None)
    _check_relations(config, source, warnings)
    _check_cluster(config.cluster, source)
    _check_db_path(config.db_path, source)
    return replace(config, warnings=tuple(warnings))


def _read_toml(source: str) -> dict[str, Any]:
    try:
        with open(source, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(source, None, f"cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, None, f"invalid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(source, None, f"invalid TOML: not UTF-8 ({error.reason})") from None


def _toml_fields(cls: type) -> list[Field[Any]]:
    """The fields that are TOML keys (``Config.warnings`` is not)."""
    return [f for f in fields(cls) if "doc" in f.metadata]


def _section_type(hint: Any) -> type | None:
    """The dataclass a field holds (also through ``X | None``), or None for a plain value."""
    for candidate in getattr(hint, "__args__", (hint,)):
        if isinstance(candidate, type) and is_dataclass(candidate):
            return candidate
    return None


def _read_table(
    cls: type, table: dict[str, Any], path: tuple[str, ...], source: str, warnings: list[str]
) -> Any:
    """Build ``cls`` from ``table``, in file order; keys left out keep their defaults."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in _toml_fields(cls)}
    values: dict[str, Any] = {}
    for name, raw in table.items():
        key = (*path, name)
        if name not in known:
            warnings.append(f"{source}: unknown key '{_dotted(key)}' (ignored)")
            continue
        section = _section_type(hints[name])
        if section is not None:
            if not isinstance(raw, dict):
                problem = f"expected a table, got {_type_name(raw)}"
                raise ConfigError(source, _dotted(key), problem)
            values[name] = _read_table(section, raw, key, source, warnings)
            continue
        try:
            values[name] = _read_value(known[name], hints[name], raw)
        except _Invalid as invalid:
            where = key if invalid.subkey is None else (*key, invalid.subkey)
            raise ConfigError(source, _dotted(where), invalid.problem) from None
    return cls(**values)


def _read_value(f: Field[Any], hint: Any, raw: object) -> Any:
    parse = f.metadata["parse"]
    if parse is not None:
        return parse(raw)
    if type(raw) is not hint:
        raise _Invalid(f"expected {dict(_TOML_TYPES)[hint]}, got {_type_name(raw)}")
    minimum, maximum = f.metadata["minimum"], f.metadata["maximum"]
    too_small = minimum is not None and raw < minimum
    too_large = maximum is not None and raw > maximum
    if too_small or too_large:
        if maximum is None:
            raise _Invalid(f"must be at least {minimum}, got {raw}")
        raise _Invalid(f"must be between {minimum} and {maximum}, got {raw}")
    return raw


def _check_relations(config: Config, source: str, warnings: list[str]) -> None:
    """Checks that involve two keys."""
    udp = config.udp
    if udp.default_numwant > udp.max_numwant:
        raise ConfigError(
            source,
            "udp.default_numwant",
            f"{udp.default_numwant} is more than udp.max_numwant ({udp.max_numwant})",
        )
    if udp.peer_timeout <= udp.announce_interval:
        warnings.append(
            f"{source}: udp.peer_timeout: {udp.peer_timeout} s is not longer than "
            f"udp.announce_interval ({udp.announce_interval} s): peers will expire between "
            "their announces"
        )


def _check_cluster(cluster: ClusterConfig | None, source: str) -> None:
    """A cluster needs a node id, and nats-py, which only ``udpt[cluster]`` installs."""
    if cluster is None:
        return
    if not cluster.node_id:
        raise ConfigError(source, "cluster.node_id", "required: a name unique in the cluster")
    if find_spec("nats") is None:
        raise ConfigError(
            source, "cluster", "needs nats-py, which is not installed: pip install 'udpt[cluster]'"
        )


def _check_db_path(db_path: Path, source: str) -> None:
    """Refuse a db_path that is a file: most likely UDPT's own database, which we must not
    open as a log (or overwrite); say how to convert it instead."""
    if not db_path.exists() or db_path.is_dir():
        return
    try:
        with open(db_path, "rb") as file:
            magic = file.read(len(_BZIP2_MAGIC))
    except OSError:
        magic = b""
    if magic == _BZIP2_MAGIC:
        problem = (
            f"{db_path} is a UDPT database (bz2), but udpt keeps its log in a directory; "
            f"import it with `udpt import-udpt {db_path} --db <new dir>` and set db_path "
            "to that directory"
        )
    else:
        problem = (
            f"{db_path} is not a directory; db_path names the event log directory "
            "(it is created if it does not exist)"
        )
    raise ConfigError(source, "db_path", problem)


def _write_table(lines: list[str], table: Any, path: tuple[str, ...], reveal: bool) -> None:
    """Append ``table``'s keys, then its sub-tables, each under its documentation."""
    hints = get_type_hints(type(table))
    subtables = []
    for f in _toml_fields(type(table)):
        value = getattr(table, f.name)
        if _section_type(hints[f.name]) is not None or isinstance(value, Mapping):
            subtables.append((f, value))
            continue
        _write_comment(lines, f.metadata["doc"])
        lines.append(f"{_toml_key(f.name)} = {_toml_value(value)}")
        lines.append("")
    for f, value in subtables:
        key = (*path, f.name)
        _write_comment(lines, f.metadata["doc"])
        if value is None:
            lines.extend((f"# [{_dotted(key)}] is absent: turned off.", ""))
        elif isinstance(value, Mapping):
            # The one table of free-form keys is http.access_tokens: its values are secrets.
            lines.append(f"[{_dotted(key)}]")
            for label, token in value.items():
                shown = token if reveal else "***"
                lines.append(f"{_toml_key(label)} = {_toml_value(shown)}")
            lines.append("")
        else:
            lines.append(f"[{_dotted(key)}]")
            _write_table(lines, value, key, reveal)


def _write_comment(lines: list[str], text: str) -> None:
    lines.extend(f"# {line}" for line in textwrap.wrap(text, width=96))


def _toml_value(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char < " " or char == "\x7f":
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _toml_key(name: str) -> str:
    """A bare key if TOML allows one, else a quoted key."""
    bare = name and all(char.isascii() and (char.isalnum() or char in "_-") for char in name)
    return name if bare else _toml_string(name)


def _dotted(key: tuple[str, ...]) -> str:
    return ".".join(_toml_key(part) for part in key)
