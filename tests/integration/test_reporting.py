"""The compliance report and the event export, read from a known history in PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.reporting.compliance import (
    OLA_COLUMNS,
    SLA_COLUMNS,
    ClockOutcome,
    ola_records,
    sla_records,
)
from engine.reporting.export import export_events
from engine.reporting.output import Format
from engine.reporting.report import FLAT_COLUMNS, clock_outcomes, render_report
from engine.reporting.satisfaction import TITLE as SATISFACTION_TITLE
from engine.reporting.satisfaction import satisfaction_of_period
from engine.satisfaction import SATISFACTION_COLUMNS, SATISFACTION_MEASURES, RatingCounts
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)  # office hours, Monday
START = datetime(2026, 11, 23, tzinfo=CPH)  # the window: tickets created Monday morning
END = datetime(2026, 11, 23, 12, tzinfo=CPH)
NOW = datetime(2026, 11, 23, 13, tzinfo=CPH)  # when the report is made
METER = ClockMeter(load_config(EXAMPLE_CONFIG))
PERIOD = "2026-11-23 morning"


def after(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def ev(type_: str, ticket: str, seq: int, at: datetime, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def created(ticket: str, at: datetime, department: str = "okf", service: str = "opus-loen",
            priority: str = "P1") -> TicketEvent:  # fmt: skip
    return ev("ticket.created", ticket, 0, at, department=department, service=service,
              priority=priority, subject="Løn fejler", requester={"name": "B"})  # fmt: skip


def responded(ticket: str, seq: int, at: datetime) -> TicketEvent:
    return ev("ticket.responded", ticket, seq, at)


def status(ticket: str, seq: int, at: datetime, new: str) -> TicketEvent:
    return ev("ticket.status_changed", ticket, seq, at, status=new)


def assigned(ticket: str, seq: int, at: datetime, function: str) -> TicketEvent:
    return ev("ticket.assigned", ticket, seq, at, function=function)


# ØKF's Opus Løn, P1: response 15 minutes, resolution 2 hours (OLA server-network: 1h30m).
# ØKF has not ordered print: the contract's P1 defaults, response 30m, resolution 4h.
# TMF's ESDH, P4: the defaults, response 8 hours, resolution 80 hours (OLA pc-software 40h).
# The office calendar is open 08:00-16:00 on Monday.
# C is measured at 09:01 only and then left alone: its running clocks pass their deadlines
# (09:15, 11:00, OLA 10:31) without a new measurement. D is measured at 10:01 only.
EARLY = [created("C", after(0)), assigned("C", 1, after(1), "server-network")]
MIDDLE = [created("D", after(60), "tmf", "esdh", "P4"), assigned("D", 1, after(61), "pc-software")]
REST = [
    # A: everything met; its OLA runs 09:02-10:00.
    created("A", after(0)), assigned("A", 1, after(2), "server-network"),
    responded("A", 2, after(5)), status("A", 3, after(60), "resolved"),
    # B: response and resolution breached, both stopped.
    created("B", after(0)), responded("B", 1, after(20)), status("B", 2, after(150), "resolved"),
    # E: response met, resolution paused at 30 minutes.
    created("E", after(0)), responded("E", 1, after(5)),
    status("E", 2, after(30), "pending_customer"),
    # F: out of agreement, both met.
    created("F", after(0), service="print"), responded("F", 1, after(10)),
    status("F", 2, after(20), "resolved"),
    # S: created on the window's first instant, answered at 08:30 (30 office minutes).
    created("S", START, "tmf", "esdh", "P4"), responded("S", 1, after(-30)),
    # LATE: a comment before its creation, the response after the window's end.
    ev("ticket.commented", "LATE", 1, after(115), visibility="internal", body="ringet op"),
    created("LATE", after(120), "tmf", "esdh", "P4"), responded("LATE", 2, after(210)),
    # Not of the window: created on its end, created just before its start (answered
    # inside it), and a ticket whose creation never came.
    created("OUT-END", END), created("OUT-BEFORE", START - timedelta(seconds=1)),
    responded("OUT-BEFORE", 1, after(10)), responded("W", 1, after(30)),
]  # fmt: skip
IN_WINDOW = {"A", "B", "C", "D", "E", "F", "S", "LATE"}


@pytest.fixture
async def history(db: asyncpg.Connection) -> asyncpg.Connection:
    await migrate(db)
    recorder = Recorder(METER, PostgresRecordingStore(db))
    await recorder.record(EARLY, after(1))
    await recorder.record(MIDDLE, after(61))
    await recorder.record(REST, after(210))
    return db


async def test_the_clocks_of_the_windows_tickets_are_read_as_they_stand_now(
    history: asyncpg.Connection,
) -> None:
    outcomes = await clock_outcomes(PostgresReads(history), START, END, NOW)
    assert {o.ticket_id for o in outcomes} == IN_WINDOW
    c = {(o.metric, o.agreement): o for o in outcomes if o.ticket_id == "C"}
    # Stored as running at 09:01; past their deadlines now, they count as breached,
    # still running (their time used as last measured counts in no median).
    assert {key: (o.outcome, o.running) for key, o in c.items()} == {
        ("response", "sla"): ("breached", True),
        ("resolution", "sla"): ("breached", True),
        ("resolution", "ola"): ("breached", True),
        ("response", "ola"): ("breached", True),  # server-network never acted
    }
    paused = next(o for o in outcomes if o.ticket_id == "E" and o.metric == "resolution")
    assert (paused.outcome, paused.running, paused.elapsed_s) == ("open", False, 1800.0)
    sla = {
        (o.ticket_id, o.metric): (o.outcome, o.running) for o in outcomes if o.agreement == "sla"
    }
    assert (sla["A", "response"], sla["B", "response"]) == (("met", False), ("breached", False))
    reads = PostgresReads(history)
    before = await clock_outcomes(reads, START, END, after(2))  # before any deadline
    assert {o.outcome for o in before if o.ticket_id == "C"} == {"open"}


async def test_sla_rows_count_compliance_median_and_p90_per_group(
    history: asyncpg.Connection,
) -> None:
    rows = sla_records(await clock_outcomes(PostgresReads(history), START, END, NOW))
    table = [tuple(row[c] for c in SLA_COLUMNS) for row in rows]
    # response: A 300 met, B 1200 breached, C breached and running, E 300 met.
    # resolution: A 3600 met, B 9000 breached, C breached and running, E paused.
    # Median and p90 over the decided clocks that do not run: C's are in neither.
    # update (an update an hour at P1): A from its response at 09:05 to its resolution at
    # 10:00, 3300 met; B 09:20 to 11:30, 7800 breached; E 1500 met up to its wait for
    # the requester, and the next cycle waits with it (open). Print's: F 600 met.
    # TMF ESDH: S answered in 1800 s, LATE in 5400 s (90 office minutes), D open; P4
    # sets no update interval.
    assert table == [
        ("okf", "opus-loen", "P1", "resolution", "sla",
         4, 1, 2, 1, 33.3, 3600.0, 9000.0, 7200.0, 50.0, 125.0),
        ("okf", "opus-loen", "P1", "response", "sla",
         4, 2, 2, 0, 50.0, 300.0, 1200.0, 900.0, 33.3, 133.3),
        ("okf", "opus-loen", "P1", "update", "sla",
         3, 2, 1, 1, 66.7, 3300.0, 7800.0, 3600.0, 91.7, 216.7),
        ("okf", "print", "P1", "resolution", "default",
         1, 1, 0, 0, 100.0, 1200.0, 1200.0, 14400.0, 8.3, 8.3),
        ("okf", "print", "P1", "response", "default",
         1, 1, 0, 0, 100.0, 600.0, 600.0, 1800.0, 33.3, 33.3),
        ("okf", "print", "P1", "update", "default",
         1, 1, 0, 0, 100.0, 600.0, 600.0, 3600.0, 16.7, 16.7),
        ("tmf", "esdh", "P4", "resolution", "sla",
         3, 0, 0, 3, None, None, None, 288000.0, None, None),
        ("tmf", "esdh", "P4", "response", "sla",
         3, 2, 0, 1, 100.0, 1800.0, 5400.0, 28800.0, 6.2, 18.8),
    ]  # fmt: skip


async def test_ola_rows_count_per_provider_function(history: asyncpg.Connection) -> None:
    rows = ola_records(await clock_outcomes(PostgresReads(history), START, END, NOW))
    table = [tuple(row[c] for c in OLA_COLUMNS) for row in rows]
    # server-network: A's 58 minutes met; C's runs on past its 1h30m, breached but in no
    # median. pc-software: D's runs within its target. Response: server-network acted on
    # A 3 minutes after its assignment (the response at 09:05), never on C (past its 15
    # minutes); pc-software has four hours for D.
    assert table == [
        ("pc-software", "P4", "resolution", 1, 0, 0, 1, None, None, None, 144000.0, None, None),
        ("pc-software", "P4", "response", 1, 0, 0, 1, None, None, None, 14400.0, None, None),
        ("server-network", "P1", "resolution",
         2, 1, 1, 0, 50.0, 3480.0, 3480.0, 5400.0, 64.4, 64.4),
        ("server-network", "P1", "response",
         2, 1, 1, 0, 50.0, 180.0, 180.0, 900.0, 20.0, 20.0),
    ]  # fmt: skip


async def test_one_departments_report_leaves_the_others_out(
    history: asyncpg.Connection,
) -> None:
    outcomes = await clock_outcomes(PostgresReads(history), START, END, NOW, department="okf")
    assert {o.ticket_id for o in outcomes} == {"A", "B", "C", "E", "F"}
    assert [(row["function"], row["metric"]) for row in ola_records(outcomes)] == [
        ("server-network", "resolution"),
        ("server-network", "response"),
    ]
    assert await clock_outcomes(PostgresReads(history), START, END, NOW, department="nobody") == []


async def test_the_export_writes_every_event_of_the_windows_tickets_in_order(
    history: asyncpg.Connection,
) -> None:
    out = io.StringIO()
    written = await export_events(PostgresReads(history), START, END, out)
    lines = out.getvalue().splitlines()
    exported = [parse_event(line) for line in lines]
    expected = sorted(
        (e for e in [*EARLY, *MIDDLE, *REST] if e.ticket_id in IN_WINDOW),
        key=lambda e: (e.occurred_at, e.event_id),
    )
    assert written == len(lines) == len(expected) == 22
    assert exported == expected
    # Whole tickets: LATE's comment before its creation and response after the window.
    assert [e.type for e in exported if e.ticket_id == "LATE"] == [
        "ticket.commented", "ticket.created", "ticket.responded",
    ]  # fmt: skip


async def test_an_export_of_a_window_without_tickets_writes_nothing(
    history: asyncpg.Connection,
) -> None:
    out = io.StringIO()
    reads = PostgresReads(history)
    assert await export_events(reads, END, END + timedelta(seconds=1), out) == 1  # OUT-END
    assert await export_events(reads, NOW, NOW + timedelta(days=1), io.StringIO()) == 0


async def test_a_naive_or_empty_window_is_refused(db: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        await export_events(PostgresReads(db), START.replace(tzinfo=None), END, io.StringIO())
    with pytest.raises(ValueError, match="empty"):
        await clock_outcomes(PostgresReads(db), END, START, NOW)
    with pytest.raises(ValueError, match="now"):
        await clock_outcomes(PostgresReads(db), START, END, NOW.replace(tzinfo=None))


@pytest.fixture
async def outcomes(history: asyncpg.Connection) -> list[ClockOutcome]:
    return await clock_outcomes(PostgresReads(history), START, END, NOW)


def test_the_json_report_is_one_object_with_both_sections(outcomes: list[ClockOutcome]) -> None:
    out = io.StringIO()
    render_report(outcomes, "json", out, period=PERIOD)
    document = json.loads(out.getvalue())
    assert list(document) == ["period", "sla", "ola"]
    assert document["period"] == PERIOD
    assert [list(row) for row in document["sla"]] == [list(SLA_COLUMNS)] * 8
    assert [list(row) for row in document["ola"]] == [list(OLA_COLUMNS)] * 4
    assert document["sla"][7]["compliance_pct"] == 100.0
    assert document["sla"][6]["compliance_pct"] is None


def test_the_csv_report_is_one_table_with_a_section_column(outcomes: list[ClockOutcome]) -> None:
    out = io.StringIO()
    render_report(outcomes, "csv", out, period=PERIOD)
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert header == list(FLAT_COLUMNS)
    assert [(row[0], row[1]) for row in rows] == [(PERIOD, "sla")] * 8 + [(PERIOD, "ola")] * 4
    ola = dict(zip(header, rows[-2], strict=True))
    assert (ola["function"], ola["agreement"], ola["department"]) == ("server-network", "ola", "")
    assert (ola["metric"], ola["compliance_pct"], ola["median_s"]) == (
        "resolution",
        "50.0",
        "3480.0",
    )


def test_the_jsonl_report_is_one_record_a_line(outcomes: list[ClockOutcome]) -> None:
    out = io.StringIO()
    render_report(outcomes, "jsonl", out, period=PERIOD)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["section"] for r in records] == ["sla"] * 8 + ["ola"] * 4
    assert all(list(r) == list(FLAT_COLUMNS) for r in records)


def test_the_table_report_heads_each_section_with_the_period(
    outcomes: list[ClockOutcome],
) -> None:
    out = io.StringIO()
    render_report(outcomes, "table", out, period=PERIOD)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"SLA compliance per department, service, priority and metric, {PERIOD}"
    assert lines[1].split() == list(SLA_COLUMNS)
    assert lines[10].startswith("agreement default:")  # print is out of ØKF's agreement
    assert lines[11:13] == ["", f"OLA compliance per provider function, {PERIOD}"]
    assert lines[13].split() == list(OLA_COLUMNS)
    assert lines[16].split()[:4] == ["server-network", "P1", "resolution", "2"]
    assert len(lines) == 18


def rated(ticket: str, seq: int, at: datetime, score: int) -> TicketEvent:
    return ev("ticket.rated", ticket, seq, at, score=score, comment="Tak for hjælpen")


# A answered twice (the later answer, 4, arrives first); B and F once; S's rating was
# recorded before its ticket's creation came; OUT-BEFORE is not of the window, W never
# created.
RATINGS = [
    rated("A", 11, after(90), 4), rated("A", 10, after(70), 5), rated("B", 10, after(160), 1),
    rated("F", 10, after(30), 5), rated("OUT-BEFORE", 10, after(20), 5),
    rated("W", 10, after(40), 2),
]  # fmt: skip


@pytest.fixture
async def rated_history(db: asyncpg.Connection) -> asyncpg.Connection:
    await migrate(db)
    recorder = Recorder(METER, PostgresRecordingStore(db))
    s_rating = rated("S", 10, after(-20), 3)
    await recorder.record([s_rating, *EARLY], after(1))
    await recorder.record(MIDDLE, after(61))
    await recorder.record([*REST, *RATINGS], after(210))
    return db


async def test_satisfaction_counts_the_latest_rating_of_each_rated_ticket_of_the_window(
    rated_history: asyncpg.Connection,
) -> None:
    reads = PostgresReads(rated_history)
    assert await satisfaction_of_period(reads, START, END) == [
        RatingCounts("okf", "opus-loen", (1, 0, 0, 1, 0)),
        RatingCounts("okf", "print", (0, 0, 0, 0, 1)),
        RatingCounts("tmf", "esdh", (0, 0, 1, 0, 0)),
    ]
    assert await satisfaction_of_period(reads, START, END, "tmf") == [
        RatingCounts("tmf", "esdh", (0, 0, 1, 0, 0)),
    ]
    with pytest.raises(ValueError, match="empty"):
        await satisfaction_of_period(reads, END, START)


async def report_of(db: asyncpg.Connection, fmt: Format) -> str:
    reads = PostgresReads(db)
    outcomes = await clock_outcomes(reads, START, END, NOW)
    satisfaction = await satisfaction_of_period(reads, START, END)
    out = io.StringIO()
    render_report(outcomes, fmt, out, period=PERIOD, satisfaction=satisfaction)
    return out.getvalue()


OPUS = {"department": "okf", "service": "opus-loen", "ratings": 2, "mean_score": 2.5,
        "satisfied_pct": 50.0, "score_1": 1, "score_2": 0, "score_3": 0, "score_4": 1,
        "score_5": 0}  # fmt: skip


async def test_every_format_of_the_report_shows_satisfaction_beside_compliance(
    rated_history: asyncpg.Connection,
) -> None:
    document = json.loads(await report_of(rated_history, "json"))
    assert list(document) == ["period", "sla", "ola", "satisfaction"]
    assert document["satisfaction"][0] == OPUS
    assert [row["service"] for row in document["satisfaction"]] == ["opus-loen", "print", "esdh"]

    records = [json.loads(line) for line in (await report_of(rated_history, "jsonl")).splitlines()]
    assert [r["section"] for r in records] == ["sla"] * 8 + ["ola"] * 4 + ["satisfaction"] * 3
    assert {k: v for k, v in records[12].items() if v is not None} == {
        "period": PERIOD, "section": "satisfaction", **OPUS}  # fmt: skip

    header, *rows = list(csv.reader(io.StringIO(await report_of(rated_history, "csv"))))
    assert header == [*FLAT_COLUMNS, *SATISFACTION_MEASURES]
    print_row = dict(zip(header, rows[13], strict=True))
    assert (print_row["section"], print_row["service"], print_row["ratings"]) == (
        "satisfaction", "print", "1")  # fmt: skip
    assert (print_row["mean_score"], print_row["satisfied_pct"], print_row["tickets"]) == (
        "5.0", "100.0", "")  # fmt: skip

    lines = (await report_of(rated_history, "table")).splitlines()
    title = lines.index(f"{SATISFACTION_TITLE}, {PERIOD}")
    assert lines[title - 1] == ""
    assert lines[title + 1].split() == list(SATISFACTION_COLUMNS)
    assert lines[title + 2].split() == ["okf", "opus-loen", "2", "2.5", "50.0", "1", "0", "0",
                                        "1", "0"]  # fmt: skip
    assert len(lines) == title + 5
