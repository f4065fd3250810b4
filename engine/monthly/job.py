"""The monthly job: on each department's first working day, its report for the month
before, to its strategic contact and its system owners, through the outbox, once.

``MonthlyReports.run_due`` is the use case, with the instant passed in: for each
department whose report is due (``engine.monthly.period``) and not claimed yet, it reads
the clocks, writes each recipient's e-mail and claims the month with its notices in one
transaction (``MonthlyReportStore``). The store is the only record of what is due and
sent: ``MonthlyReportJob`` runs it from an APScheduler cron job, every hour on the hour,
and once at start, when a report whose day has passed is sent as a catch-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from engine.business_time.calendar import BusinessCalendar
from engine.config import AgreementConfig
from engine.config.models import CalendarEntry, Contact, Department
from engine.monthly.document import ExtraSections, MonthlyInputs, ServiceScope, monthly_document
from engine.monthly.period import Month, month_due
from engine.monthly.render import report_notice
from engine.notify.notice import Notice
from engine.reporting.report import clock_outcomes
from engine.sheet.words import Language
from engine.store.monthly import MonthlyReportClaim, MonthlyReportStore
from engine.store.reads import HistoryReads

log = structlog.get_logger(__name__)

ExtraSource = Callable[[Department, Month], Awaitable[ExtraSections | None]]
"""Reads what further sections a department's report for a month has (satisfaction)."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who gets a report, in which language, about which services (None: all)."""

    name: str
    email: str
    language: Language
    services: ServiceScope


def recipients(department: Department) -> tuple[list[Recipient], list[str]]:
    """The strategic contact (the whole report) and each system owner (their services),
    one report per address; and the roles left out for having no e-mail address."""
    chosen: dict[str, tuple[Contact, set[str] | None]] = {}
    missing: list[str] = []
    strategic = department.contacts.strategic
    if strategic is not None and strategic.email is not None:
        chosen[strategic.email] = (strategic, None)
    elif strategic is not None:
        missing.append("strategic")
    for service, owner in department.contacts.system_owners.items():
        if owner.email is None:
            missing.append(f"system_owner:{service}")
        elif owner.email not in chosen:
            chosen[owner.email] = (owner, {service})
        elif (services := chosen[owner.email][1]) is not None:
            services.add(service)  # one owner of several services: one report of them all
    found = [
        Recipient(contact.name, email, contact.language, None if s is None else frozenset(s))
        for email, (contact, s) in chosen.items()
    ]
    return found, missing


async def read_inputs(
    history: HistoryReads,
    config: AgreementConfig,
    department_id: str,
    month: Month,
    now: datetime,
    extra_sections: ExtraSections | None = None,
) -> MonthlyInputs:
    """A department's clocks in ``month`` and the months of its trend, as they stand at
    ``now``; months are the department calendar's."""
    zone = config.calendar_for(department_id).zone
    outcomes = {
        m: await clock_outcomes(history, m.start(zone), m.end(zone), now, department_id)
        for m in month.trend()
    }
    return MonthlyInputs(config, department_id, month, outcomes, now, extra_sections)


