"""The ``udpt`` command: argv in, exit code out.

``udpt [-c FILE]`` runs the tracker (UDPT's command line; with no file it runs on built-in
defaults). ``udpt import-udpt FILE --db DIR`` converts a UDPT database into a new log.
``--config``, ``--print-config`` and ``--version`` are ours.

Exit codes: 0 success; 2 a bad command line or configuration (argparse's code for usage
errors; UDPT exits 0 on a bad file, which hides the failure from service managers), or a
data directory another daemon holds; anything else is what the daemon or the importer returns.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from udpt import __version__
from udpt.config import ConfigError, load_config
from udpt.core import CORE_NAME

__all__ = ["EXIT_IN_USE", "EXIT_USAGE", "build_parser", "main", "run"]

EXIT_USAGE = 2
EXIT_IN_USE = 2
"""The data directory is locked by a running daemon: a setup error, as a bad configuration."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; the subcommand is optional (none = run the tracker)."""
    parser = argparse.ArgumentParser(
        prog="udpt",
        # argparse would show the optional command as required ("COMMAND ...").
        usage="%(prog)s [-h] [-c FILE] [--version] [--print-config] [import-udpt ...]",
        description="UDP BitTorrent tracker (BEP 15), UDPT-compatible, with an event log.",
        epilog="Without a command, udpt runs the tracker.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: built-in defaults, REST API on 127.0.0.1:1212)",
    )
    parser.add_argument(
        "--version", action="version", version=f"udpt {__version__} ({CORE_NAME} core)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective configuration as TOML (access tokens hidden) and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    importer = commands.add_parser(
        "import-udpt",
        help="convert a UDPT database (its bz2 db_path file) into a new udpt log",
        description="Convert a UDPT database (its bz2 db_path file) into a new udpt log "
        "directory: registered and flagged torrents and their completed counters.",
    )
    importer.add_argument("file", type=Path, metavar="FILE", help="UDPT's db_path file")
    importer.add_argument(
        "--db", required=True, type=Path, metavar="DIR", help="udpt log directory to create"
    )
    importer.add_argument(
        "--actor",
        default="udpt-import",
        metavar="NAME",
        help="actor recorded in the imported admin events (default: %(default)s)",
    )
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Do what ``argv`` (default: ``sys.argv[1:]``) asks and return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors, already printed
        return stop.code if isinstance(stop.code, int) else 0

    if args.command == "import-udpt":
        # Imported here, as the daemon below: they load lmdb and sanic, which printing
        # the configuration or reporting its errors does not need.
        from udpt.importer.command import main_import

        return main_import(args.file, args.db, args.actor)

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"udpt: {error}", file=sys.stderr)
        return EXIT_USAGE
    for warning in config.warnings:
        print(f"udpt: warning: {warning}", file=sys.stderr)
    if args.print_config:
        sys.stdout.write(config.to_toml())
        return 0

    from udpt.daemon import run as run_daemon
    from udpt.lock import DataDirInUse

    try:
        return run_daemon(config, Path(args.config) if args.config else None)
    except DataDirInUse as error:
        print(f"udpt: {error}", file=sys.stderr)
        return EXIT_IN_USE


def main() -> NoReturn:
    """Console-script entry point (``udpt``) and ``python -m udpt``."""
    sys.exit(run())
