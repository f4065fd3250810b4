"""The simulator in memory: steps at their instants, outcomes, and its printed forms."""

from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.business_time.calendar import to_us
from engine.config import load_config
from engine.escalation import due_steps
from engine.events import TicketEvent, parse_event
from engine.reporting.compliance import sla_records
from engine.simulate.core import simulate
from engine.simulate.render import print_comparison, print_simulation
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.meter import ClockMeter
from engine.sla_clock.timeline import READ_ORDER
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

METER = ClockMeter(load_config(EXAMPLE_CONFIG))
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)


def at(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at(minutes), **fields)))


def created(
    ticket: str, priority: str = "P1", department: str = "okf", minutes: float = 0
) -> TicketEvent:
    # ØKF's Opus Løn, P1: response 15 minutes (steps 0.5, 0.75, 0.9, 1.0, 1.5, 2.0).
    return ev("ticket.created", ticket, 0, minutes, department=department,
              service="opus-loen", priority=priority, subject="Løn", requester={})  # fmt: skip


def test_every_step_fires_at_its_instant_and_the_clock_ends_breached() -> None:
    run = simulate(METER, [created("A")], at(60))
    response = [(s.step, s.tier, s.due_at) for s in run.steps if s.metric == "response"]
    assert response == [
        (0.5, "operational", at(7.5)), (0.75, "operational", at(11.25)),
        (0.9, "tactical", at(13.5)), (1.0, "tactical", at(15)),
        (1.5, "strategic", at(22.5)), (2.0, "strategic", at(30)),
    ]  # fmt: skip
    assert run.breaches == 1  # the resolution (2 hours) is not due by 10:00
    outcomes = {o.metric: o.outcome for o in run.outcomes}
    assert outcomes == {"response": "breached", "resolution": "open"}


def test_compliance_counts_a_running_clock_past_its_target_breached_and_in_no_median() -> None:
    # ØKF's Opus Løn, P1: response 15 minutes. At 10:00, RUNNING-LATE still waits for
    # its response, RUNNING for its own within target; MET had it after 10 minutes,
    # LATE after 20.
    events = [
        created("RUNNING-LATE"), created("RUNNING", minutes=50),
        created("MET"), ev("ticket.responded", "MET", 1, 10),
        created("LATE"), ev("ticket.responded", "LATE", 1, 20),
    ]  # fmt: skip
    run = simulate(METER, events, at(60))
    response = {o.ticket_id: o for o in run.outcomes if o.metric == "response"}
    assert {t: (o.outcome, o.running, o.elapsed_s) for t, o in response.items()} == {
        "RUNNING-LATE": ("breached", True, 3600),
        "RUNNING": ("open", True, 600),
        "MET": ("met", False, 600),
        "LATE": ("breached", False, 1200),
    }
    (row,) = (r for r in sla_records(run.outcomes) if r["metric"] == "response")
    assert (row["tickets"], row["met"], row["breached"], row["open"]) == (4, 1, 2, 1)
    assert row["compliance_pct"] == 33.3
    # Over the decided clocks that stopped: RUNNING-LATE's hour is not yet its figure.
    assert (row["median_s"], row["p90_s"]) == (600, 1200)


def test_a_response_in_time_stops_the_steps_it_had_not_reached() -> None:
    run = simulate(METER, [created("A"), ev("ticket.responded", "A", 1, 10)], at(60))
    assert [s.step for s in run.steps if s.metric == "response"] == [0.5]
    response = next(o for o in run.outcomes if o.metric == "response")
    assert (response.outcome, response.elapsed_s) == ("met", 600)


def test_a_downgrade_never_fires_a_fired_step_again() -> None:
    events = [created("A"), ev("ticket.priority_changed", "A", 1, 10, priority="P4")]
    run = simulate(METER, events, at(60 * 24 * 30))
    response = [s.step for s in run.steps if s.metric == "response"]
    assert response.count(0.5) == 1  # fired under P1 at 09:07:30, not again under P4
    assert len(response) == len(set(response))


