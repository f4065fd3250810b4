"""Gauges read from the store and the broker: open clocks, risk, compliance, backlogs.

They describe the shared store, not this process, so they are read on a timer rather
than counted as work happens; every engine reports the same values. Each refresh builds
a complete new reading and swaps it in whole, so a scrape never sees half of one and a
label set that no longer occurs (a department with no open clocks) disappears.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.loops import Every
from engine.metrics import (
    AT_RISK,
    BREACH_WINDOWS,
    BREACHING_WITHIN,
    MONTH_STOPPED,
    OPEN_CLOCKS,
    OUTBOX_FAILED,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    QUEUE_MESSAGES,
    REFRESH_SECONDS,
    REFRESHED,
    STEPS_DUE,
    STORE_GAUGES,
    StoreGauge,
)
from engine.store.reads import GaugeReads

log = structlog.get_logger(__name__)

Sample = tuple[tuple[str, ...], float]


@dataclass(frozen=True)
class Reading:
    """One refresh: each gauge's samples, as (label values, value)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)


class StoreGauges(Collector):
    """Serves the latest reading to Prometheus; registered once, fed by each refresher."""

    def __init__(self, gauges: Sequence[StoreGauge]) -> None:
        self._gauges = gauges
        self._reading = Reading()

    def update(self, reading: Reading) -> None:
        self._reading = reading

    def clear(self) -> None:
        self._reading = Reading()

    def describe(self) -> Iterable[Metric]:
        return [self._family(gauge, []) for gauge in self._gauges]

    def collect(self) -> Iterator[Metric]:
        reading = self._reading
        for gauge in self._gauges:
            samples = reading.samples.get(gauge.name)
            if samples is not None:
                yield self._family(gauge, samples)

    @staticmethod
    def _family(gauge: StoreGauge, samples: list[Sample]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labels)
        for labels, value in samples:
            family.add_metric(labels, value)
        return family


STORE_COLLECTOR = StoreGauges(STORE_GAUGES)
REGISTRY.register(STORE_COLLECTOR)


def month_start(now: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of the first day of ``now``'s month in ``zone``."""
    local = now.astimezone(zone)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def read_store(reads: GaugeReads, now: datetime, zone: ZoneInfo) -> dict[str, list[Sample]]:
    """The clock and outbox gauges, read in one snapshot."""
    samples: dict[str, list[Sample]] = {
        gauge.name: []
        for gauge in (
            OPEN_CLOCKS,
            AT_RISK,
            BREACHING_WITHIN,
            MONTH_STOPPED,
            OUTBOX_PENDING,
            OUTBOX_OLDEST_AGE,
            OUTBOX_FAILED,
        )
    }
    windows = [timedelta(seconds=seconds) for _, seconds in BREACH_WINDOWS]
    counts = await reads.gauge_counts(now, month_start(now, zone), windows)
    at_risk: dict[tuple[str, ...], float] = {}
    breaching: dict[tuple[str, ...], float] = {}
    for group in counts.clocks:
        where = (group.department, group.metric, group.agreement_kind)
        bucket = group.bucket
        if bucket.startswith("open_"):
            samples[OPEN_CLOCKS.name].append(((*where, bucket[5:]), group.clocks))
            at_risk[where] = at_risk.get(where, 0) + group.at_risk
            for (window, _), count in zip(BREACH_WINDOWS, group.breaching, strict=True):
                key = (*where, window)
                breaching[key] = breaching.get(key, 0) + count
        else:
            samples[MONTH_STOPPED.name].append(((*where, bucket), group.clocks))
    samples[AT_RISK.name] = list(at_risk.items())
    samples[BREACHING_WITHIN.name] = list(breaching.items())
    samples[STEPS_DUE.name] = [((), counts.steps_due)]
    for backlog in counts.outbox:
        channel = (backlog.channel,)
        samples[OUTBOX_PENDING.name].append((channel, backlog.pending))
        samples[OUTBOX_FAILED.name].append((channel, backlog.failed))
        oldest = backlog.oldest_pending
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        samples[OUTBOX_OLDEST_AGE.name].append((channel, max(0.0, age)))
    return samples


class GaugeRefresher:
    """Reads the store and queue gauges every ``interval_s`` into ``STORE_COLLECTOR``."""

    def __init__(
        self,
        reads: GaugeReads,
        connection: AbstractRobustConnection,
        queues: Sequence[str],
        zone: Callable[[], ZoneInfo],
        *,
        interval_s: float,
    ) -> None:
        self._reads = reads
        self._connection = connection
        self._queues = queues
        self._zone = zone  # read at each refresh: the month's start follows a reload
        self._channel: AbstractRobustChannel | None = None
        self._every = Every(self.refresh, interval_s, "gauges")

    def start(self) -> None:
        """Refresh now and then every interval (a slow refresh is not stacked)."""
        self._every.start()

    async def stop(self) -> None:
        self._every.stop()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        STORE_COLLECTOR.clear()

    async def refresh(self) -> None:
        """One reading; on failure the last one stays and its timestamp tells its age."""
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            samples = await read_store(self._reads, now, self._zone())
            samples[QUEUE_MESSAGES.name] = await self._queue_depths()
        except Exception as exc:  # noqa: BLE001 - the next refresh tries again; alerts see the age
            log.warning("metrics.refresh_failed", error=repr(exc))
            return
        samples[REFRESHED.name] = [((), time.time())]
        samples[REFRESH_SECONDS.name] = [((), time.perf_counter() - started)]
        STORE_COLLECTOR.update(Reading(samples))

    async def _queue_depths(self) -> list[Sample]:
        # Its own channel: a passive declare of a missing queue closes the channel it
        # ran on, which must not be the one intake consumes on.
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        depths: list[Sample] = []
        for name in self._queues:
            # Not robust: a robust channel answers a passive declare of a queue it has
            # declared before from its cache, with the count of that first time.
            queue = await self._channel.declare_queue(name, passive=True, robust=False)
            count = queue.declaration_result.message_count
            depths.append(((name,), float(count or 0)))
        return depths
