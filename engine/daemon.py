"""The engine process: connect, migrate, declare; consume, fire and notify until SIGTERM.

Three workers run side by side: intake (events into clocks), the scheduler (due steps
into the outbox) and the sender (the outbox out to e-mail, webhooks and AMQP). A worker
that dies stops the engine. SIGHUP loads the agreement configuration again
(``engine.ops.reload``). Shutdown runs in a fixed order: stop taking messages, let
the batch in hand finish within the grace period (its messages are acked only after
their commit, so whatever is cut off is redelivered), stop the scheduler and let the
sender finish the deliveries under way, then close channels, broker and database pool.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPConnectionError

from engine.assembly import Engine
from engine.config import AgreementConfig, LoadedConfig
from engine.intake.consumer import IntakeConsumer
from engine.intake.recorder import Recorder
from engine.loops import until_done
from engine.metrics import set_build_info
from engine.ops.http_port import HttpPort, Parts
from engine.ops.reload import Reloader, publish_in_force
from engine.running import ConfigInForce, RunningConfig
from engine.settings import Settings, redact_url
from engine.store.connection import server_settings
from engine.store.errors import is_transient
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.reads import TicketReads

log = structlog.get_logger(__name__)


async def connect_database(settings: Settings, stopping: asyncio.Event) -> asyncpg.Pool | None:
    """A migrated connection pool, retried until the database answers or we are stopped."""

    async def attempt() -> asyncpg.Pool:
        url = settings.database_url.get_secret_value()
        pool = await asyncpg.create_pool(
            url,
            server_settings=server_settings(url, "pool"),
            min_size=1,
            max_size=4,
            # A statement stuck on a stalled network fails (and is retried) rather than
            # hold a batch, and shutdown, for ever.
            command_timeout=60,
        )
        try:
            async with pool.acquire() as connection:
                applied = await migrate(connection)
        except BaseException:
            pool.terminate()  # the next attempt makes a new pool
            raise
        for migration in applied:
            log.info("store.migrated", version=migration.version, name=migration.name)
        return pool

    return await until_done(
        attempt,
        transient=is_transient,
        stopping=stopping,
        max_delay_s=settings.db_retry_max_s,
        event="store.unavailable",
    )


def port_reads_pool(settings: Settings) -> asyncpg.Pool:
    """The HTTP port's own pool: its reads never take a connection intake, the
    scheduler or the sender wait for, and a frontend's flood of worklist requests waits
    here instead. Read only and with a statement timeout, enforced by PostgreSQL: the
    port changes nothing, and a slow query ends rather than hold a connection. Opens
    its connections when asked (``min_size`` 0), so it needs no retrying of its own."""
    url = settings.database_url.get_secret_value()
    # At least a millisecond: 0 would mean no timeout at all to PostgreSQL.
    timeout_ms = max(1, round(settings.http_statement_timeout_s * 1000))
    return asyncpg.create_pool(
        url,
        server_settings={
            **server_settings(url, "http"),
            "default_transaction_read_only": "on",
            "statement_timeout": str(timeout_ms),
        },
        min_size=0,
        max_size=settings.http_db_connections,
        command_timeout=settings.http_statement_timeout_s + 5,
    )


async def connect_broker(
    settings: Settings, stopping: asyncio.Event
) -> AbstractRobustConnection | None:
    """A robust broker connection, retried until RabbitMQ answers or we are stopped.

    Once connected, aio-pika's robust connection reconnects by itself; only the first
    connection needs retrying, so that an engine started before its broker waits
    instead of exiting (and being restarted, over and over, by its supervisor).
    """
    return await until_done(
        partial(aio_pika.connect_robust, settings.amqp_url.get_secret_value()),
        transient=lambda exc: isinstance(exc, OSError | AMQPConnectionError),
        stopping=stopping,
        max_delay_s=settings.db_retry_max_s,
        event="broker.unavailable",
    )


# How long an HTTP request waits for one of the port's connections before it is
# answered 503: a burst of frontends queues briefly, a flood is told to come back.
PORT_ACQUIRE_TIMEOUT_S = 5.0


class StartupError(Exception):
    """The engine cannot start as configured (its HTTP address is taken, say)."""


async def serve(
    settings: Settings,
    config: LoadedConfig | AgreementConfig,
    stopping: asyncio.Event | None = None,
    on_started: Callable[[IntakeConsumer], None] | None = None,
) -> None:
    """Run the engine until SIGTERM or SIGINT (or ``stopping``); raise if a worker dies.

    SIGHUP, or POST /reload from this host, loads ``settings.config_dir`` again.
    """
    if isinstance(config, AgreementConfig):  # a caller that loaded it without its version
        config = LoadedConfig(config, "unversioned")
    running = RunningConfig(ConfigInForce(config, datetime.now(UTC)))
    reloader = Reloader(running, settings.config_dir)
    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
    set_build_info()
    publish_in_force(running.current)
    parts = Parts(
        running,
        settings.database_url.get_secret_value(),
        reload=reloader.reload,
        read_timeout_s=settings.http_statement_timeout_s,
    )
    port = HttpPort(parts, settings.http_host, settings.http_port)
    try:
        await port.start()
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {settings.http_host}:{settings.http_port} "
            f"(SLA_ENGINE_HTTP_HOST, SLA_ENGINE_HTTP_PORT): {exc.strerror or exc}"
        ) from exc
    try:
        await _serve(settings, running, port.parts, stopping, on_started)
    finally:
        await port.stop()
        await reloader.close()


async def _serve(
    settings: Settings,
    running: RunningConfig,
    parts: Parts,
    stopping: asyncio.Event,
    on_started: Callable[[IntakeConsumer], None] | None,
) -> None:
    """Connect, remeasure, start the engine; at ``stopping`` drain it, then close it."""
    log.info(
        "engine.starting",
        amqp_url=redact_url(settings.amqp_url.get_secret_value()),
        database_url=redact_url(settings.database_url.get_secret_value()),
        config_dir=str(settings.config_dir),
        config_version=running.current.version,
        departments=len(running.current.config.departments),
    )
    pool = await connect_database(settings, stopping)
    if pool is None:
        log.info("engine.stopped", reason="stopped before the database answered")
        return
    reads_pool = await port_reads_pool(settings)
    try:
        parts.tickets = PostgresReads(reads_pool, acquire_timeout_s=PORT_ACQUIRE_TIMEOUT_S)
        await _run_engine(settings, running, parts, stopping, on_started, pool)
    finally:
        parts.tickets = None
        # A request still reading holds its connection: the stop waits for it this long,
        # then cuts it (its client gets a 503), as the engine's own pool does.
        try:
            await asyncio.wait_for(reads_pool.close(), timeout=5)
        except TimeoutError:
            reads_pool.terminate()


async def _run_engine(
    settings: Settings,
    running: RunningConfig,
    parts: Parts,
    stopping: asyncio.Event,
    on_started: Callable[[IntakeConsumer], None] | None,
    pool: asyncpg.Pool,
) -> None:
    """Connect to the broker, then run the engine on ``pool`` until ``stopping``."""
    connection = await connect_broker(settings, stopping)
    if connection is None:
        await pool.close()
        log.info("engine.stopped", reason="stopped before the broker answered")
        return
    parts.broker = connection
    recorder = Recorder(
        running.meter,
        PostgresRecordingStore(pool),
        cache_size=settings.history_cache_events,
        max_events_per_ticket=settings.max_events_per_ticket,
    )
    engine = Engine(settings, running, pool, connection, recorder, parts)
    try:
        # First, clocks written before migration 002 get the steps the scheduler fires.
        await until_done(
            partial(measure_unstepped, PostgresReads(pool), recorder),
            transient=is_transient,
            stopping=stopping,
            max_delay_s=settings.db_retry_max_s,
            event="store.unavailable",
        )
        workers = await engine.start(stopping)
        if on_started is not None:
            on_started(workers.consumer)
        await engine.until_stopped(stopping)
        await engine.stop(workers)
    finally:
        await engine.close()


async def measure_unstepped(reads: TicketReads, recorder: Recorder) -> None:
    """Measure again the tickets whose clocks were written before steps were stored.

    Clocks recorded before migration 002 have no steps' instants, so the scheduler
    could not fire them; measured again from their events they get them. Paged by
    ticket id, so a ticket that cannot be measured is passed over, not met again.
    """
    after = ""
    while True:
        batch = await reads.tickets_without_steps(after, 1000)
        if not batch:
            return
        after = batch[-1]
        measured = await recorder.remeasure(batch, datetime.now(UTC))
        log.info("store.remeasured", tickets=measured)
