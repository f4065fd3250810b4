"""The recorder's decisions on the in-memory store: what a batch records, refuses, measures,
undoes and announces, all or nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from engine.events import TicketEvent
from engine.intake.recorder import Recorder
from engine.store.memory.recording import MemoryRecordingStore, MemoryRecordingTransaction
from engine.store.memory.tables import StepRow, Tables
from engine.store.recording import StoppedClock
from tests.helpers import counting
from tests.unit.test_simulate import METER, at, ev


def created(ticket: str, seq: int = 0) -> TicketEvent:
    return ev("ticket.created", ticket, seq, 0, department="okf", service="opus-loen",
              priority="P1", subject="Løn")  # fmt: skip


@pytest.fixture
def tables() -> Tables:
    return Tables()


@pytest.fixture
def recorder(tables: Tables) -> Recorder:
    return Recorder(METER, MemoryRecordingStore(tables))


async def test_a_batch_records_its_events_and_measures_their_tickets(
    recorder: Recorder, tables: Tables
) -> None:
    responded = ev("ticket.responded", "A", 1, 5)
    outcome = await recorder.record([created("A"), created("B"), responded], at(6))
    assert (outcome.recorded, outcome.measured, outcome.waiting) == (3, 2, 0)
    assert outcome.kinds == {("ticket.created", "web"): 2, ("ticket.responded", "web"): 1}
    assert outcome.stopped == [StoppedClock("response", "sla", 300.0)]
    assert tables.clocks[("A", "response")].state == "met"
    assert tables.clocks[("B", "response")].next_due_at == at(7.5)  # half of 15 minutes
    assert (tables.tickets["A"].event_count, tables.tickets["A"].priority) == (2, "P1")
    assert list(tables.tickets["A"].agreements) == ["sla:okf:opus-loen"]


async def test_a_redelivered_batch_has_no_second_effect(recorder: Recorder, tables: Tables) -> None:
    batch = [created("A"), ev("ticket.responded", "A", 1, 5)]
    await recorder.record(batch, at(6))
    again = await recorder.record([*batch, batch[1]], at(7))
    assert (again.recorded, again.measured, again.stopped) == (0, 0, [])
    assert again.duplicate_ids == [str(e.event_id) for e in [*batch, batch[1]]]
    assert tables.tickets["A"].event_count == 2


async def test_an_event_before_its_creation_waits_then_counts(
    recorder: Recorder, tables: Tables
) -> None:
    early = await recorder.record([ev("ticket.responded", "A", 1, 5)], at(5))
    assert (early.recorded, early.measured, early.waiting) == (1, 1, 1)
    assert tables.clocks == {}
    later = await recorder.record([created("A")], at(6))
    assert (later.waiting, later.stopped) == (0, [StoppedClock("response", "sla", 300.0)])


async def test_a_second_creation_is_refused_and_the_rest_recorded(
    recorder: Recorder, tables: Tables
) -> None:
    await recorder.record([created("A")], at(1))
    second, comment = created("A", seq=7), ev("ticket.responded", "A", 1, 2)
    outcome = await recorder.record([second, comment], at(3))
    assert [r.kind for r in outcome.refused.values()] == ["second_creation"]
    assert list(outcome.refused) == [second.event_id]
    assert (outcome.recorded, second.event_id in tables.events) == (1, False)


async def test_a_ticket_past_its_limit_refuses_the_rest(tables: Tables) -> None:
    recorder = Recorder(METER, MemoryRecordingStore(tables), max_events_per_ticket=3)
    events = [created("A"), *(ev("ticket.commented", "A", n, n, visibility="internal",
                                  body="x") for n in range(1, 5))]  # fmt: skip
    outcome = await recorder.record(events, at(5))
    assert [r.kind for r in outcome.refused.values()] == ["ticket_limit", "ticket_limit"]
    assert tables.tickets["A"].event_count == 3


async def test_a_batch_that_fails_leaves_the_tables_and_the_kept_history_as_they_were(
    recorder: Recorder, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    await recorder.record([created("A")], at(1))
    before = (dict(tables.events), tables.tickets["A"].event_count)

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("the transaction fails after the clocks were measured")

    with monkeypatch.context() as patch:
        patch.setattr("engine.store.memory.recording.MemoryRecordingTransaction.fired_steps",
                      broken)  # fmt: skip
        with pytest.raises(RuntimeError):
            await recorder.record([ev("ticket.responded", "A", 1, 5)], at(6))
    assert (dict(tables.events), tables.tickets["A"].event_count) == before
    assert tables.clocks[("A", "response")].state == "running"
    # The reading the batch read on in place went with it: the next batch reads the
    # committed events afresh, and the rolled-back response is not among them.
    measured_everything: list[object] = []
    with monkeypatch.context() as patch:
        patch.setattr(METER, "measure", counting(METER.measure, measured_everything))
        await recorder.record([ev("ticket.status_changed", "A", 2, 6, status="in_progress")],
                              at(20))  # fmt: skip
    assert len(measured_everything) == 1
    assert tables.clocks[("A", "response")].state == "breached"


async def test_a_recorder_reads_what_another_recorded(tables: Tables) -> None:
    first = Recorder(METER, MemoryRecordingStore(tables))
    second = Recorder(METER, MemoryRecordingStore(tables))
    await first.record([created("A")], at(1))
    outcome = await second.record([ev("ticket.responded", "A", 1, 5)], at(6))
    assert outcome.stopped == [StoppedClock("response", "sla", 300.0)]
    assert tables.tickets["A"].event_count == 2


async def test_late_events_supersede_a_step_and_restore_it(
    recorder: Recorder, tables: Tables
) -> None:
    await recorder.record([created("A")], at(1))
    assert tables.clocks[("A", "resolution")].next_due_at == at(60)  # half of 2 hours
    # The half-way step fired late, at minute 70.
    tables.steps[("A", "resolution", 0.5)] = StepRow(
        ticket_id="A", clock_key="resolution", step=0.5, tier="operational",
        metric="resolution", agreement_kind="sla", department="okf", service="opus-loen",
        priority="P1", target_s=7200.0, due_at=at(60), fired_at=at(70),
    )  # fmt: skip
    # Word comes late that the requester was waited for from minute 2: by minute 70 the
    # clock had run 2 minutes, so the step was never reached.
    await recorder.record([ev("ticket.status_changed", "A", 1, 2, status="pending_customer")],
                          at(71))  # fmt: skip
    step = tables.steps[("A", "resolution", 0.5)]
    assert (step.status, step.superseded_at) == ("superseded", at(71))
    # Then that the wait ended at minute 5: by minute 70 it had run 67, past 60.
    await recorder.record([ev("ticket.status_changed", "A", 2, 5, status="in_progress")],
                          at(72))  # fmt: skip
    step = tables.steps[("A", "resolution", 0.5)]
    assert (step.status, step.superseded_at) == ("fired", None)


async def test_a_batch_announces_its_earliest_due_instant_once_committed(
    recorder: Recorder, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[datetime | None] = []
    tables.due_listeners.append(heard.append)
    await recorder.record([created("A")], at(1))
    assert heard == [at(7.5)]

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("fails after announcing")

    with monkeypatch.context() as patch:
        patch.setattr("engine.store.memory.recording.MemoryRecordingTransaction.write_clocks",
                      broken)  # fmt: skip
        with pytest.raises(RuntimeError):
            await recorder.record([created("B")], at(2))
    assert heard == [at(7.5)]  # a rolled-back batch announces nothing


async def test_remeasure_measures_known_tickets_again(recorder: Recorder, tables: Tables) -> None:
    await recorder.record([created("A")], at(1))
    del tables.clocks[("A", "response")]
    assert await recorder.remeasure(["A", "UNKNOWN"], at(2)) == 1
    assert tables.clocks[("A", "response")].next_due_at == at(7.5)


def public(ticket: str, seq: int, minutes: float) -> TicketEvent:
    return ev("ticket.commented", ticket, seq, minutes, visibility="public", body="Status")


def handed_to_store(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, the keys of the clocks each batch hands the store to write."""
    written: list[list[str]] = []
    write = MemoryRecordingTransaction.write_clocks

    async def spy(self: MemoryRecordingTransaction, clocks: Any, now: datetime) -> Any:
        written.append([c.clock.key for c in clocks])
        return await write(self, clocks, now)

    monkeypatch.setattr(MemoryRecordingTransaction, "write_clocks", spy)
    return written


