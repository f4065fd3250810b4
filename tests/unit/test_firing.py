"""The firing transaction on the in-memory store: what fires, once, and what it leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.config import load_config
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.store.memory.firing import MemoryFiringStore
from engine.store.memory.tables import ClockRow, Tables, TicketRow
from tests.helpers import EXAMPLE_CONFIG

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)  # 09:00 in Copenhagen, a Monday
COMPOSER = Composer(load_config(EXAMPLE_CONFIG))
STEPS = [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]
TIERS = ["operational", "operational", "tactical", "tactical", "strategic", "strategic"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def tables_with(*tickets: str) -> Tables:
    """Each ticket's P1 response clock on ØKF's Opus Løn: 15 minutes, steps as the policy's."""
    tables = Tables()
    due = [at(15 * step) for step in STEPS]
    for ticket in tickets:
        tables.tickets[ticket] = TicketRow(ticket)
        tables.clocks[(ticket, "response")] = ClockRow(
            ticket_id=ticket, clock_key="response", metric="response", agreement_kind="sla",
            agreement_key="sla:okf:opus-loen", department="okf", service="opus-loen",
            function="helpdesk", priority="P1", calendar="office", target_s=900.0,
            state="running", running=True, elapsed_s=0.0, fraction=0.0, started_at=T0,
            stopped_at=None, deadline=at(15), next_due_at=due[0], measured_at=T0,
            steps=list(STEPS), tiers=list(TIERS), step_due_at=list(due),
        )  # fmt: skip
    return tables


async def fire(tables: Tables, now: datetime) -> list[tuple[str, float]]:
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, now, 500)
    return [(s.ticket_id, s.step) for s in firing.fired]


async def test_a_due_clock_fires_its_due_steps_once_with_notices_and_moves_on() -> None:
    tables = tables_with("E-1")
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(12), 500)
    assert [(s.step, s.tier, s.due_at) for s in firing.fired] == [
        (0.5, "operational", at(7.5)), (0.75, "operational", at(11.25))
    ]  # fmt: skip
    assert (firing.claimed, firing.notices) == (1, len(tables.outbox))
    # A warning of an unassigned ticket: the helpdesk lead and ØKF's customer team.
    assert {(n.step, n.channel, n.recipient) for n in tables.outbox.values()
            if n.step == 0.5} == {
        (0.5, "email", "servicedesk-leder@koncernservice.kk.dk"),
        (0.5, "webhook", "https://hooks.koncernservice.kk.example/servicedesk/eskalering"),
        (0.5, "email", "team-okf@koncernservice.kk.dk"),
        (0.5, "amqp", "escalation.operational.okf.provider"),
    }  # fmt: skip
    assert all(n.created_at == n.next_attempt_at == at(12) for n in tables.outbox.values())
    clock = tables.clocks[("E-1", "response")]
    assert (clock.state, clock.next_due_at) == ("running", at(13.5))  # the 0.9 step
    assert sorted(tables.steps) == [("E-1", "response", 0.5), ("E-1", "response", 0.75)]
    assert await fire(tables, at(12)) == []  # nothing more is due: nothing claimed


async def test_the_breach_marks_the_clock_and_nothing_is_left_to_fire() -> None:
    tables = tables_with("E-1")
    assert await fire(tables, at(40)) == [("E-1", s) for s in STEPS]
    clock = tables.clocks[("E-1", "response")]
    assert (clock.state, clock.next_due_at) == ("breached", None)


async def test_a_step_recorded_already_does_not_fire_again() -> None:
    tables = tables_with("E-1")
    assert await fire(tables, at(8)) == [("E-1", 0.5)]
    notices = len(tables.outbox)
    clock = tables.clocks[("E-1", "response")]
    clock.next_due_at = at(7.5)  # due again, as a stale next due instant would say
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(8), 500)
    assert (firing.claimed, firing.fired, firing.notices) == (1, [], 0)
    assert len(tables.outbox) == notices
    assert clock.next_due_at == at(11.25)  # on to the step not yet fired


async def test_the_limit_claims_the_earliest_clocks_first() -> None:
    tables = tables_with("E-1", "E-2")
    tables.clocks[("E-2", "response")].next_due_at = at(1)  # due sooner than E-1's
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(8), 1)
    assert firing.claimed == 1
    assert {s.ticket_id for s in firing.fired} == {"E-2"}


async def test_a_clock_that_fails_to_work_out_is_retried_later_and_the_rest_fire() -> None:
    tables = tables_with("E-1", "E-2")
    broken = tables.clocks[("E-1", "response")]
    broken.step_due_at = broken.step_due_at[:2]  # fewer instants than steps
    assert await fire(tables, at(12)) == [("E-2", 0.5), ("E-2", 0.75)]
    assert broken.next_due_at == at(13)  # looked at again in a minute, not every cycle
    assert not any(key[0] == "E-1" for key in tables.steps)
    assert await fire(tables, at(12.5)) == []  # not before then
