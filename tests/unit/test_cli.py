"""The ``udpt`` command line, run as a user runs it: ``python -m udpt`` in a real process.

None of these start the tracker: each invocation ends before the daemon is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from udpt import __version__
from udpt.cli import build_parser, run
from udpt.config import Config, load_config
from udpt.core import CORE_NAME

REPO = Path(__file__).resolve().parents[2]


def udpt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "udpt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_name_version_and_core(tmp_path: Path) -> None:
    result = udpt("--version", cwd=tmp_path)

    expected = f"udpt 0.1.0 ({CORE_NAME} core)\n"
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")
    assert __version__ == "0.1.0"


def test_help_lists_the_options_and_the_import_command(tmp_path: Path) -> None:
    result = udpt("--help", cwd=tmp_path)

    assert result.returncode == 0
    for text in ("-c FILE, --config FILE", "--print-config", "--version", "import-udpt"):
        assert text in result.stdout


def test_bad_config_exits_2_with_one_line_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[udp]\nannounce_interval = 0\n")

    result = udpt("-c", "bad.toml", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("udpt: bad.toml: udp.announce_interval: must be between 1")
    assert result.stderr.count("\n") == 1


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = udpt("--config", "missing.toml", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == "udpt: missing.toml: cannot read: No such file or directory\n"


def test_print_config_without_file_prints_the_defaults(tmp_path: Path) -> None:
    result = udpt("--print-config", cwd=tmp_path)

    assert (result.returncode, result.stderr) == (0, "")
    (tmp_path / "printed.toml").write_text(result.stdout)
    assert load_config(tmp_path / "printed.toml") == Config()


def test_print_config_hides_tokens_and_warns_of_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        '[udp]\ncolour = "blue"\n[http.access_tokens]\nadmin = "s3cret-token"\n'
    )

    result = udpt("--config", "mine.toml", "--print-config", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stderr == "udpt: warning: mine.toml: unknown key 'udp.colour' (ignored)\n"
    assert "s3cret-token" not in result.stdout
    assert tomllib.loads(result.stdout)["http"]["access_tokens"] == {"admin": "***"}


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["serve"]) == 2
    assert "invalid choice: 'serve'" in capsys.readouterr().err


def test_import_without_db_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["import-udpt", "udpt.db"]) == 2
    assert "--db" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "command", "config"),
    [
        ([], None, None),
        (["-c", "f.toml"], None, "f.toml"),
        (["--config", "f.toml"], None, "f.toml"),
        (["import-udpt", "x.bz2", "--db", "d"], "import-udpt", None),
    ],
)
def test_command_line_forms_parse(argv: list[str], command: str | None, config: str | None) -> None:
    args = build_parser().parse_args(argv)

    assert (args.command, args.config) == (command, config)


def test_import_arguments_reach_the_importer_as_paths() -> None:
    args = build_parser().parse_args(["import-udpt", "x.bz2", "--db", "d", "--actor", "me"])

    assert (args.file, args.db, args.actor) == (Path("x.bz2"), Path("d"), "me")
    assert build_parser().parse_args(["import-udpt", "x.bz2", "--db", "d"]).actor == "udpt-import"