def test_a_function_handed_the_ticket_back_fires_its_steps_once() -> None:
    # Ten minutes each, 200 times: each function's OLA clock passes its target
    # (ØKF Opus Løn, P1: 1h30m and 2h) and more, and every step fires once per ticket.
    functions = ["pc-software", "server-network"]
    flips = [ev("ticket.assigned", "A", n + 1, 10 * n, function=functions[n % 2])
             for n in range(200)]  # fmt: skip
    run = simulate(METER, [created("A"), *flips], at(60 * 24 * 7))
    fired = [(s.clock_key, s.step) for s in run.steps if s.agreement == "ola"]
    assert len(fired) == len(set(fired))
    assert {key for key, _ in fired} == {
        "ola:1:pc-software",
        "ola:2:server-network",
        # Ten minutes to act of fifteen: the first steps of each function's response.
        "ola:1:pc-software:response",
        "ola:2:server-network:response",
    }
    assert {step for _, step in fired} >= {0.5, 1.0, 2.0}


def fired_after_every_event(events: list[TicketEvent], until: datetime) -> set[Any]:
    """The steps fired measuring before every event and at the end, as the daemon does:
    (ticket, clock, step, due instant)."""
    ordered = sorted(events, key=READ_ORDER)
    attached: dict[str, Agreement] = {}
    fired: dict[str, set[float]] = {}
    steps = set()
    for n, instant in enumerate([*(e.occurred_at for e in ordered[1:]), until], start=1):
        measured = METER.measure(ordered[:n], attached, instant)
        if measured is None:
            continue
        for key, agreement in measured.agreements.items():
            attached.setdefault(key, agreement)
        for clock in measured.clocks:
            done = fired.setdefault(clock.key, set())
            tiers = [tier for _, tier in clock.agreement.steps]
            due_us = clock.due_us[: len(tiers)]
            for due in due_steps(clock.agreement.fractions, tiers, due_us, done, to_us(instant)):
                done.add(due.step)
                steps.add(
                    (
                        ordered[0].ticket_id,
                        clock.key,
                        due.step,
                        to_us(clock.calendar.instant(due.due_at)),
                    )
                )
    return steps


def test_after_a_retarget_the_steps_are_those_of_a_measurement_before_every_event() -> None:
    # The simulator measures only before the events that can move a step already due
    # (retargets, reclassifications, reopens, hand-backs); pauses, stops, comments and
    # responses in between change nothing before their instant.
    status, change = "ticket.status_changed", "ticket.priority_changed"
    public = {"visibility": "public", "body": "x"}
    re = [
        # Resolved under P4, upgraded while stopped, reopened under P1 long after.
        created("RE", "P4"),
        ev(change, "RE", 1, 1, priority="P4"),
        ev("ticket.responded", "RE", 2, 5),
        ev("ticket.commented", "RE", 3, 30, **public),
        ev(status, "RE", 4, 60, status="resolved"),
        ev(change, "RE", 5, 90, priority="P1"),
        ev(status, "RE", 6, 300, status="in_progress"),
        ev("ticket.commented", "RE", 7, 310, **public),
        ev(status, "RE", 8, 320, status="pending_customer"),
        ev(status, "RE", 9, 400, status="in_progress"),
        ev(status, "RE", 10, 900, status="resolved"),
    ]
    hb = [
        # Handed on, downgraded while away, handed back under the new priority.
        created("HB", "P3"),
        ev("ticket.assigned", "HB", 1, 1, function="pc-software"),
        ev(change, "HB", 2, 2, priority="P1"),
        ev("ticket.assigned", "HB", 3, 20, function="server-network"),
        ev(change, "HB", 4, 40, priority="P2"),
        ev("ticket.responded", "HB", 5, 45),
        ev("ticket.assigned", "HB", 6, 200, function="pc-software"),
        ev("ticket.commented", "HB", 7, 210, **public),
        ev(status, "HB", 8, 600, status="resolved"),
    ]
    until = at(60 * 24 * 3)
    run = simulate(METER, [*re, *hb], until)
    simulated = {(s.ticket_id, s.clock_key, s.step, to_us(s.due_at)) for s in run.steps}
    assert len(simulated) == len(run.steps)
    assert simulated == fired_after_every_event(re, until) | fired_after_every_event(hb, until)
    assert {s.metric for s in run.steps} >= {"response", "resolution", "update"}


