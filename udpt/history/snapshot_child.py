"""``python -m udpt.history.snapshot_child DB [SEQ]``: store a snapshot of the log at DB.

The daemon runs this in a child process every ``[log] snapshot_interval``: the
child folds the log itself (newest snapshot + tail) and prints the seq of the
snapshot it stored, so the daemon's event loop never serialises the state.
"""

from __future__ import annotations

import argparse
import sys

from udpt.events.log import EventLog
from udpt.history.recovery import take_snapshot

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store a snapshot of a udpt log.")
    parser.add_argument("db_path")
    parser.add_argument("seq", type=int, nargs="?", help="fold up to this event (default: all)")
    args = parser.parse_args(argv)
    with EventLog(args.db_path) as log:
        print(take_snapshot(log, args.seq))
    return 0


if __name__ == "__main__":
    sys.exit(main())
