"""Wiring: start-up, serving and shutdown of the tracker, in one process and one loop.

Start-up: open the log, restore the newest snapshot, replay the tail, then bind
and serve. Shutdown (SIGINT, SIGTERM, or the ``stop`` event in tests): stop
intake, commit what is pending, send the last replies, snapshot, close the log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from random import Random

import uvloop

from udpt.addresses import parse_bind_address
from udpt.clock import EventClock
from udpt.config import Config, Mode
from udpt.connection_ids import ConnectionIds, new_secret
from udpt.events.archive import Archive
from udpt.events.log import EventLog, LogError
from udpt.events.maintenance import LogMaintenance
from udpt.events.snapshots import recover
from udpt.events.writer import GroupCommitWriter
from udpt.projections import TrackerState
from udpt.tracker import Policy, Tracker, expiry_event
from udpt.udp import UdpEndpoint, bind_udp_socket

__all__ = ["Running", "policy_from_config", "run", "serve"]

log = logging.getLogger("udpt")

SECRET_KEY = b"connection_id_secret"
GC_THRESHOLDS = (50_000, 20, 100)
MAX_SWEEP_INTERVAL_S = 10
MAINTENANCE_INTERVAL_S = 1.0


def sweep_interval(config: Config) -> int:
    """Seconds between expiry sweeps: ``cleanup_interval``, but never more than 10 s.

    Expired peers must vanish promptly (PROTOCOL.md §6.7), and a sweep now costs
    only what it removes (projections/time_index.py), so UDPT's 600 s default
    would only keep dead peers on show for ten minutes.
    """
    return min(config.cleanup_interval, MAX_SWEEP_INTERVAL_S)


def policy_from_config(config: Config) -> Policy:
    udp = config.udp
    return Policy(
        dynamic=config.mode is Mode.DYNAMIC,
        interval=udp.announce_interval,
        default_numwant=udp.default_numwant,
        max_numwant_v4=udp.max_numwant,
        max_numwant_v6=udp.max_numwant_v6,
        max_scrape_hashes=udp.max_scrape_hashes,
        peer_timeout_ms=udp.peer_timeout * 1000,
        torrent_retention_ms=udp.torrent_retention * 1000,
        cleanup_interval_ms=sweep_interval(config) * 1000,
        max_torrents=udp.max_torrents,
    )


def load_secret(event_log: EventLog) -> bytes:
    """The connection-id secret, kept in the log so a restart does not invalidate ids."""
    secret = event_log.get_meta(SECRET_KEY)
    if secret is None:
        secret = new_secret()
        event_log.put_meta(SECRET_KEY, secret)
    return secret


@dataclass
class Running:
    """What a started tracker exposes to its caller (tests read addresses and state here)."""

    config: Config
    state: TrackerState
    writer: GroupCommitWriter
    tracker: Tracker
    endpoints: list[UdpEndpoint]
    http_address: tuple | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def udp_addresses(self) -> list[tuple]:
        return [endpoint.address for endpoint in self.endpoints]


async def serve(
    config: Config,
    *,
    udp_socket: socket.socket | None = None,
    http_socket: socket.socket | None = None,
    clock: EventClock | None = None,
    rng: Random | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[Running], None] | None = None,
) -> int:
    """Run the tracker until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is None).

    Tests pass pre-bound sockets on port 0, a manual clock and a seeded RNG.
    """
    started = time.monotonic()
    clock = clock or EventClock()
    # Bind first: a busy port fails fast, before any log is opened or created.
    if udp_socket is None:
        udp_socket = _bind_or_explain(
            "udp.bind_address",
            config.udp.bind_address,
            lambda: bind_udp_socket(*parse_bind_address(config.udp.bind_address)),
        )
    if config.http is not None and http_socket is None:
        from udpt.api.server import bind_http_socket

        http_address = config.http.bind_address
        http_socket = _bind_or_explain(
            "http.bind_address", http_address, lambda: bind_http_socket(http_address)
        )
    with EventLog(
        config.db_path, sync=config.log.fsync, map_size=config.log.map_size_mib << 20
    ) as event_log:
        # 1. Recover: newest snapshot + the tail of the log.
        state, snapshot_seq = recover(event_log)
        # The recovered state lives as long as the process: keep the cyclic GC from
        # walking it again and again, and let it run less often on the hot path, where
        # every datagram makes short-lived tuples.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        for _, last_event in event_log.events(state.last_seq, state.last_seq):
            clock.raise_floor(last_event.at_ms)  # event times never go backwards
        # Time passed while the tracker was down: expire now, before serving, so that
        # the first sweep after a long stop does not stall the loop with a mass expiry.
        policy = policy_from_config(config)
        now_ms = clock.now_ms()
        catch_up = expiry_event(policy, now_ms)
        if state.sweep_would_visit(catch_up):
            first, _ = event_log.append_events([catch_up])
            state.apply(first, catch_up)
        ids = ConnectionIds(load_secret(event_log), config.udp.connection_id_lifetime)
        writer = GroupCommitWriter(
            event_log,
            state.apply,
            linger_s=config.log.commit_linger_ms / 1000,
            max_pending=config.udp.max_pending,
        )
        tracker = Tracker(state, ids, policy, writer.submit, rng)
        tracker.last_expiry_ms = now_ms

        # 2. Serve UDP, then the API (none without an [http] table).
        endpoint = await UdpEndpoint.open(udp_socket, tracker, clock, config.udp.receive_buffer)
        running = Running(config, state, writer, tracker, [endpoint])
        api = None
        if config.http is not None:
            from udpt.api import ApiServer

            api = await ApiServer.start(config, running, clock, http_socket)
            running.http_address = api.address
        for ep in running.endpoints:
            running.tasks.extend(ep.run())
        running.tasks.append(
            asyncio.create_task(_expire_periodically(tracker, clock, config), name="expiry")
        )
        running.tasks.append(asyncio.create_task(_maintain_log(config, event_log, clock)))
        if config.log.snapshot_interval:
            running.tasks.append(
                asyncio.create_task(
                    _snapshot_periodically(config, state, snapshot_seq), name="snapshots"
                )
            )
        peers = state.peer_count()
        log.info(
            "udpt serving UDP on %s%s, mode %s; recovered %d torrents, %d peers, "
            "last seq %d (snapshot %d) in %.2f s",
            _fmt(endpoint.address),
            f", API on {_fmt(running.http_address)}" if running.http_address else "",
            config.mode.value,
            len(state.torrents),
            peers,
            state.last_seq,
            snapshot_seq,
            time.monotonic() - started,
        )

        if config.http is not None and not config.http.access_tokens:
            log.warning(
                "the REST API has no access tokens ([http.access_tokens]): every API "
                "request will be refused"
            )

        # 3. Serve until told to stop.
        stop = stop or _stop_on_signals()
        if ready is not None:
            ready(running)
        await stop.wait()

        # 4. Shutdown, in order: intake (the receive loops), pending commits, last replies
        #    (the sockets close only after them), snapshot.
        for task in running.tasks:
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)
        if api is not None:
            await api.close()
        await writer.close()
        for ep in running.endpoints:
            await ep.flush()
            ep.close()
        if state.last_seq and state.last_seq != snapshot_seq:
            event_log.put_snapshot(state.last_seq, state.snapshot())
        counters = tracker.counters
        log.info(
            "udpt stopped at seq %d: %d events committed in %d batches; dropped %d "
            "datagrams, %d with a bad connection id, shed %d (writer full) and %d "
            "(receive queue full)",
            state.last_seq,
            writer.committed,
            writer.batches,
            counters.dropped,
            counters.bad_connection_id,
            counters.shed,
            sum(ep.protocol.shed for ep in running.endpoints),
        )
    return 0


class StartupError(RuntimeError):
    """The tracker cannot start; the message is one line naming the setting at fault."""


def _bind_or_explain(key: str, address: str, bind: Callable[[], socket.socket]) -> socket.socket:
    try:
        return bind()
    except OSError as exc:
        raise StartupError(f"{key} {address}: cannot bind: {exc.strerror or exc}") from exc


def _fmt(address: tuple | None) -> str:
    if address is None:
        return "-"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _expire_periodically(tracker: Tracker, clock: EventClock, config: Config) -> None:
    """Time passes even when nobody announces: record it every sweep interval."""
    while True:
        await asyncio.sleep(sweep_interval(config))
        tracker.expire_if_due(clock.now_ms())


async def _snapshot_periodically(config: Config, state: TrackerState, last_seq: int) -> None:
    """Every ``snapshot_interval``, snapshot the log in a child process.

    The child folds the log itself (newest snapshot + tail), so the event loop
    never serialises a million peers; it only waits for the child to exit.
    """
    while True:
        await asyncio.sleep(config.log.snapshot_interval)
        seq = state.last_seq
        if seq == last_seq:
            continue
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "udpt.events.snapshots",
            str(config.db_path),
            str(seq),
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            status = await child.wait()
        except asyncio.CancelledError:
            child.kill()
            await child.wait()
            raise
        if status == 0:
            last_seq = seq
            log.debug("snapshot taken at seq %d", seq)
        else:
            log.warning("taking a snapshot at seq %d failed (exit %d)", seq, status)


async def _maintain_log(config: Config, event_log: EventLog, clock: EventClock) -> None:
    """Every second, compact, prune and archive the log (udpt.events.maintenance).

    On a thread of its own: the work decodes and encodes batches. A run cut short
    by shutdown is let finish (its transactions are short) before the log closes.
    """
    archive = Archive(config.log.archive_dir) if config.log.archive_dir else None
    maintenance = LogMaintenance(event_log, config.log.retention * 1000, archive)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-maintenance")
    try:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            job = pool.submit(maintenance.run, clock.now_ms())
            try:
                report = await asyncio.shield(asyncio.wrap_future(job))
            except (OSError, LogError) as exc:
                log.error("log maintenance failed (%s); trying again", exc)
            else:
                log.debug("log maintenance: %s", report)
    finally:
        pool.shutdown(wait=True)


def run(config: Config) -> int:
    """The daemon's entry point (``udpt [-c FILE]``): serve on uvloop until a signal."""
    logging.basicConfig(
        level=config.log_level.logging_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return uvloop.run(serve(config))
    except (LogError, StartupError) as exc:
        print(f"udpt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
