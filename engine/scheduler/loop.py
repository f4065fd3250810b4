"""The thin loop around the firing transaction: sleep until the earliest due instant.

The store holds every due instant and is the only source of truth: the loop asks it
for the earliest one and sleeps until then, woken early by word from the store of a
recording that set an earlier one (from this process or another; a NOTIFY in
PostgreSQL). APScheduler runs a reconcile every ``reconcile_s``, a backstop for lost
word or a dropped listening connection; it never holds a deadline itself.

Before its first firing it passes a start-up gate (``engine.intake.startup``): intake
takes the backlog that queued while no engine ran, so that steps its events stop are
not fired first; while that backlog lasts, the gate may hold back the steps due after
the instant intake has read up to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from engine.escalation import FiredStep
from engine.escalation.policy import BREACH
from engine.loops import run_cycles
from engine.metrics import BREACHES, ESCALATIONS, FIRING_LATENESS, WARNINGS
from engine.notify.compose import Composer
from engine.scheduler.firing import Firing, fire_due
from engine.settings import Settings
from engine.store.firing import DueListener, FiringStore

log = structlog.get_logger(__name__)
# When the earliest due clock is locked by intake (skipped), look again this soon,
# doubling while it stays so, up to the most it may add to a step's lateness.
_BUSY_RETRY_S = 0.05
_BUSY_RETRY_MAX_S = 0.5
# While the start-up gate holds due steps back, look again this often: they may fire as
# soon as intake has read past them.
_HELD_RETRY_S = 0.5


class StartGate(Protocol):
    """What the scheduler waits for at start, and how far it may fire while catching up."""

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return when the scheduler may begin firing (or ``stopping`` is set)."""
        ...

    async def fire_until(self, now: datetime) -> datetime | None:
        """The latest due instant to fire at ``now``; None: every step that is due."""
        ...


@dataclass(frozen=True)
class SchedulerOptions:
    """How the scheduler paces itself; the defaults are the settings' defaults."""

    batch_size: int = 500
    reconcile_s: float = 30.0
    retry_max_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulerOptions:
        """The options the engine's settings give."""
        return cls(
            batch_size=settings.scheduler_batch_size,
            reconcile_s=settings.reconcile_interval_s,
            retry_max_s=settings.db_retry_max_s,
        )


