"""The monthly report, pure: its months and due instants, what it holds, how it is laid out,
and the e-mail that carries it."""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from engine.business_time.calendar import BusinessCalendar
from engine.monthly.document import MonthlyInputs, TableSection, monthly_document
from engine.monthly.job import MonthlyReportJob, recipients
from engine.monthly.period import Month, due_at, month_due
from engine.monthly.render import render_csv, render_html, report_notice
from engine.monthly.satisfaction import satisfaction_source
from engine.notify.email import message_of
from engine.reporting.compliance import ClockOutcome
from engine.satisfaction import RatingCounts
from engine.store.monthly import MonthlyReportClaim
from tests.monthly_history import CONFIG
from tests.services import poll
from tests.streams import CPH

OFFICE = BusinessCalendar(CONFIG.calendars["office"])
CARE = BusinessCalendar(CONFIG.calendars["care-24-7"])
NOVEMBER = Month(2026, 11)


def clock(ticket: str, service: str, metric: str, outcome: str, elapsed_s: float,
          target_s: float, agreement: str = "sla", function: str = "server-network",
          running: bool = False, priority: str = "P1") -> ClockOutcome:  # fmt: skip
    return ClockOutcome(ticket, "okf", service, priority, metric, agreement, function,
                        outcome, running, elapsed_s, target_s)  # type: ignore[arg-type]  # fmt: skip


NOV = [
    clock("A", "opus-loen", "response", "met", 300, 900),
    clock("A", "opus-loen", "resolution", "met", 3600, 7200),
    clock("A", "opus-loen", "resolution", "met", 3000, 5400, agreement="ola"),
    clock("B", "opus-loen", "response", "breached", 1200, 900),
    clock("B", "opus-loen", "resolution", "breached", 7300, 7200, running=True),
    clock("D", "datavarehus", "response", "met", 1800, 3600, priority="P2"),
    clock("<P>", "print", "response", "met", 600, 1800, agreement="default", priority="P2"),
]
OCT = [clock("O", "opus-loen", "response", "met", 300, 900)]
INPUTS = MonthlyInputs(
    CONFIG, "okf", NOVEMBER, {NOVEMBER: NOV, NOVEMBER.plus(-1): OCT},
    datetime(2026, 12, 1, 7, tzinfo=UTC),
)  # fmt: skip


def section(document_sections: tuple[TableSection, ...], key: str) -> TableSection:
    return next(s for s in document_sections if s.key == key)


def test_months_parse_step_and_span_the_calendars_days() -> None:
    assert Month.parse("2026-11") == NOVEMBER
    assert str(NOVEMBER.plus(2)) == "2027-01"
    assert NOVEMBER.trend() == (Month(2026, 8), Month(2026, 9), Month(2026, 10), NOVEMBER)
    assert NOVEMBER.start(CPH) == datetime(2026, 11, 1, tzinfo=CPH)
    assert NOVEMBER.end(CPH) == datetime(2026, 12, 1, tzinfo=CPH)
    for text in ("2026-13", "2026-1", "26-11", "november"):
        with pytest.raises(ValueError, match=r"not 1-12|not a month written YYYY-MM"):
            Month.parse(text)


def test_a_report_is_due_when_the_next_months_first_working_day_opens() -> None:
    # December 2026 opens on Tuesday the 1st; January 2027 on Monday the 4th (the 1st is a
    # holiday, then a weekend); a calendar that never closes, at midnight on the 1st.
    assert due_at(OFFICE, NOVEMBER) == datetime(2026, 12, 1, 8, tzinfo=CPH)
    assert due_at(OFFICE, Month(2026, 12)) == datetime(2027, 1, 4, 8, tzinfo=CPH)
    assert due_at(CARE, Month(2026, 12)) == datetime(2027, 1, 1, tzinfo=CPH)
    assert month_due(OFFICE, datetime(2027, 1, 4, 7, 59, tzinfo=CPH)) is None
    assert month_due(OFFICE, datetime(2027, 1, 4, 8, tzinfo=CPH)) == (
        Month(2026, 12),
        datetime(2027, 1, 4, 8, tzinfo=CPH),
    )
    assert month_due(OFFICE, datetime(2027, 1, 29, 12, tzinfo=CPH))[0] == Month(2026, 12)  # type: ignore[index]


