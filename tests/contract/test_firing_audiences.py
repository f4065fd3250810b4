"""Who hears of a step follows the ticket's assignment at firing, the same on both stores.

The recorder writes the assignment into the ticket's row; the firing adapters read it
with the due clocks, into the fired step; the composer tells the provider side where the
ticket is at that moment. Reassigned between the warning and the breach, the breach
goes to the new assignee's side.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.sla_clock.meter import ClockMeter
from tests.contract.conftest import Backend
from tests.helpers import EXAMPLE_CONFIG, unbudgeted
from tests.streams import CPH, event

CONFIG = unbudgeted(load_config(EXAMPLE_CONFIG))  # who hears, each notice alone
METER = ClockMeter(CONFIG)
COMPOSER = Composer(CONFIG)
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)  # office hours

HELPDESK_LEAD = "servicedesk-leder@koncernservice.kk.dk"
TEAM_OKF = "team-okf@koncernservice.kk.dk"


def at(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def ev(type_: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, "A", seq, at(minutes), **fields)))


async def fire(backend: Backend, minutes: float) -> dict[float, tuple[Any, ...]]:
    """Fire what is due of the SLA response clock: per step, where the ticket was and
    who was told by e-mail on which side (from the outbox)."""
    firing = await fire_due(backend.firing, COMPOSER, at(minutes), 500)
    claimed = await backend.outbox.claim(at(minutes), at(minutes + 1), 500)
    told: dict[float, tuple[Any, ...]] = {}
    for step in firing.fired:
        if step.clock_key != "response":
            continue  # the OLA clocks the assignments start
        mails = sorted(
            (c.notice.payload["audience"], c.notice.recipient)
            for c in claimed
            if c.notice.channel == "email"
            and c.notice.payload["clock"] == "response"
            and c.notice.payload["step"] == step.step
        )
        told[step.step] = (step.assigned_function, step.assigned_team, mails)
    return told


async def test_the_provider_side_is_where_the_ticket_is_when_each_step_fires(
    backend: Backend,
) -> None:
    # ØKF's Opus Løn, P1: response in 15 minutes; steps at 7.5, 11.25, 13.5, 15, 22.5, 30.
    recorder = Recorder(METER, backend.recording)
    created = ev("ticket.created", 0, 0, department="okf", service="opus-loen", priority="P1",
                 subject="Løn fejler")  # fmt: skip
    await recorder.record([created], at(1))
    assert await fire(backend, 8) == {
        0.5: (None, None, [("provider", HELPDESK_LEAD), ("provider", TEAM_OKF)]),
    }
    await recorder.record([ev("ticket.assigned", 1, 9, function="server-network")], at(9))
    assert await fire(backend, 12) == {
        0.75: ("server-network", None, [
            ("provider", "server-netvaerk@koncernservice.kk.dk"), ("provider", TEAM_OKF),
        ]),
    }  # fmt: skip
    # Reassigned between the last warning and the breach: both go to the new assignee.
    await recorder.record([ev("ticket.assigned", 2, 13, function="pc-software")], at(13))
    assert await fire(backend, 16) == {
        0.9: ("pc-software", None, [
            ("provider", "pc-software@koncernservice.kk.dk"), ("provider", TEAM_OKF),
        ]),
        1.0: ("pc-software", None, [
            ("department", "systemejer-opus@okf.kk.dk"),
            ("provider", "pc-software@koncernservice.kk.dk"), ("provider", TEAM_OKF),
        ]),
    }  # fmt: skip
    # Handed to the department's customer team: its contact in the lead's stead, once.
    await recorder.record(
        [ev("ticket.assigned", 3, 20, function="helpdesk", team="team-okf")], at(20)
    )
    assert await fire(backend, 23) == {
        1.5: ("helpdesk", "team-okf", [
            ("department", "it-ansvarlig@okf.kk.dk"),
            ("provider", "it-chef@koncernservice.kk.dk"), ("provider", TEAM_OKF),
        ]),
    }  # fmt: skip


async def test_an_assignment_that_arrives_late_counts_as_it_is_ordered_by_time(
    backend: Backend,
) -> None:
    recorder = Recorder(METER, backend.recording)
    created = ev("ticket.created", 0, 0, department="okf", service="opus-loen", priority="P1",
                 subject="Løn fejler")  # fmt: skip
    later = ev("ticket.assigned", 2, 5, function="pc-software", team="team-buf")
    await recorder.record([created, later], at(6))
    # An assignment that occurred before the latest one arrives after it: the ticket is
    # where the latest in event time put it.
    await recorder.record([ev("ticket.assigned", 1, 3, function="server-network")], at(7))
    assert await fire(backend, 8) == {
        0.5: ("pc-software", "team-buf", [
            ("provider", "team-buf@koncernservice.kk.dk"), ("provider", TEAM_OKF),
        ]),
    }  # fmt: skip
