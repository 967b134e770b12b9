"""udpt.config: what an operator sees when udpt reads, or refuses, a configuration."""

from __future__ import annotations

import bz2
import logging
import tomllib
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from udpt.config import (
    Config,
    ConfigError,
    HttpConfig,
    LogConfig,
    LogLevel,
    Mode,
    UdpConfig,
    load_config,
)

SAMPLE = Path(__file__).resolve().parents[2] / "udpt.toml"


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default db_path is relative: keep each test's working directory its own."""
    monkeypatch.chdir(tmp_path)


def write_config(tmp_path: Path, text: str, name: str = "udpt.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def dotted_keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in table.items():
        if isinstance(value, dict):
            keys |= dotted_keys(value, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_no_file_runs_on_defaults_with_the_api_on_localhost() -> None:
    config = load_config(None)

    assert config.mode is Mode.DYNAMIC
    assert config.log_level is LogLevel.INFO
    assert config.db_path == Path("udpt-data")
    assert config.cleanup_interval == 600
    assert config.udp == UdpConfig(
        bind_address="0.0.0.0:6969",
        announce_interval=1800,
        peer_timeout=2700,
        default_numwant=50,
        max_numwant=200,
        max_numwant_v6=66,
        max_scrape_hashes=74,
        connection_id_lifetime=120,
        torrent_retention=86400,
        max_pending=100_000,
        receive_buffer=8192,
    )
    assert config.http is not None
    assert config.http.bind_address == "127.0.0.1:1212"
    assert dict(config.http.access_tokens) == {}
    assert config.log == LogConfig(
        fsync=True, commit_linger_ms=0, snapshot_interval=300, map_size_mib=65536
    )
    assert config.warnings == ()
    assert config == Config()


def test_sample_file_loads_cleanly_and_shows_the_defaults() -> None:
    config = load_config(SAMPLE)

    assert config.warnings == ()
    assert config.http is not None
    assert dict(config.http.access_tokens) == {"admin": "change-me-to-a-long-random-string"}
    assert replace(config, http=HttpConfig()) == Config()


def test_sample_file_shows_every_key() -> None:
    sample = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))
    defaults = tomllib.loads(Config().to_toml())

    sample_keys = {key for key in dotted_keys(sample) if not key.startswith("http.access_tok")}
    assert sample_keys == dotted_keys(defaults)


def test_udpt_3_file_keeps_its_meaning(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    path = write_config(
        tmp_path,
        """
        mode = "private"
        log_level = "warning"
        db_path = "store"
        cleanup_interval = 120

        [udp]
        bind_address = "[::]:6969"
        announce_interval = 120

        [http]
        bind_address = "127.0.0.1:1213"

        [http.access_tokens]
        someone = "MyAccessToken"
        """,
    )

    config = load_config(path)

    assert config.mode is Mode.PRIVATE
    assert config.log_level is LogLevel.WARN
    assert config.db_path == Path("store")
    assert config.cleanup_interval == 120
    assert (config.udp.bind_address, config.udp.announce_interval) == ("[::]:6969", 120)
    assert config.http == HttpConfig(
        bind_address="127.0.0.1:1213",
        access_tokens=MappingProxyType({"someone": "MyAccessToken"}),
    )
    assert config.warnings == ()


def test_file_without_http_table_turns_the_api_off(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 'mode = "static"\n'))

    assert config.http is None
    assert config.mode is Mode.STATIC


def test_empty_http_table_turns_the_api_on_with_defaults(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, "[http]\n")).http == HttpConfig()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('mode = "open"', "mode", 'must be one of "dynamic", "static", "private", got "open"'),
        ('log_level = "verbose"', "log_level", "must be one of"),
        ("log_level = 3", "log_level", "expected a string, got an integer"),
        ('db_path = ""', "db_path", "must not be empty"),
        ("cleanup_interval = 0", "cleanup_interval", "must be between 1 and 315360000, got 0"),
        ("cleanup_interval = 1.5", "cleanup_interval", "expected an integer, got a float"),
        ("cleanup_interval = true", "cleanup_interval", "expected an integer, got a boolean"),
        ('cleanup_interval = "600"', "cleanup_interval", "expected an integer, got a string"),
        ("udp = 5", "udp", "expected a table, got an integer"),
        # The address problem itself is worded by udpt.addresses.parse_bind_address.
        ('[udp]\nbind_address = "nowhere"', "udp.bind_address", ""),
        ('[udp]\nbind_address = "localhost:6969"', "udp.bind_address", ""),
        ("[udp]\nbind_address = 6969", "udp.bind_address", "expected a string, got an integer"),
        ("[udp]\nannounce_interval = -1", "udp.announce_interval", "must be between 1 and"),
        ("[udp]\npeer_timeout = 0", "udp.peer_timeout", "must be between 1 and"),
        ("[udp]\nmax_scrape_hashes = 75", "udp.max_scrape_hashes", "must be between 1 and 74"),
        ("[udp]\nconnection_id_lifetime = 30", "udp.connection_id_lifetime", "must be between 60"),
        ("[udp]\nmax_numwant = 0", "udp.max_numwant", "must be between 1 and"),
        ("[udp]\nmax_numwant_v6 = 5000", "udp.max_numwant_v6", "must be between 1 and 3638"),
        (
            "[udp]\ndefault_numwant = 300",
            "udp.default_numwant",
            "300 is more than udp.max_numwant (200)",
        ),
        ("[udp]\ntorrent_retention = -1", "udp.torrent_retention", "must be between 0 and"),
        ("[udp]\nmax_pending = 0", "udp.max_pending", "must be at least 1, got 0"),
        ("[udp]\nreceive_buffer = 1024", "udp.receive_buffer", "must be between 2048 and 65536"),
        ('[http]\nbind_address = "127.0.0.1:99999"', "http.bind_address", ""),
        ('[http]\naccess_tokens = "secret"', "http.access_tokens", "expected a table"),
        ('[http.access_tokens]\nadmin = ""', "http.access_tokens.admin", "empty token"),
        ("[http.access_tokens]\nadmin = 42", "http.access_tokens.admin", "expected a string"),
        (
            '[http.access_tokens]\na = "same"\n"b c" = "same"',
            'http.access_tokens."b c"',
            "same token as http.access_tokens.a",
        ),
        ("[log]\nfsync = 1", "log.fsync", "expected a boolean, got an integer"),
        ("[log]\ncommit_linger_ms = 1001", "log.commit_linger_ms", "must be between 0 and 1000"),
        ("[log]\nsnapshot_interval = -5", "log.snapshot_interval", "must be between 0 and"),
        ("[log]\nmap_size_mib = 0", "log.map_size_mib", "must be between 1 and 1073741824"),
    ],
)
def test_bad_value_is_one_line_naming_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write_config(tmp_path, text + "\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: {key}: {problem}")
    assert "\n" not in message
    assert (raised.value.file, raised.value.key) == (str(path), key)