def test_duplicates_refusals_and_tickets_never_created_are_counted() -> None:
    first = created("A")
    unknown = created("X", department="nowhere")
    orphan = ev("ticket.responded", "B", 1, 5)
    run = simulate(METER, [first, first, unknown, orphan], at(5))
    assert (run.duplicates, run.tickets, run.waiting, run.events) == (1, 2, 1, 2)
    assert run.refused == [(str(unknown.event_id), "unknown department 'nowhere'")]


def test_virtual_time_ends_at_the_last_event_unless_told() -> None:
    events = [created("A"), ev("ticket.commented", "A", 1, 12, visibility="internal", body="x")]
    assert simulate(METER, events).until == at(12)
    assert [s.step for s in simulate(METER, events).steps] == [0.5, 0.75]
    early = simulate(METER, events, at(8))  # the comment at 12 is after the end
    assert (early.events, [s.step for s in early.steps]) == (1, [0.5])


def test_out_of_order_input_gives_the_same_decisions() -> None:
    events = [created("A"), ev("ticket.responded", "A", 1, 10), created("C")]
    forward = simulate(METER, events, at(60))
    backward = simulate(METER, list(reversed(events)), at(60))
    assert forward.steps == backward.steps
    assert sorted(map(repr, forward.outcomes)) == sorted(map(repr, backward.outcomes))


def rated(ticket: str, seq: int, minutes: float, score: int) -> TicketEvent:
    return ev("ticket.rated", ticket, seq, minutes, score=score)


def test_each_created_ticket_counts_its_latest_rating_under_its_terms_as_they_stand() -> None:
    events = [
        # A: rated twice, the later answer first; then reclassified to SOF.
        created("A"), rated("A", 2, 40, 5), rated("A", 1, 30, 2),
        ev("ticket.reclassified", "A", 3, 50, department="sof"),
        # B: its rating arrives before its creation, and counts.
        rated("B", 1, 20, 4), created("B", minutes=10),
        # C: never created; D: rated after the end of virtual time.
        rated("C", 1, 20, 1), created("D"), rated("D", 1, 90, 1),
    ]  # fmt: skip
    run = simulate(METER, events, at(60))
    assert sorted(run.ratings) == [
        ("A", "sof", "opus-loen", 5),
        ("B", "okf", "opus-loen", 4),
    ]
    forward = simulate(METER, sorted(events, key=lambda e: e.occurred_at), at(60))
    assert sorted(forward.ratings) == sorted(run.ratings)


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "json"])
def test_satisfaction_is_printed_beside_compliance(fmt: str) -> None:
    events = [created("A"), rated("A", 1, 30, 5), created("B", minutes=1), rated("B", 1, 31, 2)]
    out = io.StringIO()
    print_simulation(simulate(METER, events, at(60)), fmt, out)  # type: ignore[arg-type]
    text = out.getvalue()
    expected = {"department": "okf", "service": "opus-loen", "ratings": 2, "mean_score": 3.5,
                "satisfied_pct": 50.0, "score_1": 0, "score_2": 1, "score_3": 0, "score_4": 0,
                "score_5": 1}  # fmt: skip
    if fmt == "json":
        assert json.loads(text)["satisfaction"] == [expected]
        assert json.loads(text)["totals"]["rated_tickets"] == 2
    elif fmt == "jsonl":
        records = [json.loads(line) for line in text.splitlines()]
        assert [r for r in records if r["section"] == "satisfaction"] == [
            {"section": "satisfaction", **expected}
        ]
    elif fmt == "csv":
        section = next(
            part for part in text.split("\n\n") if part.startswith("department,service,ratings")
        )
        [row] = list(csv.DictReader(io.StringIO(section)))
        assert row == {key: str(value) for key, value in expected.items()}
    else:
        assert "Satisfaction per department and service" in text
        lines = text.splitlines()
        title = next(i for i, line in enumerate(lines) if line.startswith("Satisfaction per"))
        assert lines[title + 1].split()[:5] == [
            "department", "service", "ratings", "mean_score", "satisfied_pct"]  # fmt: skip
        assert lines[title + 2].split()[:5] == ["okf", "opus-loen", "2", "3.5", "50.0"]


