"""The engine process: connect, migrate, declare, consume; stop cleanly on SIGTERM.

Shutdown runs in a fixed order: stop taking messages, let the batch in hand finish
within the grace period (its messages are acked only after their commit, so whatever is
cut off is redelivered), then close the broker connection and the database pool.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from functools import partial

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPConnectionError

from engine.config import AgreementConfig
from engine.intake import topology
from engine.intake.consumer import IntakeConsumer, is_transient
from engine.retry import until_done
from engine.settings import Settings, redact_url
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.recorder import Recorder

log = structlog.get_logger(__name__)


async def connect_database(settings: Settings, stopping: asyncio.Event) -> asyncpg.Pool | None:
    """A migrated connection pool, retried until the database answers or we are stopped."""

    async def attempt() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            settings.database_url.get_secret_value(),
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


async def serve(
    settings: Settings,
    config: AgreementConfig,
    stopping: asyncio.Event | None = None,
    on_started: Callable[[IntakeConsumer], None] | None = None,
) -> None:
    """Run intake until SIGTERM or SIGINT (or ``stopping``); raise if the intake worker dies."""
    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
    log.info(
        "engine.starting",
        amqp_url=redact_url(settings.amqp_url.get_secret_value()),
        database_url=redact_url(settings.database_url.get_secret_value()),
        config_dir=str(settings.config_dir),
        departments=len(config.departments),
    )
    pool = await connect_database(settings, stopping)
    if pool is None:
        log.info("engine.stopped", reason="stopped before the database answered")
        return
    connection = await connect_broker(settings, stopping)
    if connection is None:
        await pool.close()
        log.info("engine.stopped", reason="stopped before the broker answered")
        return
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=settings.prefetch)
        declared = await topology.declare(channel)
        consumer = IntakeConsumer(
            declared.intake,
            declared.dead_letters,
            pool,
            Recorder(ClockMeter(config)),
            batch_size=settings.batch_size,
            retry_max_s=settings.db_retry_max_s,
        )
        worker = asyncio.create_task(consumer.run(stopping), name="intake")
        await consumer.start()
        log.info("engine.started", queue=topology.QUEUE, prefetch=settings.prefetch)
        if on_started is not None:
            on_started(consumer)
        stop_waiter = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({worker, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        if worker.done():
            worker.result()  # the worker only ends early by failing: let that stop us
        log.info("engine.stopping", grace_s=settings.shutdown_grace_s)
        try:
            await asyncio.wait_for(_drain(consumer, worker), timeout=settings.shutdown_grace_s)
        except TimeoutError:
            log.warning("engine.grace_expired", note="unfinished messages will be redelivered")
        log.info("engine.stopped", **vars(consumer.stats))
    finally:
        await connection.close()
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            pool.terminate()


async def _drain(consumer: IntakeConsumer, worker: asyncio.Task[None]) -> None:
    """Stop taking messages, then let the worker finish the batches in hand."""
    await consumer.stop_receiving()
    await worker