class Scheduler:
    """Fires due escalation steps until stopped; one per engine, any number of engines."""

    def __init__(
        self,
        store: FiringStore,
        composer: Composer | Callable[[], Composer],
        options: SchedulerOptions,
        *,
        transient: Callable[[BaseException], bool],
        on_fired: Callable[[Firing], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        gate: StartGate | None = None,
    ) -> None:
        self._store = store
        self._gate = gate
        # A composer, or where to read the one in force (``RunningConfig.composer``):
        # each firing reads it once and writes all its notices with it.
        self._composer_now = composer if callable(composer) else lambda: composer
        self._transient = transient
        self._batch_size = options.batch_size
        self._reconcile_s = options.reconcile_s
        self._retry_max_s = options.retry_max_s
        self._on_fired = on_fired
        self._now = now
        self._wake = asyncio.Event()
        self._planned: datetime | None = None  # the instant the loop sleeps until
        self._listener: DueListener | None = None
        self._busy_s = _BUSY_RETRY_S
        self._stopped = False
        self.fired = 0  # steps fired since start

    def wake(self, at: datetime | None = None) -> None:
        """Look for due steps now, or when ``at`` is earlier than the instant planned."""
        if at is None or self._planned is None or at < self._planned:
            self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire due steps until ``stopping`` is set."""
        periodic = AsyncIOScheduler(timezone=UTC)
        # No misfire grace: a run the busy loop delayed still runs, late, not skipped.
        periodic.add_job(
            self._reconcile,
            "interval",
            seconds=self._reconcile_s,
            id="reconcile",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        periodic.start()
        try:
            await self._listen()
            if self._gate is not None:
                await self._gate.wait(stopping)
            await run_cycles(
                self._cycle,
                wake=self._wake,
                stopping=stopping,
                transient=self._transient,
                max_delay_s=self._retry_max_s,
                event="scheduler.store_unavailable",
                before_cycle=self._forget_plan,
            )
        finally:
            self._stopped = True  # a reconcile still listening closes what it opens
            periodic.shutdown(wait=False)
            if self._listener is not None:
                await self._listener.close()

    def _forget_plan(self) -> None:
        # Until the next sleep is planned, any NOTIFY wakes the loop: one that arrives
        # while a cycle looks must not be judged by the last plan.
        self._planned = None

    async def _cycle(self) -> float:
        """Fire what is due; the seconds to sleep before looking again (0: at once)."""
        now = self._now()
        until = None if self._gate is None else await self._gate.fire_until(now)
        firing = await self._fire(now, until)
        if firing.claimed >= self._batch_size:
            return 0.0  # more are due at once: no sleeping between batches
        return await self._sleep_s(claimed=firing.claimed, holding=until is not None)

    async def _fire(self, now: datetime, until: datetime | None) -> Firing:
        composer = self._composer_now()
        firing = await fire_due(self._store, composer, now, self._batch_size, until=until)
        if firing.fired:
            self.fired += len(firing.fired)
            for step in firing.fired:
                late_s = round(step.late_s, 3)
                log.info(
                    "escalation.fired",
                    ticket_id=step.ticket_id,
                    clock=step.clock_key,
                    step=step.step,
                    tier=step.tier,
                    late_s=late_s,
                )
            # Counted after the commit, so the lateness includes it.
            _count(firing.fired, committed=self._now())
        if self._on_fired is not None:
            self._on_fired(firing)
        return firing

    async def _sleep_s(self, claimed: int, holding: bool = False) -> float:
        """Seconds until the earliest due instant, at most the reconcile interval."""
        earliest = await self._store.earliest_due()
        if earliest is None:
            return self._reconcile_s
        seconds: float = (earliest - self._now()).total_seconds()
        if seconds <= 0 and claimed:
            return 0.0  # fell due while this cycle fired: at once
        if seconds <= 0 and holding:
            return _HELD_RETRY_S  # held back by the start-up gate until intake reads on
        if seconds <= 0:
            # Due, yet not claimed: its ticket is being recorded. Look again shortly.
            busy_s, self._busy_s = self._busy_s, min(self._busy_s * 2, _BUSY_RETRY_MAX_S)
            return busy_s
        self._busy_s = _BUSY_RETRY_S
        # Planned only now: a wake-up for an earlier instant that came during the
        # query has set the event already, and the pause returns at once.
        self._planned = earliest
        return min(seconds, self._reconcile_s)

    async def _listen(self) -> None:
        """Listen for word of earlier due instants (a connection of its own, in PostgreSQL)."""
        listener = await self._store.listen(self.wake, self._listener_lost)
        if listener is None:
            return  # the reconcile job tries again; until then the periodic look stands in
        if self._stopped:
            await listener.close()
            return
        self._listener = listener

    def _listener_lost(self, listener: DueListener) -> None:
        """Listening stopped: look now, listen again at the next reconcile."""
        if listener is self._listener:
            self._listener = None
        self.wake()

    async def _reconcile(self) -> None:
        """Look again, and listen again if the listening connection was lost."""
        if self._listener is None or self._listener.is_closed():
            self._listener = None
            await self._listen()
        self.wake()


def _count(fired: list[FiredStep], committed: datetime) -> None:
    """Count fired steps as escalations, breaches and warnings, and their lateness."""
    for step in fired:
        labels = (step.department, step.service, step.priority, step.metric, step.agreement_kind)
        ESCALATIONS.labels(*labels, step.tier).inc()
        if step.step == BREACH:
            BREACHES.labels(*labels).inc()
        elif step.step < BREACH:
            WARNINGS.labels(*labels, step.tier).inc()
        FIRING_LATENESS.observe(step.late_at(committed))
