"""The recording port's contract, the same on PostgreSQL and in memory."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from engine.config import load_config
from engine.escalation import FiredStep
from engine.events import TicketEvent, parse_event
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.clocks import TicketClocks
from engine.sla_clock.meter import ClockMeter
from engine.store.recording import MeasuredClock, MeasuredTicket, StoppedClock
from tests.contract.conftest import Backend
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

METER = ClockMeter(load_config(EXAMPLE_CONFIG))
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, MONDAY + timedelta(minutes=minutes),
                                        **fields)))  # fmt: skip


def created(ticket: str) -> TicketEvent:
    return ev("ticket.created", ticket, 0, 0, department="okf", service="opus-loen",
              priority="P1", subject="Løn")  # fmt: skip


def text(e: TicketEvent) -> str:
    return e.model_dump_json()


def measure(events: list[TicketEvent], minutes: float) -> TicketClocks:
    clocks = METER.measure(events, {}, MONDAY + timedelta(minutes=minutes))
    assert clocks is not None
    return clocks


def written(ticket: str, clocks: TicketClocks) -> list[MeasuredClock]:
    return [MeasuredClock(ticket, clock, clock.due_us[0]) for clock in clocks.clocks]


async def test_tickets_are_added_once_and_locked_in_ticket_order(backend: Backend) -> None:
    async with backend.recording.transaction() as store:
        await store.add_tickets(["B", "A"])
        await store.add_tickets(["A"])
        locked = await store.lock_tickets(["C", "B", "A"])  # C is unknown: not there
    assert [(t.ticket_id, json.loads(t.agreements), list(t.clock_keys), t.event_count)
            for t in locked] == [("A", {}, [], 0), ("B", {}, [], 0)]  # fmt: skip


async def test_events_are_stored_once_and_found_by_ticket_and_id(backend: Backend) -> None:
    first, responded, other = created("A"), ev("ticket.responded", "A", 1, 5), created("B")
    async with backend.recording.transaction() as store:
        await store.add_tickets(["A", "B"])
        assert await store.add_events([(first, text(first)), (other, text(other))]) == [
            first.event_id, other.event_id
        ]  # fmt: skip
    async with backend.recording.transaction() as store:
        added = await store.add_events([(first, text(first)), (responded, text(responded))])
        assert added == [responded.event_id]  # the first again: no second copy
        assert sorted(await store.event_ids(["A"])) == sorted(
            [("A", first.event_id), ("A", responded.event_id)]
        )
        assert await store.stored([responded.event_id, UUID(int=1)]) == {responded.event_id}
        assert await store.creations(["A", "B", "C"]) == {"A": first.event_id,
                                                          "B": other.event_id}  # fmt: skip
        [payload] = await store.payloads([responded.event_id])
    assert parse_event(payload) == responded


async def test_a_transaction_that_fails_leaves_nothing_behind(backend: Backend) -> None:
    first = created("A")

    async def failing() -> None:
        async with backend.recording.transaction() as store:
            await store.add_tickets(["A"])
            await store.add_events([(first, text(first))])
            raise RuntimeError("the batch fails")

    with pytest.raises(RuntimeError):
        await failing()
    async with backend.recording.transaction() as store:
        assert await store.lock_tickets(["A"]) == []
        assert await store.stored([first.event_id]) == set()


async def test_a_ticket_keeps_its_snapshots_and_counts_its_events(backend: Backend) -> None:
    first = created("A")
    clocks = measure([first], 1)
    now = MONDAY + timedelta(minutes=1)
    async with backend.recording.transaction() as store:
        await store.add_tickets(["A", "W"])
        await store.write_tickets(
            [MeasuredTicket("A", clocks, dict(clocks.agreements), 1),
             MeasuredTicket("W", None, {}, 2)],  # waiting for its creation
            now,
        )  # fmt: skip
    async with backend.recording.transaction() as store:
        # Written again with no new snapshot: those it has stay.
        await store.write_tickets([MeasuredTicket("A", clocks, {}, 3)], now)
        a, w = await store.lock_tickets(["A", "W"])
    assert (a.event_count, list(a.clock_keys)) == (3, ["response", "resolution"])
    assert json.loads(a.agreements) == {"sla:okf:opus-loen": clocks.agreements[
        "sla:okf:opus-loen"].to_json()}  # fmt: skip
    assert (json.loads(w.agreements), list(w.clock_keys), w.event_count) == ({}, [], 2)


async def test_a_snapshot_keeps_the_version_it_was_attached_from(backend: Backend) -> None:
    # KFF's customer advice, created in 2027: the example's second version of its SLA.
    created = datetime(2027, 1, 4, 8, tzinfo=CPH)
    creation = parse_event(json.dumps(event("ticket.created", "V", 0, created, department="kff",
                        service="kunderaadgivning", priority="P3", subject="Råd")))  # fmt: skip
    clocks = METER.measure([creation], {}, created)
    assert clocks is not None
    attached = clocks.agreements["sla:kff:kunderaadgivning"]
    assert attached.valid_from == datetime(2027, 1, 1, tzinfo=CPH)
    async with backend.recording.transaction() as store:
        await store.add_tickets(["V"])
        await store.write_tickets(
            [MeasuredTicket("V", clocks, dict(clocks.agreements), 1)], created
        )
    async with backend.recording.transaction() as store:  # as read again after a restart
        (locked,) = await store.lock_tickets(["V"])
    kept = Agreement.from_json(json.loads(locked.agreements)["sla:kff:kunderaadgivning"])
    assert kept == attached
    assert (kept.valid_from, kept.calendar) == (attached.valid_from, "extended-saturday")


async def test_clocks_are_written_and_a_stop_is_told_once(backend: Backend) -> None:
    first, responded = created("A"), ev("ticket.responded", "A", 1, 5)
    now = MONDAY + timedelta(minutes=6)
    async with backend.recording.transaction() as store:
        await store.add_tickets(["A"])
        assert await store.write_clocks(written("A", measure([first], 1)), now) == []
    state, due = await backend.clock("A", "response")
    assert (state, due) == ("running", MONDAY + timedelta(minutes=7.5))  # half of 15 min
    stopped = written("A", measure([first, responded], 6))
    async with backend.recording.transaction() as store:
        assert await store.write_clocks(stopped, now) == [StoppedClock("response", "sla", 300.0)]
    async with backend.recording.transaction() as store:
        assert await store.write_clocks(stopped, now) == []  # stopped before: not again
        await store.remove_clocks([("A", "resolution")])
    assert (await backend.clock("A", "response"))[0] == "met"
    with pytest.raises((KeyError, AssertionError)):
        await backend.clock("A", "resolution")


async def test_a_clock_measured_as_its_row_stands_is_not_written_again(
    backend: Backend,
) -> None:
    first, responded = created("A"), ev("ticket.responded", "A", 1, 5)
    minute = [MONDAY + timedelta(minutes=m) for m in range(7)]
    async with backend.recording.transaction() as store:
        await store.write_clocks(written("A", measure([first], 1)), minute[1])
    # Measured again later with nothing new: both clocks still run toward the same
    # deadlines, so their rows keep the first measurement (a minute of business time).
    async with backend.recording.transaction() as store:
        assert await store.write_clocks(written("A", measure([first], 4)), minute[4]) == []
    assert await backend.measured("A", "response") == (minute[1], 60.0)
    assert await backend.measured("A", "resolution") == (minute[1], 60.0)
    # The response stops: that clock is written (and told stopped), the other is not.
    async with backend.recording.transaction() as store:
        assert await store.write_clocks(
            written("A", measure([first, responded], 6)), minute[6]
        ) == [StoppedClock("response", "sla", 300.0)]
    assert await backend.measured("A", "response") == (minute[6], 300.0)
    assert await backend.measured("A", "resolution") == (minute[1], 60.0)
    assert (await backend.clock("A", "response"))[0] == "met"


async def test_steps_are_superseded_and_restored(backend: Backend) -> None:
    await backend.add_clock("A", "response", (MONDAY, MONDAY + timedelta(minutes=5)))
    step = FiredStep(
        ticket_id="A", clock_key="response", metric="response", agreement_kind="sla",
        department="okf", service="opus-loen", function="helpdesk", priority="P1",
        calendar="office", target_s=900.0, step=0.5, tier="operational", due_at=MONDAY,
        fired_at=MONDAY, deadline=None,
    )  # fmt: skip
    async with backend.firing.transaction() as firing:
        await firing.record_steps([step])
    later = MONDAY + timedelta(minutes=1)
    async with backend.recording.transaction() as store:
        assert await store.fired_steps(["A"]) == {("A", "response"): {0.5: (MONDAY, True)}}
        await store.supersede_steps([("A", "response", 0.5)], later)
        assert await store.fired_steps(["A"]) == {("A", "response"): {0.5: (MONDAY, False)}}
        await store.restore_steps([("A", "response", 0.5)])
        assert await store.fired_steps(["A", "B"]) == {("A", "response"): {0.5: (MONDAY, True)}}