def test_the_document_counts_the_month_against_its_targets() -> None:
    document = monthly_document(INPUTS, "da")
    assert document.title == "Månedsrapport for Økonomiforvaltningen, november 2026"
    compliance = section(document.sections, "sla")
    assert compliance.rows[0][:8] == (
        "KMD Opus Løn", "P1", "Svar", "2", "1", "1", "0", "50 %",
    )  # fmt: skip
    assert compliance.rows[0][10] == "15 minutter"  # the target
    assert compliance.rows[-1][0] == "Print og multifunktionsprintere (uden for aftalen)"
    totals = section(document.sections, "totals")
    assert totals.footer == (("I alt for Økonomiforvaltningen", "4", "4", "2", "0", "66,7 %"),)
    assert len(totals.rows) == len(CONFIG.departments["okf"].services) + 1  # and print
    breaches = section(document.sections, "breaches")
    assert [row[:2] for row in breaches.rows] == [("B", "KMD Opus Løn"), ("B", "KMD Opus Løn")]
    assert breaches.rows[1][4] == "over målet, sagen er stadig åben"
    ola = section(document.sections, "ola")
    assert ola.rows == (
        ("Server og Netværk", "P1", "Løsning", "1", "1", "0", "0", "100 %", "50 minutter",
         "50 minutter", "1 time og 30 minutter"),
    )  # fmt: skip
    trend = section(document.sections, "trend")
    opus = next(row for row in trend.rows if row[0] == "KMD Opus Løn")
    # October 100 %, November 50 %: 50 points below the months before that had tickets.
    dash = "\N{EN DASH}"  # no figure
    assert opus[1:] == (dash, dash, "100 %", "50 %", "-50 %-point")
    price = section(document.sections, "price")
    assert [row for row in price.rows if row[1] != "0"] == [
        ("Datavarehus og ledelsesinformation", "1", "36.000 kr.", "36.000 kr.")
    ]
    assert price.footer[0][-1] == "36.000 kr."
    assert dict(document.facts)["Beløb efter pris (BUM)"] == "36.000 kr."


def test_a_system_owner_reads_their_services_in_their_language() -> None:
    document = monthly_document(INPUTS, "en", frozenset({"datavarehus"}))
    assert document.subject == "Monthly report: Økonomiforvaltningen, November 2026"
    assert "system owner of: Datavarehus og ledelsesinformation" in document.scope_note
    assert [row[0] for row in section(document.sections, "sla").rows] == [
        "Datavarehus og ledelsesinformation"
    ]
    assert section(document.sections, "breaches").rows == ()
    assert section(document.sections, "ola").rows == ()  # server-network's A is Opus Løn's
    assert {r["service"] for r in document.records if r.get("service")} == {"datavarehus"}


def test_a_section_from_elsewhere_plugs_in_before_the_price() -> None:
    def satisfaction(language: str, services: frozenset[str] | None) -> list[TableSection]:
        return [TableSection("satisfaction", "Tilfredshed", "", "Tilfredshed", ("Ydelse", "Score"),
                             (False, True), (("KMD Opus Løn", "4,5"),),
                             records=({"section": "satisfaction", "service": "opus-loen",
                                       "score": 4.5},))]  # fmt: skip

    inputs = MonthlyInputs(**{**vars(INPUTS), "extra_sections": satisfaction})
    document = monthly_document(inputs, "da")
    assert [s.key for s in document.sections][-2:] == ["satisfaction", "price"]
    rows = list(csv.DictReader(io.StringIO(render_csv(document))))
    assert [r["score"] for r in rows if r["section"] == "satisfaction"] == ["4.5"]


class _Ratings:
    """The satisfaction read, answering with counts given (and noting what it was asked)."""

    def __init__(self, counts: list[RatingCounts]) -> None:
        self.counts = counts
        self.asked: list[tuple[datetime, datetime, str | None]] = []

    async def satisfaction_of_period(
        self, start: datetime, end: datetime, department: str | None = None
    ) -> list[RatingCounts]:
        self.asked.append((start, end, department))
        return self.counts


async def test_the_satisfaction_section_reads_the_departments_month_per_service() -> None:
    reads = _Ratings([
        RatingCounts("okf", "opus-loen", (0, 1, 0, 1, 2)),
        RatingCounts("okf", "datavarehus", (0, 0, 0, 0, 1)),
    ])  # fmt: skip
    sections = await satisfaction_source(reads, lambda: CONFIG)(CONFIG.departments["okf"], NOVEMBER)
    assert reads.asked == [(NOVEMBER.start(CPH), NOVEMBER.end(CPH), "okf")]
    document = monthly_document(MonthlyInputs(**{**vars(INPUTS), "extra_sections": sections}), "da")
    assert [s.key for s in document.sections][-2:] == ["satisfaction", "price"]
    part = section(document.sections, "satisfaction")
    assert part.heading == "Brugernes tilfredshed"
    assert part.caption == "Tilfredshed pr. ydelse i november 2026"
    # Names, the mean with a Danish decimal comma, the share of 4-5 and each score.
    assert part.rows == (
        ("Datavarehus og ledelsesinformation", "1", "5,00", "100 %", "0", "0", "0", "0", "1"),
        ("KMD Opus Løn", "4", "4,00", "75 %", "0", "1", "0", "1", "2"),
    )
    rows = list(csv.DictReader(io.StringIO(render_csv(document))))
    assert [r["mean_score"] for r in rows if r["section"] == "satisfaction"] == ["5.0", "4.0"]
    # A system owner's part holds only their services; English words.
    owner = monthly_document(
        MonthlyInputs(**{**vars(INPUTS), "extra_sections": sections}), "en",
        frozenset({"datavarehus"}),
    )  # fmt: skip
    part = section(owner.sections, "satisfaction")
    assert part.heading == "Users' satisfaction"
    assert [row[0] for row in part.rows] == ["Datavarehus og ledelsesinformation"]
    none = await satisfaction_source(_Ratings([]), lambda: CONFIG)(
        CONFIG.departments["okf"], NOVEMBER
    )
    empty = section(
        monthly_document(MonthlyInputs(**{**vars(INPUTS), "extra_sections": none}), "da").sections,
        "satisfaction",
    )
    assert (empty.rows, empty.empty) == ((), "Ingen sager fra måneden er bedømt.")


