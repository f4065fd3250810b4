"""The monthly job in virtual time, on PostgreSQL and in memory: the right month, once, to
the right people, across a restart and with two engines at once."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta

import pytest
from structlog.testing import capture_logs

from engine.monthly.job import MonthlyReports
from engine.monthly.render import report_notice_id
from engine.store.errors import is_transient
from engine.store.monthly import MonthlyReportStore
from engine.store.outbox import ClaimedNotice, Settlement
from tests.contract.conftest import Backend
from tests.monthly_history import (
    CONFIG,
    DATA_OWNER,
    OPUS_OWNER,
    STRATEGIC,
    record_history,
)
from tests.streams import CPH


def engine(backend: Backend, store: MonthlyReportStore | None = None) -> MonthlyReports:
    """One engine's monthly job on the backend's tables (``store``: a second engine's)."""
    return MonthlyReports(
        lambda: CONFIG, backend.reads, store or backend.monthly, transient=is_transient
    )


async def sent(backend: Backend, now: datetime) -> list[ClaimedNotice]:
    """The reports waiting in the outbox at ``now``, claimed and settled as a sender would."""
    claimed = await backend.outbox.claim(now, now + timedelta(minutes=1), 100)
    await backend.outbox.settle(
        [Settlement(c.notice.notice_id, "sent", now, now, None, None, c.attempts) for c in claimed]
    )
    return sorted(claimed, key=lambda c: c.notice.recipient)


@pytest.fixture
async def history(backend: Backend) -> Backend:
    await record_history(backend.recording)
    return backend


async def test_each_department_hears_on_its_first_working_day_once(history: Backend) -> None:
    job = engine(history)
    # Tuesday 1 December, each department by its own calendar: care never closes, so its
    # November report is due since midnight; the extended hours open at 07:00, the
    # office at 08:00.
    early = datetime(2026, 12, 1, 6, 59, tzinfo=CPH)
    queued = await job.run_due(early)
    assert [(c.department, str(c.month)) for c in queued] == [("sof", "2026-11-01")]
    assert queued[0].due_at == datetime(2026, 12, 1, tzinfo=CPH)
    queued = await job.run_due(early + timedelta(minutes=1))
    assert [(c.department, c.due_at.hour) for c in queued] == [("kff", 7)]
    await sent(history, early + timedelta(minutes=1))  # sof's and kff's, out of the way

    opening = datetime(2026, 12, 1, 8, tzinfo=CPH)
    assert await job.run_due(opening - timedelta(seconds=1)) == []
    queued = await job.run_due(opening)
    assert {c.department for c in queued} == set(CONFIG.departments) - {"sof", "kff"}
    okf = [c for c in await sent(history, opening) if c.notice.payload["department"] == "okf"]
    assert [c.notice.recipient for c in okf] == [STRATEGIC, DATA_OWNER, OPUS_OWNER]
    for claimed in okf:
        notice = claimed.notice
        assert notice.notice_id == report_notice_id("okf", "2026-11", "email", notice.recipient)
        assert notice.payload["month"] == "2026-11"
    strategic, data_owner, opus_owner = (c.notice for c in okf)
    assert strategic.subject == "Månedsrapport: Økonomiforvaltningen, november 2026"
    assert data_owner.subject == "Monthly report: Økonomiforvaltningen, November 2026"
    # The IT lead's report is the whole department's; each owner's, their service's.
    assert figures(strategic.attachments[0].content) == (
        {"opus-loen", "datavarehus", "print"},
        4,
        {"OKF-B"},
    )
    assert figures(opus_owner.attachments[0].content) == ({"opus-loen"}, 2, {"OKF-B"})
    assert figures(data_owner.attachments[0].content) == ({"datavarehus"}, 1, set())
    assert strategic.html is not None
    assert 'lang="da"' in strategic.html
    assert data_owner.html is not None
    assert 'lang="en"' in data_owner.html

    # Later the same day, and all month: nothing more.
    assert await job.run_due(opening + timedelta(hours=1)) == []
    assert await job.run_due(datetime(2026, 12, 31, 23, tzinfo=CPH)) == []
    assert await sent(history, datetime(2027, 1, 1, tzinfo=CPH)) == []


def figures(csv_text: str) -> tuple[set[str], int, set[str]]:
    """What a report's CSV counts for the month: the services of its compliance rows, the
    tickets of its department total, and the tickets of its breaches."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert {row["month"] for row in rows if row["section"] != "trend"} == {"2026-11"}
    services = {row["service"] for row in rows if row["section"] == "sla"}
    (total,) = [r for r in rows if r["section"] == "total" and not r["service"]]
    breached = {row["ticket_id"] for row in rows if row["section"] == "breach"}
    return services, int(total["tickets"]), breached


async def test_new_years_report_waits_for_the_first_working_day(history: Backend) -> None:
    job = engine(history)
    await job.run_due(datetime(2026, 12, 1, 8, tzinfo=CPH))  # November's, out of the way
    # 1 January 2027 is a Friday and a holiday: the office opens on Monday the 4th.
    queued = await job.run_due(datetime(2027, 1, 2, 12, tzinfo=CPH))
    assert {c.department for c in queued} == {"sof"}  # round the clock, no holidays
    queued = await job.run_due(datetime(2027, 1, 4, 8, tzinfo=CPH))
    okf = next(c for c in queued if c.department == "okf")
    assert (str(okf.month), okf.due_at) == ("2026-12-01", datetime(2027, 1, 4, 8, tzinfo=CPH))


async def test_a_restart_sends_nothing_twice_and_catches_up_what_it_missed(
    history: Backend,
) -> None:
    opening = datetime(2026, 12, 1, 8, tzinfo=CPH)
    first = await engine(history).run_due(opening)
    assert len(first) == len(CONFIG.departments)
    before = await sent(history, opening)
    # A new process on the same store: nothing is due that was not claimed.
    assert await engine(history).run_due(opening + timedelta(minutes=5), at_start=True) == []
    assert await sent(history, opening + timedelta(minutes=5)) == []
    assert len(before) == sum(len(n) for n in recipients_by_department().values())

    # An engine that was down on January's first working day catches up when it starts.
    with capture_logs() as logs:
        late = datetime(2027, 1, 6, 10, tzinfo=CPH)
        queued = await engine(history).run_due(late, at_start=True)
    assert {c.department for c in queued} == set(CONFIG.departments)
    caught_up = [e for e in logs if e["event"] == "monthly.catch_up"]
    assert {(e["department"], e["month"]) for e in caught_up} == {
        (d, "2026-12") for d in CONFIG.departments
    }


def recipients_by_department() -> dict[str, set[str]]:
    from engine.monthly.job import recipients

    return {d.id: {r.email for r in recipients(d)[0]} for d in CONFIG.departments.values()}


async def test_two_engines_at_once_send_each_report_once(history: Backend) -> None:
    opening = datetime(2026, 12, 1, 8, tzinfo=CPH)
    engines = [engine(history), engine(history, history.another_monthly())]
    runs = await asyncio.gather(*(e.run_due(opening) for e in engines))
    claims = [c.department for run in runs for c in run]
    assert sorted(claims) == sorted(CONFIG.departments)  # each department by one of them
    notices = await sent(history, opening)
    ids = [c.notice.notice_id for c in notices]
    assert len(ids) == len(set(ids)) == sum(len(r) for r in recipients_by_department().values())
