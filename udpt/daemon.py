"""Wiring: start-up, serving and shutdown of the tracker, in one process and one loop.

``start`` opens the log, recovers the state (newest snapshot + tail), records
the time that passed while the tracker was down, then serves UDP and the API.
``stop`` undoes it in order: intake first (the receive loops and the API), then
the pending commits and their replies, then the sockets, a last snapshot and
the log. ``serve`` runs one between the other until told to stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any

import uvloop

from udpt.addresses import parse_bind_address
from udpt.api import ApiServer
from udpt.api.auth import TokenChecker
from udpt.api.operator import OperatorRoutes
from udpt.api.routes import TorrentRoutes
from udpt.api.server import bind_http_socket
from udpt.clock import EventClock
from udpt.config import Config
from udpt.connection_ids import ConnectionIds, new_secret
from udpt.core import CORE_NAME
from udpt.counters import Counters
from udpt.events.archive import Archive
from udpt.events.log import EventLog, LogError
from udpt.events.maintenance import LogMaintenance
from udpt.events.writer import GroupCommitWriter, Writer
from udpt.history.recovery import recover
from udpt.history.snapshot_fork import fork_snapshot
from udpt.intake import Intake
from udpt.lock import DataDirLock
from udpt.logs import configure_logging, log_admin_changes
from udpt.observe import Observer, StartupProgress, describe_horizon
from udpt.projections import TrackerState
from udpt.reload import reload_on_sighup
from udpt.tracker import Policy, Tracker
from udpt.udp import UdpEndpoint, bind_udp_socket, open_endpoint

if TYPE_CHECKING:
    from udpt.cluster.link import StreamLink
    from udpt.cluster.writer import ClusterWriter

__all__ = ["Running", "StartupError", "run", "serve", "start", "stop"]

log = logging.getLogger("udpt")

SECRET_KEY = b"connection_id_secret"
GC_THRESHOLDS = (50_000, 20, 100)
MAINTENANCE_INTERVAL_S = 1.0
SNAPSHOT_FILE = "snapshot.partial"
"""Where the snapshot child writes, in the log's directory; stored in the log, then removed."""
SWEEP_WAIT_S = 0.05
"""How often a due snapshot looks again whether the sweep being folded is done."""


class StartupError(RuntimeError):
    """The tracker cannot start; the message is one line naming the setting at fault."""


@dataclass
class Running:
    """A started tracker: what ``stop`` closes, and what tests read (addresses, state)."""

    config: Config
    event_log: EventLog
    state: TrackerState
    tracker: Tracker
    intake: Intake
    writer: Writer
    counters: Counters
    snapshot_seq: int
    observer: Observer
    endpoints: list[UdpEndpoint] = field(default_factory=list)
    api: ApiServer | None = None
    tokens: TokenChecker | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def udp_addresses(self) -> list[tuple[Any, ...]]:
        return [endpoint.address for endpoint in self.endpoints]

    @property
    def http_address(self) -> tuple[Any, ...] | None:
        return self.api.address if self.api is not None else None


def load_secret(event_log: EventLog) -> bytes:
    """The connection-id secret, kept in the log so a restart does not invalidate ids."""
    secret = event_log.get_meta(SECRET_KEY)
    if secret is None:
        secret = new_secret()
        event_log.put_meta(SECRET_KEY, secret)
    return secret


async def start(
    config: Config,
    udp_socket: socket.socket,
    http_socket: socket.socket | None,
    clock: EventClock,
    rng: Random | None = None,
) -> Running:
    """Open the log, recover, catch up on expiry, and serve on the given sockets."""
    started = time.monotonic()
    event_log = EventLog(
        config.db_path, sync=config.log.fsync, map_size=config.log.map_size_mib << 20
    )
    try:
        running = await _open(config, event_log, clock, rng)
    except BaseException:
        event_log.close()
        raise
    try:
        await _serve_sockets(running, udp_socket, http_socket, clock)
    except BaseException:
        await stop(running)
        raise
    _log_started(running, time.monotonic() - started)
    return running