async def test_stopped_clocks_are_not_written_again_and_go_when_a_late_event_ends_them(
    recorder: Recorder, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    await recorder.record([created("A"), ev("ticket.responded", "A", 1, 5)], at(6))
    await recorder.record([public("A", 2, 20)], at(21))
    written = handed_to_store(monkeypatch)
    await recorder.record([public("A", 3, 40)], at(41))
    await recorder.record([public("A", 4, 60)], at(61))
    cycles = sorted(key for _, key in tables.clocks if key.startswith("update:"))
    states = [tables.clocks[("A", key)].state for key in cycles]
    assert states == ["met", "met", "met", "running"]
    # Only a clock whose row changes is handed to the store: the cycle that ends and the
    # one that starts. The running resolution clock, the response clock stopped at 5 and
    # the cycles that ended before stand as this recorder wrote them.
    assert written == [[cycles[1], cycles[2]], [cycles[2], cycles[3]]]
    # Word comes late that the ticket was closed at 10: the later cycles never were.
    await recorder.record([ev("ticket.status_changed", "A", 5, 10, status="closed")], at(62))
    assert sorted(key for _, key in tables.clocks if key.startswith("update:")) == cycles[:1]
    assert tables.clocks[("A", cycles[0])].stopped_at == at(10)


async def test_a_clock_another_commit_wrote_since_is_written_again(
    recorder: Recorder, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    await recorder.record([created("A")], at(1))
    written = handed_to_store(monkeypatch)
    in_progress = ev("ticket.status_changed", "A", 1, 2, status="in_progress")
    await recorder.record([in_progress], at(3))
    assert written == []  # nothing the clocks show changed: no row handed over
    # Another process (a firing, another engine) writes the response clock, raising the
    # ticket's version as every such commit does.
    row = tables.clocks[("A", "response")]
    tables.clocks[("A", "response")] = replace(row, next_due_at=at(9))
    tables.feed_changed("A", at(4))
    await recorder.record([ev("ticket.commented", "A", 2, 4, visibility="internal",
                              body="Ser på det")], at(5))  # fmt: skip
    assert [sorted(keys) for keys in written] == [["resolution", "response"]]  # all of them
    assert tables.clocks[("A", "response")].next_due_at == at(7.5)


def rated(ticket: str, seq: int, minutes: float, score: int, **fields: Any) -> TicketEvent:
    return ev("ticket.rated", ticket, seq, minutes, score=score, **fields)


def kept_rating(tables: Tables, ticket: str) -> tuple[int, datetime] | None:
    row = tables.ratings.get(ticket)
    return None if row is None else (row.score, row.rated_at)


async def test_the_latest_rating_counts_whatever_order_ratings_arrive_in(
    recorder: Recorder, tables: Tables
) -> None:
    await recorder.record([created("A"), ev("ticket.status_changed", "A", 1, 30,
                                             status="resolved")], at(31))  # fmt: skip
    first = await recorder.record([rated("A", 2, 40, 2)], at(41))
    assert [(r.ticket_id, r.department, r.service, r.score) for r in first.rated] == [
        ("A", "okf", "opus-loen", 2)
    ]
    later = await recorder.record([rated("A", 3, 60, 5, comment="Tak")], at(61))
    assert [r.score for r in later.rated] == [5]
    # An answer dated before the latest, arriving after it: kept as an event, not counted.
    late = await recorder.record([rated("A", 4, 50, 1)], at(62))
    assert (late.recorded, late.rated) == (1, [])
    assert kept_rating(tables, "A") == (5, at(60))
    # Two ratings at one instant: the greater event id counts, as the clocks order them.
    three, four = rated("A", 5, 70, 3), rated("A", 6, 70, 4)
    winner = 3 if three.event_id > four.event_id else 4
    await recorder.record([four, three], at(71))
    assert kept_rating(tables, "A") == (winner, at(70))


async def test_a_rating_of_an_unknown_ticket_is_held_until_its_creation(
    recorder: Recorder, tables: Tables
) -> None:
    early = await recorder.record([rated("B", 1, 40, 4)], at(41))
    assert (early.recorded, early.waiting, early.rated) == (1, 1, [])
    assert kept_rating(tables, "B") == (4, at(40))  # kept, but no period counts it yet
    creation = await recorder.record([created("B")], at(42))
    assert [(r.ticket_id, r.score) for r in creation.rated] == [("B", 4)]
    # The creation's later events do not count the rating again.
    again = await recorder.record([ev("ticket.responded", "B", 2, 43)], at(44))
    assert again.rated == []


async def test_a_redelivered_rating_has_no_second_effect(
    recorder: Recorder, tables: Tables
) -> None:
    rating = rated("A", 1, 40, 3)
    await recorder.record([created("A"), rating], at(41))
    again = await recorder.record([rating], at(42))
    assert (again.recorded, again.rated, again.duplicates) == (0, [], 1)
    assert kept_rating(tables, "A") == (3, at(40))