def test_the_html_is_static_accessible_and_escapes_names() -> None:
    html = render_html(monthly_document(INPUTS, "da"))
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="da">' in html
    assert "<script" not in html
    assert '<th scope="col">Overholdelse</th>' in html
    assert "<caption>Forbrug gange pris i november 2026</caption>" in html
    hostile = clock("<script>alert(1)</script>", "opus-loen", "response", "breached", 1200, 900)
    inputs = MonthlyInputs(**{**vars(INPUTS), "outcomes": {NOVEMBER: [hostile]}})
    html = render_html(monthly_document(inputs, "en"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the ticket id, shown as text
    assert "<script" not in html


def test_the_csv_is_one_table_of_every_section() -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(monthly_document(INPUTS, "en")))))
    assert {r["section"] for r in rows} == {"sla", "total", "breach", "ola", "trend", "price"}
    assert {r["department_name"] for r in rows} == {"Økonomiforvaltningen"}
    datavarehus = next(r for r in rows if r["section"] == "price" and r["service"] == "datavarehus")
    assert (datavarehus["tickets"], datavarehus["price_dkk"], datavarehus["amount_dkk"]) == (
        "1", "36000", "36000",
    )  # fmt: skip


def test_the_email_carries_text_html_and_the_csv() -> None:
    document = monthly_document(INPUTS, "da")
    notice = report_notice(document, "it-ansvarlig@okf.kk.dk", "IT-ansvarlig, ØKF")
    raw = bytes(message_of(notice, "SLA-motor <sla@example.dk>"))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/mixed"
    assert message["Message-ID"] == f"<{notice.notice_id}@sla-engine>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert "Overholdelse af målene: 66,7 %" in text.get_content()
    assert html is not None
    assert "Økonomiforvaltningen" in html.get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "sla-okf-2026-11.csv"
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_content().startswith("section,month,department")


def test_the_it_lead_and_each_system_owner_get_one_report_each() -> None:
    found, missing = recipients(CONFIG.departments["okf"])
    assert [(r.email, r.language, r.services) for r in found] == [
        ("it-ansvarlig@okf.kk.dk", "da", None),
        ("systemejer-opus@okf.kk.dk", "da", frozenset({"opus-loen"})),
        ("systemejer-ledelsesinfo@okf.kk.dk", "en", frozenset({"datavarehus"})),
    ]
    assert missing == []


class _Reports:
    """Stands in for ``MonthlyReports``: records the runs it is asked for."""

    def __init__(self) -> None:
        self.runs: list[tuple[datetime, bool]] = []

    async def run_due(self, now: datetime, *, at_start: bool = False) -> list[MonthlyReportClaim]:
        self.runs.append((now, at_start))
        return [MonthlyReportClaim("okf", NOVEMBER.first_day, now)]


async def test_the_job_runs_at_start_then_hourly_on_the_hour() -> None:
    reports, woken = _Reports(), asyncio.Event()
    job = MonthlyReportJob(
        reports,  # type: ignore[arg-type]
        zone=CPH, transient=lambda exc: False, on_queued=woken.set,
        now=lambda: datetime(2026, 12, 1, 8, 30, tzinfo=CPH),
    )  # fmt: skip
    job.start()
    try:

        async def ran() -> bool:
            return woken.is_set()

        await poll(ran, timeout_s=10, what="the run at start")
        assert reports.runs == [(datetime(2026, 12, 1, 8, 30, tzinfo=CPH), True)]
        next_run = job.next_run_at()
        assert next_run is not None
        assert (next_run.minute, next_run.second) == (0, 0)
    finally:
        await job.stop()
    assert job.next_run_at() is None


async def test_a_failing_run_is_logged_and_the_next_tries_again() -> None:
    class Failing(_Reports):
        async def run_due(
            self, now: datetime, *, at_start: bool = False
        ) -> list[MonthlyReportClaim]:
            raise ConnectionResetError("database away")

    job = MonthlyReportJob(Failing(), zone=CPH, transient=lambda e: isinstance(e, OSError),  # type: ignore[arg-type]
                           on_queued=lambda: None)  # fmt: skip
    with capture_logs() as logs:
        await job.run()
    assert [e["event"] for e in logs] == ["monthly.store_unavailable"]