async def _open(
    config: Config, event_log: EventLog, clock: EventClock, rng: Random | None
) -> Running:
    # 1. Recover: newest snapshot + the tail of the log.
    log.info("udpt starting on %s", describe_horizon(event_log))
    state, snapshot_seq = recover(event_log, progress=StartupProgress(event_log.last_seq()))
    # The recovered state lives as long as the process: keep the cyclic GC from walking
    # it again and again, and let it run less often on the hot path, where every
    # datagram makes short-lived tuples.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    for _, last_event in event_log.events(state.last_seq, state.last_seq):
        clock.raise_floor(last_event.at_ms)  # event times never go backwards
    # 2. The road every record takes: decisions -> intake -> writer -> fold -> answer.
    #    In a cluster the writer is JetStream's, and the secret the cluster's.
    link = await _open_link(config) if config.cluster is not None else None
    try:
        secret = load_secret(event_log) if link is None else await _cluster_secret(config, link)
        policy = Policy.from_config(config)
        ids = ConnectionIds(secret, config.udp.connection_id_lifetime)
        tracker = Tracker(state, ids, policy, rng)
        counters = Counters()
        intake = Intake(state, tracker, counters)
        writer: Writer
        cluster_writer = None
        if link is None:
            writer = GroupCommitWriter(
                event_log,
                log_admin_changes(intake.committed),
                intake.failed,
                linger_s=config.log.commit_linger_ms / 1000,
                max_pending=config.udp.max_pending,
            )
        else:
            writer = cluster_writer = _cluster_writer(config, event_log, intake, link)
    except BaseException:
        if link is not None:
            await link.close()
        raise
    intake.attach(writer)
    observer = Observer(counters, state, writer, event_log, clock.now_ms)
    observer.quotas = tracker.quotas
    try:
        if cluster_writer is not None:
            # A cluster node first folds what the stream holds beyond its local copy.
            await _catch_up(config, cluster_writer)
            observer.cluster = cluster_writer
        # 3. Time passed while the tracker was down: expire now, before serving, so that
        #    the first sweep after a long stop does not stall the loop with a mass expiry.
        intake.sweep(clock.now_ms())
        await writer.drain()
        await intake.drain()
    except BaseException:
        await writer.close()
        raise
    return Running(
        config, event_log, state, tracker, intake, writer, counters, snapshot_seq, observer
    )


def _cluster_writer(
    config: Config, event_log: EventLog, intake: Intake, link: StreamLink
) -> ClusterWriter:
    from udpt.cluster.writer import ClusterWriter

    return ClusterWriter(
        event_log,
        link,
        log_admin_changes(intake.committed),
        intake.failed,
        linger_s=config.log.commit_linger_ms / 1000,
        max_pending=config.udp.max_pending,
    )


async def _catch_up(config: Config, cluster_writer: ClusterWriter) -> None:
    """``ClusterWriter.start``; a JetStream that stops answering there ends the start in one
    line, exit 1, as at ``_open_link`` (a log that cannot continue says so as a LogError)."""
    try:
        await cluster_writer.start()
    except LogError:
        raise
    except Exception as exc:
        assert config.cluster is not None
        raise StartupError(
            f"cluster.stream {config.cluster.stream}: cannot read the stream's state: {exc!r}"
        ) from exc


async def _open_link(config: Config) -> StreamLink:
    """Connect to NATS JetStream; a node that cannot does not start (one line, exit 1)."""
    # Imported here: a tracker without [cluster] never loads nats-py.
    from udpt.cluster.link import open_link

    cluster = config.cluster
    assert cluster is not None
    try:
        return await open_link(cluster, config.log.retention)
    except Exception as exc:
        urls = ", ".join(cluster.nats_url)
        raise StartupError(
            f"cluster.nats_url {urls}: cannot reach NATS JetStream: {exc!r}"
        ) from exc


async def _cluster_secret(config: Config, link: StreamLink) -> bytes:
    """The connection-id secret every node shares, so an id from one is valid at all."""
    from udpt.cluster.link import shared_secret

    cluster = config.cluster
    assert cluster is not None
    try:
        return await shared_secret(link, new_secret(), cluster.stream)
    except Exception as exc:  # one line, exit 1, as for a NATS that cannot be reached
        raise StartupError(
            f"cluster.stream {cluster.stream}: cannot read the cluster's secret: {exc!r}"
        ) from exc


