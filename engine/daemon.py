"""The engine process: connect, migrate, declare; consume, fire and notify until SIGTERM.

Three workers run side by side: intake (events into clocks), the scheduler (due steps
into the outbox) and the sender (the outbox out to e-mail, webhooks and AMQP). A worker
that dies stops the engine. Shutdown runs in a fixed order: stop taking messages, let
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

from engine.config import AgreementConfig
from engine.intake import topology
from engine.intake.consumer import IntakeConsumer, IntakeOptions
from engine.loops import until_done
from engine.metrics import (
    business_time_histogram,
    set_build_info,
    target_buckets,
)
from engine.notify.amqp import AmqpChannel
from engine.notify.compose import Composer
from engine.notify.email import SmtpChannel
from engine.notify.notice import Channel, ChannelName
from engine.notify.sender import OutboxSender, SenderOptions
from engine.notify.webhook import WebhookChannel
from engine.ops.gauges import GaugeRefresher
from engine.ops.http_port import READY_TIMEOUT_S, HttpPort, Parts
from engine.scheduler.firing import Firing
from engine.scheduler.loop import Scheduler, SchedulerOptions
from engine.settings import Settings, redact_url
from engine.sla_clock.meter import ClockMeter
from engine.store.errors import is_transient
from engine.store.migrate import migrate
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.outbox import PostgresOutboxStore
from engine.store.postgres.personal_data import PostgresPersonalData
from engine.store.postgres.reads import PostgresReads
from engine.store.recorder import Recorder
from engine.store.retention import PersonalDataPurger

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


class StartupError(Exception):
    """The engine cannot start as configured (its HTTP address is taken, say)."""


async def serve(
    settings: Settings,
    config: AgreementConfig,
    stopping: asyncio.Event | None = None,
    on_started: Callable[[IntakeConsumer], None] | None = None,
) -> None:
    """Run the engine until SIGTERM or SIGINT (or ``stopping``); raise if a worker dies."""
    if stopping is None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
    set_build_info()
    meter = ClockMeter(config)
    parts = Parts(meter, settings.database_url.get_secret_value())
    port = HttpPort(parts, settings.http_host, settings.http_port)
    try:
        await port.start()
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {settings.http_host}:{settings.http_port} "
            f"(SLA_ENGINE_HTTP_HOST, SLA_ENGINE_HTTP_PORT): {exc.strerror or exc}"
        ) from exc
    try:
        await _serve(settings, config, meter, port.parts, stopping, on_started)
    finally:
        await port.stop()


async def _serve(
    settings: Settings,
    config: AgreementConfig,
    meter: ClockMeter,
    parts: Parts,
    stopping: asyncio.Event,
    on_started: Callable[[IntakeConsumer], None] | None,
) -> None:
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
    parts.tickets = PostgresReads(pool, acquire_timeout_s=READY_TIMEOUT_S)
    connection = await connect_broker(settings, stopping)
    if connection is None:
        await pool.close()
        log.info("engine.stopped", reason="stopped before the broker answered")
        return
    parts.broker = connection
    channels = _channels(settings, connection)
    recorder = Recorder(meter, max_events_per_ticket=settings.max_events_per_ticket)
    refresher = GaugeRefresher(
        PostgresReads(pool),
        connection,
        (topology.QUEUE, topology.DEAD_LETTER_QUEUE),
        config.calendars[config.general_contract.default_calendar].zone,
        interval_s=settings.gauges_refresh_s,
    )
    purger = PersonalDataPurger(
        PostgresPersonalData(pool),
        retention_days=settings.personal_data_retention_days,
        interval_s=settings.personal_data_purge_interval_s,
    )
    workers: set[asyncio.Task[None]] = set()
    try:
        await until_done(
            partial(measure_unstepped, pool, recorder),
            transient=is_transient,
            stopping=stopping,
            max_delay_s=settings.db_retry_max_s,
            event="store.unavailable",
        )
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=settings.prefetch)
        declared = await topology.declare(channel)
        consumer = IntakeConsumer(
            declared.intake,
            declared.dead_letters,
            pool,
            recorder,
            IntakeOptions.from_settings(settings),
            business_time=business_time_histogram(target_buckets(config)),
        )
        sender = OutboxSender(
            PostgresOutboxStore(pool),
            channels,
            SenderOptions.from_settings(settings),
            transient=is_transient,
        )
        scheduler = Scheduler(
            PostgresFiringStore(pool, database_url=settings.database_url.get_secret_value()),
            Composer(config),
            SchedulerOptions.from_settings(settings),
            transient=is_transient,
            on_fired=partial(_wake_sender, sender),
        )
        # Intake stops first, on ``stopping``, and finishes its batches while the
        # scheduler and the sender still run; they stop after it, on ``rest_stopping``.
        rest_stopping = asyncio.Event()
        workers |= {
            asyncio.create_task(consumer.run(stopping), name="intake"),
            asyncio.create_task(scheduler.run(rest_stopping), name="scheduler"),
            asyncio.create_task(sender.run(rest_stopping), name="sender"),
        }
        await consumer.start()
        parts.consuming = lambda: consumer.consuming
        refresher.start()
        purger.start()
        log.info("engine.started", queue=topology.QUEUE, prefetch=settings.prefetch,
                 channels=sorted(channels))  # fmt: skip
        if on_started is not None:
            on_started(consumer)
        stop_waiter = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({*workers, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        for worker in done & workers:
            worker.result()  # a worker only ends early by failing: let that stop us
        log.info("engine.stopping", grace_s=settings.shutdown_grace_s)
        intake = next(w for w in workers if w.get_name() == "intake")
        try:
            await asyncio.wait_for(
                _drain(consumer, intake, rest_stopping, workers),
                timeout=settings.shutdown_grace_s,
            )
        except TimeoutError:
            log.warning("engine.grace_expired", note="unfinished messages will be redelivered")
        log.info("engine.stopped", **vars(consumer.stats), steps_fired=scheduler.fired,
                 notices_sent=sender.sent, notices_failed=sender.failed)  # fmt: skip
    finally:
        parts.consuming = lambda: False
        purger.stop()
        await refresher.stop()
        for worker in workers:
            worker.cancel()
        # Let the cancelled workers unwind (roll back, release) before their pool closes.
        await asyncio.gather(*workers, return_exceptions=True)
        for notify_channel in channels.values():
            await notify_channel.close()
        await connection.close()
        parts.broker = parts.tickets = None
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            pool.terminate()


async def measure_unstepped(pool: asyncpg.Pool, recorder: Recorder) -> None:
    """Measure again the tickets whose clocks were written before steps were stored.

    Clocks recorded before migration 002 have no steps' instants, so the scheduler
    could not fire them; measured again from their events they get them. Paged by
    ticket id, so a ticket that cannot be measured is passed over, not met again.
    """
    after = ""
    while True:
        async with pool.acquire() as connection:
            batch = await PostgresReads(connection).tickets_without_steps(after, 1000)
            if not batch:
                return
            after = batch[-1]
            measured = await recorder.remeasure(connection, batch, datetime.now(UTC))
        log.info("store.remeasured", tickets=measured)


def _wake_sender(sender: OutboxSender, firing: Firing) -> None:
    """Wake the sender for the notices of a firing (after its commit)."""
    if firing.notices:
        sender.wake()


def _channels(
    settings: Settings, connection: AbstractRobustConnection
) -> dict[ChannelName, Channel]:
    """The delivery channels the settings configure; AMQP and webhooks always."""
    channels: dict[ChannelName, Channel] = {
        "webhook": WebhookChannel(
            secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        ),
        "amqp": AmqpChannel(connection),
    }
    if settings.smtp_host is not None:
        channels["email"] = SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            allow_plain_auth=settings.smtp_allow_plain_auth,
        )
    return channels


async def _drain(
    consumer: IntakeConsumer,
    intake: asyncio.Task[None],
    rest_stopping: asyncio.Event,
    workers: set[asyncio.Task[None]],
) -> None:
    """Stop taking messages, let intake finish its batches, then stop the others."""
    await consumer.stop_receiving()
    await intake
    rest_stopping.set()
    await asyncio.gather(*workers)
