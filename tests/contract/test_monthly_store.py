"""The monthly report port's contract, the same on PostgreSQL and in memory: a month of a
department is claimed once, with its notices, and they leave through the outbox whole."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from uuid import UUID

from engine.notify.notice import Attachment, Notice
from engine.store.monthly import MonthlyReportClaim
from tests.contract.conftest import T0, Backend

NOVEMBER = date(2026, 11, 1)
DUE = datetime.fromisoformat("2026-12-01T07:00:00+00:00")


def report(n: int, html: str = "<p>Økonomi</p>") -> Notice:
    return Notice(
        notice_id=UUID(int=n), channel="email", recipient=f"ejer{n}@okf.example",
        recipient_name="Åse", subject="Månedsrapport", body="Tallene er vedhæftet.",
        payload={"kind": "monthly_report", "month": "2026-11"}, html=html,
        attachments=(Attachment("sla-okf-2026-11.csv", "text/csv", "section,tickets\nsla,3\n"),),
    )  # fmt: skip


async def test_a_month_is_claimed_once_with_its_notices(backend: Backend) -> None:
    claim = MonthlyReportClaim("okf", NOVEMBER, DUE)
    assert await backend.monthly.monthly_reports_claimed(NOVEMBER) == set()
    assert await backend.monthly.claim_monthly_report(claim, [report(1), report(2)], T0)
    # Again, as after a restart: nothing more is written, not even a new notice.
    assert not await backend.monthly.claim_monthly_report(claim, [report(3)], T0)
    assert await backend.monthly.monthly_reports_claimed(NOVEMBER) == {"okf"}
    assert await backend.monthly.monthly_reports_claimed(date(2026, 10, 1)) == set()
    claimed = await backend.outbox.claim(T0, T0 + timedelta(minutes=1), 10)
    assert sorted(c.notice.notice_id.int for c in claimed) == [1, 2]


async def test_other_departments_and_months_are_claims_of_their_own(backend: Backend) -> None:
    assert await backend.monthly.claim_monthly_report(
        MonthlyReportClaim("okf", NOVEMBER, DUE), [report(1)], T0
    )
    assert await backend.monthly.claim_monthly_report(
        MonthlyReportClaim("tmf", NOVEMBER, DUE), [report(2)], T0
    )
    assert await backend.monthly.claim_monthly_report(
        MonthlyReportClaim("okf", date(2026, 12, 1), DUE + timedelta(days=31)), [report(3)], T0
    )
    assert await backend.monthly.monthly_reports_claimed(NOVEMBER) == {"okf", "tmf"}


async def test_two_engines_claiming_at_once_claim_the_month_once(backend: Backend) -> None:
    claim = MonthlyReportClaim("okf", NOVEMBER, DUE)
    stores = [backend.monthly, backend.another_monthly(), backend.another_monthly()]
    won = await asyncio.gather(
        *(store.claim_monthly_report(claim, [report(n + 1)], T0) for n, store in enumerate(stores))
    )
    assert sorted(won) == [False, False, True]
    claimed = await backend.outbox.claim(T0, T0 + timedelta(minutes=1), 10)
    assert len(claimed) == 1  # the winner's notice alone


async def test_a_report_leaves_the_outbox_with_its_html_and_attachment(backend: Backend) -> None:
    html = "<table><caption>Pris & forbrug</caption></table>" + "x" * 100_000
    claim = MonthlyReportClaim("okf", NOVEMBER, DUE)
    assert await backend.monthly.claim_monthly_report(claim, [report(7, html)], T0)
    (claimed,) = await backend.outbox.claim(T0, T0 + timedelta(minutes=1), 10)
    assert claimed.notice == report(7, html)
    assert (claimed.ticket_id, claimed.attempts, claimed.superseded) == (None, 1, False)
    # Resent after a lost lease (a crash): the same notice, the same id.
    (again,) = await backend.outbox.claim(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), 10)
    assert (again.notice, again.attempts) == (report(7, html), 2)