async def _serve_sockets(
    running: Running,
    udp_socket: socket.socket,
    http_socket: socket.socket | None,
    clock: EventClock,
) -> None:
    config = running.config
    endpoint = await open_endpoint(
        udp_socket, running.tracker, running.intake, clock, config.udp.receive_buffer
    )
    running.endpoints.append(endpoint)
    running.observer.kernel_drops = lambda: _kernel_drops(running.endpoints)
    if config.http is not None:
        running.tokens = TokenChecker(config.http.access_tokens)
        routes = TorrentRoutes(
            running.state, running.tracker, running.intake, clock, running.tokens
        )
        operator = OperatorRoutes(running.observer, running.tokens)
        running.api = await ApiServer.start(config.http, routes, http_socket, operator=operator)
    running.tasks.extend(running.observer.start())
    for ep in running.endpoints:
        running.tasks.extend(ep.run())
    running.tasks.append(
        asyncio.create_task(_expire_periodically(running.intake, clock), name="expiry")
    )
    running.tasks.append(asyncio.create_task(_maintain_log(running, clock), name="log"))
    if config.log.snapshot_interval:
        running.tasks.append(asyncio.create_task(_snapshot_periodically(running), name="snapshots"))


def _kernel_drops(endpoints: list[UdpEndpoint]) -> int | None:
    """Datagrams the kernel dropped on every endpoint's socket (None: it does not say)."""
    counts = [endpoint.kernel_drops() for endpoint in endpoints]
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def _log_started(running: Running, seconds: float) -> None:
    config, state = running.config, running.state
    api = f", API on {_fmt(running.http_address)}" if running.http_address else ""
    log.info(
        "udpt serving UDP on %s%s, mode %s, %s core; recovered %d torrents, %d peers, "
        "last seq %d (snapshot %d) in %.2f s",
        ", ".join(_fmt(address) for address in running.udp_addresses),
        api,
        config.mode.value,
        CORE_NAME,
        len(state.torrents),
        state.peer_count(),
        state.last_seq,
        running.snapshot_seq,
        seconds,
    )
    if config.http is not None and not config.http.access_tokens:
        log.warning(
            "the REST API has no access tokens ([http.access_tokens]): every API "
            "request will be refused"
        )


async def stop(running: Running) -> None:
    """Shut down in order; each step runs even if an earlier one failed."""
    try:
        # 1. Intake: no new datagrams or API requests (those in progress finish).
        for task in running.tasks:
            task.cancel()
        await asyncio.gather(*running.tasks, return_exceptions=True)
        if running.api is not None:
            await running.api.close()
        # 2. Commit what is pending; its replies go out while the sockets are open.
        await running.writer.close()
        await running.intake.drain()
    finally:
        # 3. Sockets, a last snapshot, the log.
        for endpoint in running.endpoints:
            endpoint.close()
        try:
            state = running.state
            if state.last_seq and state.last_seq != running.snapshot_seq:
                running.event_log.put_snapshot(state.last_seq, state.snapshot())
        finally:
            running.event_log.close()
    _log_stopped(running)


def _log_stopped(running: Running) -> None:
    counters, writer = running.counters, running.writer
    dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(counters.dropped.items()))
    log.info(
        "udpt stopped at seq %d: %d events committed in %d batches; datagrams dropped: %s",
        running.state.last_seq,
        writer.committed,
        writer.batches,
        dropped or "none",
    )


async def serve(
    config: Config,
    *,
    udp_socket: socket.socket | None = None,
    http_socket: socket.socket | None = None,
    clock: EventClock | None = None,
    rng: Random | None = None,
    stop_event: asyncio.Event | None = None,
    ready: Callable[[Running], None] | None = None,
    config_path: Path | None = None,
) -> int:
    """Run the tracker until ``stop_event`` is set (or SIGINT/SIGTERM when it is None).

    Tests pass pre-bound sockets on port 0, a manual clock and a seeded RNG. With
    signals, SIGHUP re-reads ``config_path`` (udpt/reload.py).
    """
    # One daemon per log: a second one stops here, before it binds or opens anything.
    with DataDirLock(config.db_path):
        # Bind first: a busy port fails fast, before any log is opened or created.
        if udp_socket is None:
            udp_socket = _bind_or_explain(
                "udp.bind_address",
                config.udp.bind_address,
                lambda: bind_udp_socket(*parse_bind_address(config.udp.bind_address)),
            )
        if config.http is not None and http_socket is None:
            http_address = config.http.bind_address
            http_socket = _bind_or_explain(
                "http.bind_address", http_address, lambda: bind_http_socket(http_address)
            )
        running = await start(config, udp_socket, http_socket, clock or EventClock(), rng)
        try:
            reload_path = config_path if stop_event is None else None
            set_tokens = running.tokens.update if running.tokens is not None else None
            with (
                _signals_set(stop_event) as stopping,
                reload_on_sighup(reload_path, config, set_tokens),
            ):
                if ready is not None:
                    ready(running)
                await stopping.wait()
        finally:
            await stop(running)
    return 0


