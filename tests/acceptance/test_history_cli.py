"""export-events, simulate and report as an administrator runs them, on a real store."""

from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.recording import PostgresRecordingStore
from tests.daemons import SLA_ENGINE
from tests.helpers import EXAMPLE_CONFIG, REPO
from tests.poison import poison_classes
from tests.streams import CPH, event, stream

pytestmark = pytest.mark.acceptance
NOVEMBER = datetime(2030, 11, 4, 8, tzinfo=CPH)


def sla_engine(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLA_ENGINE, *args], capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "SLA_ENGINE_DATABASE_URL": database_url},
    )  # fmt: skip


def ratings(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Survey answers after resolution for about half the tickets, some answered twice."""
    rng = random.Random(seed)
    answers = []
    for resolved in (e for e in events if e.get("status") == "resolved"):
        at = datetime.fromisoformat(resolved["occurred_at"])
        for n in range(rng.choice([0, 0, 1, 1, 2])):
            at += timedelta(minutes=rng.randint(1, 600))
            answers.append(event("ticket.rated", resolved["ticket_id"], 50 + n, at,
                                 score=rng.randint(1, 5)))  # fmt: skip
    return answers


async def recorded_month(db: asyncpg.Connection) -> list[TicketEvent]:
    """Two weeks of tickets recorded as intake records them, and one the week after, with
    their requesters' ratings; a third of the ratings recorded before their tickets."""
    await migrate(db)
    recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
    month = stream(60, seed=4, day=NOVEMBER)
    week_after = stream(5, seed=5, prefix="L", day=NOVEMBER + timedelta(days=14))
    events = [parse_event(json.dumps(e)) for e in [*month, *ratings(month, seed=6)]]
    later = [parse_event(json.dumps(e)) for e in [*week_after, *ratings(week_after, seed=7)]]
    early = [e for e in events if e.type == "ticket.rated"][::3]
    now = datetime(2030, 12, 20, tzinfo=UTC)
    await recorder.record(early, now)
    await recorder.record([e for e in [*events, *later] if e not in early], now)
    return events


async def test_exported_events_simulate_to_the_clocks_the_store_holds(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    events = await recorded_month(db)
    exported = tmp_path / "november.jsonl"
    result = sla_engine(database_url, "export-events", "--from", "2030-11-01",
                        "--to", "2030-11-15", "--out", str(exported))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = exported.read_text().splitlines()
    assert sorted(json.loads(line)["event_id"] for line in lines) == sorted(
        str(e.event_id) for e in events
    )  # the window's tickets, and none created after it
    until = "2030-12-20T00:00:00+00:00"
    simulated = sla_engine(database_url, "simulate", "--format", "json", "--until", until,
                           str(exported))  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    document = json.loads(simulated.stdout)
    fired = {(s["ticket_id"], s["metric"], s["step"]) for s in document["timeline"]}
    stored = await db.fetch(
        "SELECT ticket_id, metric, steps, step_due_at FROM clocks WHERE ticket_id LIKE 'T-%'"
    )
    reached = {(r["ticket_id"], r["metric"], step) for r in stored
               for step, due in zip(r["steps"], r["step_due_at"], strict=True)
               if due is not None and due <= datetime(2030, 12, 20, tzinfo=UTC)}  # fmt: skip
    assert fired == reached  # the steps the store says these clocks reach, fired
    assert document["totals"]["tickets"] == 60

    report = sla_engine(database_url, "report", "--from", "2030-11-01", "--to", "2030-11-15",
                        "--format", "json")  # fmt: skip
    assert report.returncode == 0, report.stderr
    reported = json.loads(report.stdout)
    # The report and the simulation count the same clocks alike, and the same ratings.
    assert counts(reported["sla"]) == counts(document["sla"])
    # The report adds the configuration's names beside the ids, as in its other sections.
    ids_only = [
        {k: v for k, v in r.items() if not k.endswith("_name")} for r in reported["satisfaction"]
    ]
    assert ids_only == document["satisfaction"]
    assert all(r["department_name"] and r["service_name"] for r in reported["satisfaction"])
    rated = {e.ticket_id for e in events if e.type == "ticket.rated"}
    assert sum(row["ratings"] for row in reported["satisfaction"]) == len(rated) > 10
    assert document["totals"]["rated_tickets"] == len(rated)


def counts(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], tuple[int, int]]:
    keys = ("department", "service", "priority", "metric", "agreement")
    return {tuple(r[k] for k in keys): (r["met"], r["breached"]) for r in rows}


def test_an_empty_period_is_refused(database_url: str) -> None:
    result = sla_engine(database_url, "report", "--from", "2030-11-15", "--to", "2030-11-01")
    assert result.returncode == 2
    assert "the window is empty" in result.stderr
    bad_date = sla_engine(database_url, "export-events", "--from", "1. november")
    assert bad_date.returncode == 2
    assert "neither YYYY-MM-DD nor an RFC 3339 instant" in bad_date.stderr


def test_an_unreachable_database_is_a_clear_error_without_its_password() -> None:
    nowhere = "postgresql://postgres:hemmeligt@127.0.0.1:1/sla_engine"
    result = sla_engine(nowhere, "report", "--from", "2026-11-01")
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr
    assert "hemmeligt" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_database_or_an_unwritable_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = "postgresql://postgres@127.0.0.1:5432/no_such_database_here"
    result = sla_engine(missing, "report", "--from", "2026-11-01")
    assert result.returncode == 1
    assert 'refused: 3D000 database "no_such_database_here" does not exist' in result.stderr
    nowhere = tmp_path / "no" / "such" / "folder" / "x.jsonl"
    result = sla_engine(missing, "export-events", "--from", "2026-11-01", "--out", str(nowhere))
    assert result.returncode == 1
    assert f"cannot write {nowhere}: No such file or directory" in result.stderr


def test_simulating_only_refused_events_says_so(tmp_path: Path) -> None:
    unknown = {"schema_version": 1, "event_id": "6f1d7a55-5f36-4a51-9a39-0c5a3c1b8f01",
               "type": "ticket.created", "ticket_id": "X-1",
               "occurred_at": "2030-11-25T09:00:00+01:00", "channel": "web",
               "department": "nowhere", "service": "esdh", "priority": "P1",
               "subject": "x"}  # fmt: skip
    events = tmp_path / "refused.jsonl"
    events.write_text(json.dumps(unknown) + "\n")
    result = sla_engine("postgresql://unused", "simulate", str(events))
    assert result.returncode == 1
    assert "nothing to simulate" in result.stderr
    assert "all 1 events refused, the first: unknown department 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulating_poison_lines_names_each_line_without_a_traceback(tmp_path: Path) -> None:
    poison = [p for p in poison_classes(0) if p.kind in ("invalid", "malformed")]
    events = tmp_path / "poison.jsonl"
    events.write_bytes(b"".join(p.body + b"\n" for p in poison))
    result = sla_engine("postgresql://unused", "simulate", str(events))
    assert result.returncode == 1
    assert f"{len(poison)} lines are not events" in result.stderr
    assert "Traceback" not in result.stderr
    for number, p in enumerate(poison, start=1):
        line = next(x for x in result.stderr.splitlines() if x.startswith(f"{events}:{number}:"))
        assert p.says in line or p.says == "invalid event", line
    assert result.stderr.count("Instant should be from 1970-01-01T00:00:00Z") == 3


async def test_report_names_totals_and_the_monthly_html(
    db: asyncpg.Connection, database_url: str
) -> None:
    from engine.store.postgres.recording import PostgresRecordingStore as Recording
    from tests.monthly_history import record_history

    await migrate(db)
    await record_history(Recording(db))
    table = sla_engine(database_url, "report", "--month", "2026-11", "--department", "okf")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(
        line.startswith("Økonomiforvaltningen") and "KMD Opus Løn" in line and " P1 " in line
        for line in lines
    )  # names, not ids
    totals = lines[lines.index(next(x for x in lines if x.startswith("Totals per department"))) :]
    assert totals[2].split()[-5:] == ["4", "9", "3", "0", "75.0"]  # ØKF, every clock of 4 tickets
    assert any("Datavarehus og ledelsesinformation" in line for line in totals)

    html = sla_engine(database_url, "report", "--month", "2026-11", "--department", "okf",
                      "--format", "html", "--lang", "en")  # fmt: skip
    assert html.returncode == 0, html.stderr
    assert "<h1>Monthly report for Økonomiforvaltningen, November 2026</h1>" in html.stdout
    assert "<caption>Volume times price in November 2026</caption>" in html.stdout

    csv_out = sla_engine(database_url, "report", "--from", "2026-11-01", "--to", "2026-12-01",
                         "--format", "csv")  # fmt: skip
    assert csv_out.returncode == 0, csv_out.stderr
    header = csv_out.stdout.splitlines()[0].split(",")
    assert header[-3:] == ["department_name", "service_name", "function_name"]

    refused = sla_engine(database_url, "report", "--month", "2026-11", "--format", "html")
    assert refused.returncode == 2
    assert "--department" in refused.stderr
    unknown = sla_engine(database_url, "report", "--month", "2026-11", "--department", "nope")
    assert unknown.returncode == 1
    assert "no department 'nope'" in unknown.stderr
