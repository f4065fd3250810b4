"""The monthly report's e-mail in a real browser: what the department's IT lead and a
system owner see when they open it. Headless Chromium (Debian's package) by playwright,
as the SLA sheet's browser test; a missing browser fails. Screenshots are left in
``build/test-artefacts/``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from engine.events import parse_event
from engine.intake.recorder import Recorder
from engine.monthly.job import MonthlyReports
from engine.monthly.satisfaction import satisfaction_source
from engine.notify.notice import Notice
from engine.sla_clock.meter import ClockMeter
from engine.store.errors import is_transient
from engine.store.memory.monthly import MemoryMonthlyReportStore
from engine.store.memory.outbox import MemoryOutboxStore
from engine.store.memory.reads import MemoryReads
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import Tables
from tests.integration.test_sheet_browser import browser, screenshot
from tests.monthly_history import (
    CONFIG,
    DATA_OWNER,
    MONDAY,
    RECORDED_AT,
    STRATEGIC,
    record_history,
)
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
__all__ = ["browser"]  # the fixture, shared with the sheet's test


async def reports_by_mail() -> dict[str, Notice]:
    """ØKF's November reports as the monthly job writes them, by recipient."""
    tables = Tables()
    await record_history(MemoryRecordingStore(tables))
    # Opus Løn's two November tickets rated 5 and 2 after their resolution.
    ratings = [
        parse_event(json.dumps(event("ticket.rated", ticket, 9, MONDAY + timedelta(days=2),
                                     score=score)))
        for ticket, score in (("OKF-A", 5), ("OKF-B", 2))
    ]  # fmt: skip
    await Recorder(ClockMeter(CONFIG), MemoryRecordingStore(tables)).record(ratings, RECORDED_AT)
    reads = MemoryReads(tables)
    reports = MonthlyReports(lambda: CONFIG, reads, MemoryMonthlyReportStore(tables),
                             transient=is_transient,
                             extra_sections=satisfaction_source(reads, lambda: CONFIG))  # fmt: skip
    opening = datetime(2026, 12, 1, 8, tzinfo=CPH)
    await reports.run_due(opening)
    claimed = await MemoryOutboxStore(tables).claim(opening, opening, 100)
    return {
        c.notice.recipient: c.notice for c in claimed if c.notice.payload["department"] == "okf"
    }


async def open_html(browser: Browser, notice: Notice, path: Path):  # type: ignore[no-untyped-def]
    assert notice.html is not None
    path.write_text(notice.html, encoding="utf-8")
    page = await browser.new_page(viewport={"width": 1100, "height": 1400})
    await page.goto(path.as_uri())
    return page


async def test_the_it_lead_reads_the_departments_month(browser: Browser, tmp_path: Path) -> None:
    notice = (await reports_by_mail())[STRATEGIC]
    page = await open_html(browser, notice, tmp_path / "okf.html")
    await expect(page.locator("html")).to_have_attribute("lang", "da")
    await expect(page.locator("h1")).to_have_text(
        "Månedsrapport for Økonomiforvaltningen, november 2026"
    )
    assert await page.locator("script").count() == 0
    compliance = page.get_by_role("table", name="Overholdelse i november 2026")
    opus = compliance.get_by_role("row").filter(has_text="KMD Opus Løn").filter(has_text="Svar")
    # Two tickets, one met, one breached, against the target of 15 minutes.
    await expect(opus).to_contain_text("50 %")
    await expect(opus).to_contain_text("15 minutter")
    out_of_agreement = "Print og multifunktionsprintere (uden for aftalen)"
    await expect(compliance.get_by_role("row", name=out_of_agreement).first).to_be_visible()
    totals = page.get_by_role("table", name="Overholdelse pr. ydelse i november 2026")
    for service in CONFIG.departments["okf"].services:  # every ordered service, ticket or not
        name = CONFIG.services[service].name
        await expect(totals.get_by_role("row", name=name, exact=False).first).to_be_visible()
    breaches = page.get_by_role("table", name="Brudte mål i november 2026")
    # OKF-B answered after 20 minutes, resolved after 150, no word to the requester between.
    late = breaches.get_by_role("row").filter(has_text="OKF-B")
    await expect(late).to_have_count(3)
    await expect(late.locator("td:nth-child(4)")).to_have_text(["Svar", "Løsning", "Opdatering"])
    prices = page.get_by_role("table", name="Forbrug gange pris i november 2026")
    await expect(
        prices.get_by_role("row", name="Datavarehus og ledelsesinformation")
    ).to_contain_text("36.000 kr.")
    await expect(prices.locator("tfoot")).to_contain_text("36.000 kr.")
    await expect(page.get_by_role("heading", name="Udvikling over fire måneder")).to_be_visible()
    satisfaction = page.locator("table", has_text="Tilfredshed pr. ydelse i november 2026")
    rated = satisfaction.get_by_role("row", name="KMD Opus Løn", exact=False)
    await expect(rated).to_contain_text("3,50")  # the mean of 5 and 2
    await expect(rated).to_contain_text("50 %")  # one of two rated 4 or 5
    await screenshot(page, "monthly-okf-da.png")


async def test_a_system_owner_reads_their_service_in_english(
    browser: Browser, tmp_path: Path
) -> None:
    notice = (await reports_by_mail())[DATA_OWNER]
    page = await open_html(browser, notice, tmp_path / "okf-data.html")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("h1")).to_contain_text("Økonomiforvaltningen")
    await expect(
        page.get_by_text("system owner of: Datavarehus og ledelsesinformation")
    ).to_be_visible()
    compliance = page.get_by_role("table", name="Compliance in November 2026")
    # P2: response, resolution and update, each met.
    await expect(compliance.locator("tbody tr")).to_have_count(3)
    await expect(compliance).not_to_contain_text("KMD Opus Løn")
    await expect(page.get_by_text("No target was breached.")).to_be_visible()
    prices = page.get_by_role("table", name="Volume times price in November 2026")
    datavarehus = prices.get_by_role("row", name="Datavarehus og ledelsesinformation")
    await expect(datavarehus).to_contain_text("DKK 36,000")
    await screenshot(page, "monthly-okf-datavarehus-en.png")