def printed(fmt: str, **kwargs: Any) -> str:
    out = io.StringIO()
    run = simulate(METER, [created("A"), created("B", "P3")], at(60))
    print_simulation(run, fmt, out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def test_jsonl_is_one_record_a_line_with_its_section() -> None:
    records = [json.loads(line) for line in printed("jsonl").splitlines()]
    sections = [r["section"] for r in records]
    assert sections[0] == "timeline"
    assert {"timeline", "sla", "totals"} <= set(sections)
    breach = next(r for r in records if r["section"] == "timeline" and r["step"] == 1.0)
    assert (breach["ticket_id"], breach["state"]) == ("A", "breach")
    assert breach["due_at"] == at(15).isoformat()
    sla = [r for r in records if r["section"] == "sla" and r["metric"] == "response"]
    assert {(r["priority"], r["breached"], r["compliance_pct"]) for r in sla} == {
        ("P1", 1, 0.0), ("P3", 0, None)}  # fmt: skip


def test_csv_and_json_parse() -> None:
    document = json.loads(printed("json"))
    assert document["totals"]["breaches"] == 1
    assert {"timeline", "sla", "ola", "satisfaction", "totals"} == set(document)
    sections = printed("csv", with_timeline=False).split("\n\n")
    header, *rows = list(csv.reader(io.StringIO(sections[0])))
    assert header[:5] == ["department", "service", "priority", "metric", "agreement"]
    assert len(rows) == 4  # two priorities, two metrics


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "json"])
def test_a_comparison_shows_both_configurations(fmt: str) -> None:
    run = simulate(METER, [created("A")], at(60))
    out = io.StringIO()
    print_comparison(run, run, ("config", "config"), fmt, out)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "breached_a" in text
    assert "breached_b" in text
    # The same run twice: the same breaches on both sides, no change.
    if fmt == "json":
        rows = json.loads(text)["compare"]
    elif fmt == "jsonl":
        rows = [r for r in map(json.loads, text.splitlines()) if r["section"] == "compare"]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text.split("\n\n")[0])))
    else:
        rows = []
        assert "opus-loen" in text
    response = [r for r in rows if r["metric"] == "response"]
    if fmt != "table":
        assert [(str(r["breached_a"]), str(r["breached_b"])) for r in response] == [("1", "1")]
        assert str(response[0]["change_pp"]) == "0.0"


def test_a_table_shows_durations_for_people() -> None:
    table = printed("table", with_timeline=False)
    assert "15m00s" in table  # the P1 response target
    assert "totals: until" in table


def test_several_processes_decide_the_same_in_the_same_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.simulate import core
    from examples.make_year import year_events

    events = [parse_event(json.dumps(e)) for e in year_events(2030, 200, seed=3)]
    alone = simulate(METER, events)
    monkeypatch.setattr(core, "_PARALLEL_FROM", 1)  # a pool even for 200 tickets
    shared = simulate(METER, events, workers=3)
    assert shared.steps == alone.steps
    assert sorted(map(repr, shared.outcomes)) == sorted(map(repr, alone.outcomes))
    assert (shared.tickets, shared.events, shared.waiting, shared.duplicates) == (
        alone.tickets, alone.events, alone.waiting, alone.duplicates)  # fmt: skip
    assert sorted(shared.ratings) == sorted(alone.ratings)
    assert len(alone.steps) > 100
    assert len(alone.ratings) > 10


def test_the_reader_takes_a_file_as_publish_takes_it(tmp_path: Path) -> None:
    # A byte-order mark (a file saved from Excel or Notepad) and blank lines, as publish.
    from engine.simulate.render import EventFileError, read_events

    line = json.dumps(event("ticket.responded", "A", 1, at(5))).encode()
    good = tmp_path / "good.jsonl"
    good.write_bytes(codecs.BOM_UTF8 + line + b"\n\n" + line + b"\n")
    assert [e.ticket_id for e in read_events(good)] == ["A", "A"]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(line + b"\n" + b'{"type": "ticket.responded"}\n')
    with pytest.raises(EventFileError) as refused:
        read_events(bad)
    assert str(refused.value).startswith(f"{bad}:2: ")