def _bind_or_explain(key: str, address: str, bind: Callable[[], socket.socket]) -> socket.socket:
    try:
        return bind()
    except OSError as exc:
        raise StartupError(f"{key} {address}: cannot bind: {exc.strerror or exc}") from exc


def _fmt(address: tuple[Any, ...] | None) -> str:
    if address is None:
        return "-"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextmanager
def _signals_set(stop_event: asyncio.Event | None) -> Iterator[asyncio.Event]:
    """The event that ends serving: ``stop_event``, or SIGINT/SIGTERM (restored afterwards)."""
    if stop_event is not None:
        yield stop_event
        return
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    try:
        yield stopping
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def _expire_periodically(intake: Intake, clock: EventClock) -> None:
    """Time passes even when nobody announces: record it every sweep interval."""
    interval_s = intake.tracker.policy.sweep_interval_ms / 1000
    while True:
        await asyncio.sleep(interval_s)
        intake.sweep_if_due(clock.now_ms())


async def _snapshot_periodically(running: Running) -> None:
    """Every ``snapshot_interval``, snapshot the live state in a forked child.

    The child writes the state as it was at the fork (udpt.history.snapshot_fork);
    the event loop only forks, waits for the child, and stores its file from a
    thread. It forks between two folded events, never halfway through a sweep.
    """
    config, state, intake = running.config, running.state, running.intake
    path = config.db_path / SNAPSHOT_FILE
    last_seq = running.snapshot_seq
    while True:
        await asyncio.sleep(config.log.snapshot_interval)
        while intake.sweeping:
            await asyncio.sleep(SWEEP_WAIT_S)
        seq = state.last_seq
        if seq == last_seq:
            continue
        pid = fork_snapshot(state, path)
        try:
            status = await _exit_status(pid)
            stored = status == 0 and await _store_snapshot(running.event_log, seq, path)
        finally:
            path.unlink(missing_ok=True)
        if stored:
            last_seq = seq
            running.observer.snapshot_taken(seq)
            log.debug("snapshot taken at seq %d", seq)
        elif status:
            code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
            log.warning("taking a snapshot at seq %d failed (exit %d)", seq, code)


async def _store_snapshot(event_log: EventLog, seq: int, path: Path) -> bool:
    """Store the child's file in the log from a thread; whether it was stored.

    Cancelled (at shutdown), it lets the store finish first: the log closes after.
    """
    storing = asyncio.get_running_loop().run_in_executor(
        None, event_log.put_snapshot_file, seq, path
    )
    try:
        await asyncio.shield(storing)
    except asyncio.CancelledError:
        await storing
        raise
    except Exception:  # the log stays as it was; the next interval tries again
        log.exception("storing the snapshot at seq %d failed", seq)
        return False
    return True


async def _exit_status(pid: int) -> int:
    """The wait status of child ``pid``, waited for on a thread; killed if we are cancelled."""
    waiting = asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
    try:
        _, status = await asyncio.shield(waiting)
    except asyncio.CancelledError:
        os.kill(pid, signal.SIGKILL)
        await waiting
        raise
    return status


async def _maintain_log(running: Running, clock: EventClock) -> None:
    """Every second, compact, prune and archive the log (udpt.events.maintenance).

    On a thread of its own: the work decodes and encodes batches. A run cut short
    by shutdown is let finish (its transactions are short) before the log closes.
    """
    config = running.config.log
    archive = Archive(config.archive_dir) if config.archive_dir else None
    maintenance = LogMaintenance(running.event_log, config.retention * 1000, archive)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-maintenance")
    try:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            job = pool.submit(maintenance.run, clock.now_ms())
            try:
                report = await asyncio.shield(asyncio.wrap_future(job))
            except Exception:  # a full disk, a bug: the log stays as it was; try again
                log.exception("log maintenance failed; trying again in a second")
            else:
                log.debug("log maintenance: %s", report)
                if report.pruned:  # the log's horizon moved: read it on the same thread
                    first = await asyncio.wrap_future(pool.submit(running.event_log.first_seq))
                    running.observer.log_pruned(first)
    finally:
        pool.shutdown(wait=True)


def run(config: Config, config_path: Path | None = None) -> int:
    """The daemon's entry point (``udpt [-c FILE]``): serve on uvloop until a signal."""
    configure_logging(config.log_level, config.log_format)
    try:
        return uvloop.run(serve(config, config_path=config_path))
    except (LogError, StartupError) as exc:
        print(f"udpt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