def test_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert str(raised.value) == f"{path}: cannot read: No such file or directory"


@pytest.mark.parametrize(
    "content",
    [b"mode = \n", b'[udp]\nbind_address = "a"\n[udp]\n', b'mode = "\xff"\n'],
    ids=["missing value", "table defined twice", "not utf-8"],
)
def test_malformed_file_is_one_line_invalid_toml(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "udpt.toml"
    path.write_bytes(content)

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "\n" not in message


def test_unknown_keys_are_warned_by_name_in_file_order(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        colour = "blue"
        [udp]
        bind_adress = "0.0.0.0:7000"
        [http]
        extra = 1
        [metrics]
        port = 9
        """,
    )

    config = load_config(path)

    assert config.warnings == (
        f"{path}: unknown key 'colour' (ignored)",
        f"{path}: unknown key 'udp.bind_adress' (ignored)",
        f"{path}: unknown key 'http.extra' (ignored)",
        f"{path}: unknown key 'metrics' (ignored)",
    )
    assert config.udp.bind_address == "0.0.0.0:6969"


def test_peer_timeout_not_longer_than_interval_is_warned(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[udp]\nannounce_interval = 2700\n")

    (warning,) = load_config(path).warnings

    assert warning.startswith(f"{path}: udp.peer_timeout: 2700 s is not longer than")


def test_udpt_database_as_db_path_is_refused_with_the_import_command(tmp_path: Path) -> None:
    udpt_db = tmp_path / "udpt.db"
    udpt_db.write_bytes(bz2.compress(b'{"info_hash":"' + b"ab" * 20 + b'","completed":3}\n'))
    path = write_config(tmp_path, f'db_path = "{udpt_db}"\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: db_path: {udpt_db} is a UDPT database")
    assert f"udpt import-udpt {udpt_db} --db <new dir>" in message
    assert "\n" not in message


def test_default_db_path_that_is_a_udpt_database_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "udpt-data").write_bytes(bz2.compress(b"\n"))

    with pytest.raises(ConfigError) as raised:
        load_config(None)

    assert str(raised.value).startswith("built-in defaults: db_path: udpt-data is a UDPT database")


def test_other_file_as_db_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    path = write_config(tmp_path, 'db_path = "notes.txt"\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert str(raised.value).startswith(f"{path}: db_path: notes.txt is not a directory")


def test_existing_log_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "udpt-data").mkdir()

    assert load_config(None).db_path == Path("udpt-data")


def test_defaults_printed_as_toml_load_back_equal(tmp_path: Path) -> None:
    printed = Config().to_toml()

    assert load_config(write_config(tmp_path, printed)) == Config()


def test_changed_config_with_tokens_round_trips_when_tokens_are_revealed(tmp_path: Path) -> None:
    tokens = {"admin": 'quote " and \\ backslash', "ops team": "tab\there"}
    path = write_config(
        tmp_path,
        """
        mode = "static"
        log_level = "off"
        [udp]
        bind_address = "[::]:0"
        peer_timeout = 9000
        [log]
        fsync = false
        """,
    )
    config = load_config(path)
    config = replace(config, http=HttpConfig(access_tokens=MappingProxyType(tokens)))

    reloaded = load_config(write_config(tmp_path, config.to_toml(reveal_tokens=True), "2.toml"))

    assert reloaded == config
    assert reloaded.http is not None
    assert dict(reloaded.http.access_tokens) == tokens


def test_printed_config_hides_tokens_by_default(tmp_path: Path) -> None:
    config = load_config(SAMPLE)

    printed = config.to_toml()

    assert "change-me-to-a-long-random-string" not in printed
    assert tomllib.loads(printed)["http"]["access_tokens"] == {"admin": "***"}


def test_printed_config_without_api_loads_back_without_api(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "cleanup_interval = 60\n"))

    reloaded = load_config(write_config(tmp_path, config.to_toml(), "2.toml"))

    assert reloaded.http is None
    assert reloaded == config


@pytest.mark.parametrize(
    ("name", "level"),
    [("off", logging.CRITICAL + 1), ("trace", 5), ("warning", logging.WARNING)],
)
def test_log_level_maps_to_python_logging(tmp_path: Path, name: str, level: int) -> None:
    config = load_config(write_config(tmp_path, f'log_level = "{name}"\n'))

    assert config.log_level.logging_level == level