class MonthlyReports:
    """Claims and queues the reports due at an instant given; pure of the wall clock."""

    def __init__(
        self,
        config: Callable[[], AgreementConfig],
        history: HistoryReads,
        store: MonthlyReportStore,
        *,
        transient: Callable[[BaseException], bool],
        extra_sections: ExtraSource | None = None,
    ) -> None:
        self._config = config  # the configuration in force, read at each run
        self._transient = transient
        self._history = history
        self._store = store
        self._extra_sections = extra_sections
        self._calendars: dict[int, tuple[CalendarEntry, BusinessCalendar]] = {}

    def _calendar(self, entry: CalendarEntry) -> BusinessCalendar:
        # Built once per calendar entry (a reload brings new entries), as building one
        # lays out a year of open intervals.
        kept = self._calendars.get(id(entry))
        if kept is None or kept[0] is not entry:
            kept = self._calendars[id(entry)] = (entry, BusinessCalendar(entry))
        return kept[1]

    async def run_due(self, now: datetime, *, at_start: bool = False) -> list[MonthlyReportClaim]:
        """Queue every report due at ``now`` and not claimed yet; those queued here.

        ``at_start``: the engine has just started, and a report whose day has already
        begun is a catch-up (logged ``monthly.catch_up`` rather than ``monthly.queued``).
        """
        config = self._config()
        claimed: dict[Month, set[str]] = {}
        queued = []
        for department in config.departments.values():
            due = month_due(self._calendar(config.calendar_for(department.id)), now)
            if due is None:
                continue
            month, due_at = due
            if month not in claimed:
                claimed[month] = await self._store.monthly_reports_claimed(month.first_day)
            if department.id in claimed[month]:
                continue
            try:
                notices, missing = await self._notices(config, department, month, now)
            except Exception as exc:
                if self._transient(exc):
                    raise  # the store is away: the whole run is tried again
                # One department's report failing to be written keeps no other from going.
                log.exception("monthly.failed", department=department.id, month=str(month))
                continue
            claim = MonthlyReportClaim(department.id, month.first_day, due_at)
            if not await self._store.claim_monthly_report(claim, notices, now):
                log.info("monthly.claimed_elsewhere", department=department.id, month=str(month))
                continue
            catch_up = at_start and now > due_at
            log.info(
                "monthly.catch_up" if catch_up else "monthly.queued",
                department=department.id,
                month=str(month),
                due_at=due_at.isoformat(),
                recipients=[notice.recipient for notice in notices],
                without_email=missing,
            )
            queued.append(claim)
        return queued

    async def _notices(
        self, config: AgreementConfig, department: Department, month: Month, now: datetime
    ) -> tuple[list[Notice], list[str]]:
        extra = await self._extra_sections(department, month) if self._extra_sections else None
        inputs = await read_inputs(self._history, config, department.id, month, now, extra)
        found, missing = recipients(department)
        notices = [
            report_notice(
                monthly_document(inputs, r.language, r.services),
                r.email,
                r.name,
            )
            for r in found
        ]
        return notices, missing


class MonthlyReportJob:
    """Runs ``MonthlyReports`` once at start and then every hour on the hour (APScheduler
    cron); APScheduler only triggers it, the store says what is due and what was sent."""

    def __init__(
        self,
        reports: MonthlyReports,
        *,
        zone: ZoneInfo,
        transient: Callable[[BaseException], bool],
        on_queued: Callable[[], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._reports = reports
        self._zone = zone
        self._transient = transient
        self._on_queued = on_queued
        self._now = now
        self._periodic: AsyncIOScheduler | None = None
        self._runs: set[asyncio.Task[object]] = set()  # runs under way, cancelled at stop

    def start(self) -> None:
        """Run now, then hourly; a run missed while the loop was busy still runs."""
        periodic = self._periodic = AsyncIOScheduler(timezone=UTC)
        periodic.add_job(
            self.run,
            CronTrigger(minute=0, timezone=self._zone),
            id="monthly-reports",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        periodic.add_job(
            self.run, kwargs={"at_start": True}, id="monthly-reports-start", misfire_grace_time=None
        )
        periodic.start()

    def next_run_at(self) -> datetime | None:
        """When the cron job runs next (None when not started)."""
        if self._periodic is None:
            return None
        job = self._periodic.get_job("monthly-reports")
        return None if job is None else job.next_run_time

    async def run(self, at_start: bool = False) -> None:
        """One run; a failure is logged, and the next run tries again."""
        task = asyncio.current_task()
        if task is not None:
            self._runs.add(task)
        try:
            queued = await self._reports.run_due(self._now(), at_start=at_start)
        except Exception as exc:
            if not self._transient(exc):
                log.exception("monthly.run_failed")
                return
            log.warning("monthly.store_unavailable", error=repr(exc))
            return
        finally:
            if task is not None:
                self._runs.discard(task)
        if queued:
            self._on_queued()

    async def stop(self) -> None:
        """Stop triggering, and end a run under way (its claim commits whole or not at all)."""
        if self._periodic is not None:
            self._periodic.shutdown(wait=False)
            self._periodic = None
        runs = list(self._runs)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
