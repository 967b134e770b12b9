"""udpt: a UDP BitTorrent tracker (BEP 15) that reads UDPT's configuration and serves its REST
API, and keeps every announce and admin change as an event in an append-only LMDB log, so that
the live state is a replay of what was committed and nothing acknowledged is lost in a crash.
Run it with ``udpt -c udpt.toml`` (or ``python -m udpt``); see ``udpt.cli`` and ``udpt.config``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
