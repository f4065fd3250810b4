"""The engine's parts, built from the settings, and the orders they start and stop in.

Built on one database pool and one broker connection: the delivery channels, the gauge
refresh and the personal-data purge at once; intake, the scheduler and the sender once
the broker's topology is declared. They start with the workers running before any
message is taken, and stop with intake first: it finishes its batches while the
scheduler and the sender still run, and the workers unwind before the pool closes.
The messages waiting in the queue are counted before intake takes any: the scheduler
waits for intake to record them (``engine.intake.startup``) before it fires.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from aio_pika.abc import AbstractRobustConnection

from engine.config import AgreementConfig
from engine.feed.publisher import FeedPublisher
from engine.intake import topology
from engine.intake.consumer import IntakeConsumer, IntakeOptions
from engine.intake.recorder import Recorder
from engine.intake.startup import QueueDepth, StartupBacklog
from engine.loops import Every
from engine.metrics import business_time_histogram, target_buckets
from engine.monthly.job import MonthlyReportJob, MonthlyReports
from engine.monthly.satisfaction import satisfaction_source
from engine.notify.amqp import AmqpChannel
from engine.notify.email import SmtpChannel
from engine.notify.notice import Channel, ChannelName
from engine.notify.sender import OutboxSender, SenderOptions
from engine.notify.webhook import WebhookChannel
from engine.ops.gauges import GaugeRefresher
from engine.ops.http_port import Parts
from engine.running import RunningConfig
from engine.scheduler.firing import Firing
from engine.scheduler.loop import Scheduler, SchedulerOptions
from engine.settings import Settings
from engine.store.errors import is_transient
from engine.store.postgres.feed import PostgresFeedStore
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.monthly import PostgresMonthlyReportStore
from engine.store.postgres.outbox import PostgresOutboxStore
from engine.store.postgres.personal_data import PostgresPersonalData
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.statistics import StatisticsKeeper
from engine.store.retention import PersonalDataPurger

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Workers:
    """The four workers that run side by side, each as a task of its own."""

    consumer: IntakeConsumer
    scheduler: Scheduler
    sender: OutboxSender
    feed: FeedPublisher


class Engine:
    """The engine's parts on one pool and one broker connection, built from the settings.

    ``parts`` is what the HTTP port reads of them: readiness, the broker, the database.
    """

    def __init__(
        self,
        settings: Settings,
        running: RunningConfig,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        recorder: Recorder,
        parts: Parts,
    ) -> None:
        self._settings = settings
        self._running = running  # the configuration in force, read by each part as it works
        self._pool = pool
        self._connection = connection
        self._recorder = recorder
        self._parts = parts
        self._channels = _channels(settings, connection)
        self._refresher = GaugeRefresher(
            PostgresReads(pool),
            connection,
            (topology.QUEUE, topology.DEAD_LETTER_QUEUE),
            lambda: _default_zone(running.current.config),
            interval_s=settings.gauges_refresh_s,
        )
        self._purger = PersonalDataPurger(
            PostgresPersonalData(pool),
            retention_days=settings.personal_data_retention_days,
            interval_s=settings.personal_data_purge_interval_s,
        )
        self._statistics = (
            Every(StatisticsKeeper(pool).refresh, settings.analyze_interval_s, "planner-statistics")
            if settings.analyze_interval_s
            else None
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}  # the workers', once started
        self._feed: FeedPublisher | None = None
        self._monthly: MonthlyReportJob | None = None  # once started, when the settings ask
        self._backlog: StartupBacklog | None = None  # once the topology is declared
        # Intake stops first, on ``stopping``, and finishes its batches while the
        # scheduler and the sender still run; they stop after it, on ``_rest_stopping``.
        self._rest_stopping = asyncio.Event()

    async def start(self, stopping: asyncio.Event) -> Workers:
        """Declare the topology, run the workers, then take messages and be ready."""
        # Confirmed publishes: a refused message is acked only once its dead letter is in.
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._settings.prefetch)
        declared = await topology.declare(channel)
        consumer = IntakeConsumer(
            declared.intake,
            declared.dead_letters,
            self._recorder,
            IntakeOptions.from_settings(self._settings),
            # Buckets of the configuration at start: a registered histogram keeps its
            # buckets, so targets a reload adds fall between them until a restart.
            business_time=business_time_histogram(target_buckets(self._running.current.config)),
        )
        # Counted before intake consumes: what waits now queued while no engine ran.
        self._backlog = await StartupBacklog.open(
            QueueDepth(self._connection),
            consumer,
            self._settings.startup_backlog_wait_s,
            catch_up_hold_s=self._settings.startup_catch_up_hold_s,
        )
        self._parts.startup = self._backlog.status
        workers = self._workers(consumer, self._backlog)
        self._tasks = {
            "intake": asyncio.create_task(workers.consumer.run(stopping), name="intake"),
            "scheduler": asyncio.create_task(
                workers.scheduler.run(self._rest_stopping), name="scheduler"
            ),
            "sender": asyncio.create_task(workers.sender.run(self._rest_stopping), name="sender"),
            "feed": asyncio.create_task(workers.feed.run(self._rest_stopping), name="feed"),
        }
        await workers.consumer.start()
        self._parts.consuming = lambda: workers.consumer.consuming
        self._refresher.start()
        self._purger.start()
        if self._statistics is not None:
            self._statistics.start()
        if self._settings.monthly_reports:
            self._monthly = self._monthly_job(workers.sender)
            self._monthly.start()
        log.info(
            "engine.started",
            queue=topology.QUEUE,
            prefetch=self._settings.prefetch,
            channels=sorted(self._channels),
            config_version=self._running.current.version,
        )
        return workers

    async def until_stopped(self, stopping: asyncio.Event) -> None:
        """Wait for ``stopping``; raise the error of a worker that ends before it."""
        workers = set(self._tasks.values())
        stop_waiter = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({*workers, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        for worker in done & workers:
            worker.result()  # a worker only ends early by failing: let that stop us

    async def stop(self, workers: Workers) -> None:
        """Drain within the grace period: intake first, then the scheduler and the sender."""
        grace_s = self._settings.shutdown_grace_s
        log.info("engine.stopping", grace_s=grace_s)
        try:
            await asyncio.wait_for(self._drain(workers.consumer), timeout=grace_s)
        except TimeoutError:
            log.warning("engine.grace_expired", note="unfinished messages will be redelivered")
        log.info(
            "engine.stopped",
            **vars(workers.consumer.stats),
            steps_fired=workers.scheduler.fired,
            notices_sent=workers.sender.sent,
            notices_failed=workers.sender.failed,
            feed_published=workers.feed.published,
        )

    async def close(self) -> None:
        """Release everything, in this order, whether the engine started or not."""
        self._parts.consuming = lambda: False  # not ready (/readyz 503) from here on
        self._parts.startup = None
        # The periodic jobs first: they read through the pool and the connection.
        if self._monthly is not None:
            await self._monthly.stop()
        self._purger.stop()
        if self._statistics is not None:
            self._statistics.stop()
        await self._refresher.stop()
        for worker in self._tasks.values():
            worker.cancel()
        # Let the cancelled workers unwind (roll back, release) before their pool closes.
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        # The AMQP channels publish and read on the connection: closed before it.
        for notify_channel in self._channels.values():
            await notify_channel.close()
        if self._feed is not None:
            await self._feed.close()
        if self._backlog is not None:
            await self._backlog.close()
        await self._connection.close()
        # The HTTP port outlives the engine (``serve`` stops it last): it reads these no more.
        self._parts.broker = self._parts.tickets = None
        try:
            await asyncio.wait_for(self._pool.close(), timeout=5)
        except TimeoutError:
            self._pool.terminate()

    def _workers(self, consumer: IntakeConsumer, backlog: StartupBacklog) -> Workers:
        """The scheduler and the sender, built from the settings, beside intake."""
        settings, pool = self._settings, self._pool
        sender = OutboxSender(
            PostgresOutboxStore(pool),
            self._channels,
            SenderOptions.from_settings(settings),
            transient=is_transient,
        )
        feed = self._feed = FeedPublisher(
            PostgresFeedStore(pool),
            self._connection,
            lease=timedelta(seconds=settings.feed_lease_s),
        )
        scheduler = Scheduler(
            PostgresFiringStore(pool, database_url=settings.database_url.get_secret_value()),
            self._running.composer,
            SchedulerOptions.from_settings(settings),
            transient=is_transient,
            on_fired=partial(_woken_by_firing, sender, feed),
            gate=backlog,
        )
        return Workers(consumer, scheduler, sender, feed)

    def _monthly_job(self, sender: OutboxSender) -> MonthlyReportJob:
        """The monthly reports, through the outbox the sender is woken to deliver."""
        running, pool = self._running, self._pool
        reports = MonthlyReports(
            lambda: running.current.config,
            PostgresReads(pool),
            PostgresMonthlyReportStore(pool),
            transient=is_transient,
            extra_sections=satisfaction_source(PostgresReads(pool), lambda: running.current.config),
        )
        return MonthlyReportJob(
            reports,
            zone=_default_zone(running.current.config),
            transient=is_transient,
            on_queued=sender.wake,
        )

    async def _drain(self, consumer: IntakeConsumer) -> None:
        """Stop taking messages, let intake finish its batches, then stop the others."""
        await consumer.stop_receiving()
        await self._tasks["intake"]
        self._rest_stopping.set()
        await asyncio.gather(*self._tasks.values())


def _default_zone(config: AgreementConfig) -> ZoneInfo:
    """The zone of the contract's default calendar: the gauges' months are counted in it."""
    return config.calendars[config.general_contract.default_calendar].zone


def _woken_by_firing(sender: OutboxSender, feed: FeedPublisher, firing: Firing) -> None:
    """Wake the sender for the notices of a firing, and the feed for its tickets' new
    versions (after its commit)."""
    if firing.notices:
        sender.wake()
    if firing.claimed:
        feed.wake()


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
