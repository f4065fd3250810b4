"""A ticket's clocks from its events: attach, pause, stop, reopen, retarget, reclassify, OLAs."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import AgreementConfig, load_config
from engine.events import TicketEvent, event_adapter
from engine.sla_clock.agreements import Agreement, CalendarBook, attach_ola, attach_sla
from engine.sla_clock.clocks import Clock, TicketClocks, sla_key, ticket_clocks
from tests.helpers import EXAMPLE_CONFIG

CPH = ZoneInfo("Europe/Copenhagen")
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=CPH)


@cache
def config() -> AgreementConfig:
    return load_config(EXAMPLE_CONFIG)


@cache
def calendars() -> CalendarBook:
    return CalendarBook(config())


def at(hours: float = 0, days: int = 0) -> datetime:
    """An instant relative to Monday 23 November 2026, 09:00 Copenhagen time."""
    return MONDAY + timedelta(days=days, hours=hours)


def event(type_: str, when: datetime, ticket: str = "KS-1", **fields: Any) -> TicketEvent:
    return event_adapter.validate_python(
        {
            "schema_version": 1,
            "event_id": str(fields.pop("event_id", uuid4())),
            "type": type_,
            "ticket_id": ticket,
            "occurred_at": when,
            "channel": "web",
            **fields,
        }
    )


def created(
    when: datetime, department: str = "buf", service: str = "esdh", **kw: Any
) -> TicketEvent:
    kw.setdefault("priority", "P2")
    return event(
        "ticket.created",
        when,
        department=department,
        service=service,
        subject="Kan ikke åbne sag",
        **kw,
    )


def status(when: datetime, value: str) -> TicketEvent:
    return event("ticket.status_changed", when, status=value)


def measure(
    events: list[TicketEvent], as_of: datetime, attached: dict[str, Agreement] | None = None
) -> TicketClocks:
    result = ticket_clocks(
        events,
        attached=attached or {},
        attach_sla=partial(attach_sla, config()),
        attach_ola=partial(attach_ola, config()),
        calendar_of=calendars().get,
        priority_of=config().priority,
        as_of=as_of,
    )
    assert result is not None
    return result


def clock(result: TicketClocks, key: str) -> Clock:
    return next(c for c in result.clocks if c.key == key)


def test_creation_attaches_the_departments_sla_with_default_targets() -> None:
    result = measure([created(at())], as_of=at(0.5))
    response, resolution = clock(result, "response"), clock(result, "resolution")
    assert response.agreement.kind == "sla"
    assert response.agreement.calendar == "office"
    assert (response.target, resolution.target) == (timedelta(hours=1), timedelta(hours=8))
    assert response.state == "running"
    assert response.elapsed == timedelta(minutes=30)
    assert response.fraction == 0.5
    assert response.deadline == at(1)
    # 8 business hours from Monday 09:00 on an 08:00-16:00 calendar: Tuesday 09:00.
    assert resolution.deadline == at(0, days=1)
    assert result.agreements.keys() == {sla_key("buf", "esdh")}


def test_thresholds_follow_the_policy_steps() -> None:
    response = clock(measure([created(at())], as_of=at(0.8)), "response")
    assert [(t.fraction, t.tier) for t in response.thresholds] == [
        (0.5, "operational"),
        (0.75, "operational"),
        (0.9, "tactical"),
        (1.0, "tactical"),
        (1.5, "strategic"),
        (2.0, "strategic"),
    ]
    assert [t.due_at for t in response.thresholds] == [
        at(0.5),
        at(0.75),
        at(0.9),
        at(1),
        at(1.5),
        at(2),
    ]
    assert [t.fraction for t in response.ahead()] == [0.9, 1.0, 1.5, 2.0]


def test_response_stops_at_the_first_response() -> None:
    events = [created(at()), event("ticket.responded", at(0.25)), event("ticket.responded", at(3))]
    response = clock(measure(events, as_of=at(5)), "response")
    assert response.state == "met"
    assert response.stopped_at == at(0.25)
    assert response.elapsed == timedelta(minutes=15)
    assert response.deadline is None
    assert [t.due_at for t in response.thresholds][:1] == [None]


def test_late_response_is_a_breach() -> None:
    events = [created(at()), event("ticket.responded", at(2))]
    response = clock(measure(events, as_of=at(5)), "response")
    assert response.state == "breached"
    assert response.fraction == 2.0
    # Steps passed while it ran keep the instants they fell due.
    assert [t.due_at for t in response.thresholds] == [
        at(0.5),
        at(0.75),
        at(0.9),
        at(1),
        at(1.5),
        at(2),
    ]


def test_running_clock_past_its_deadline_is_breached() -> None:
    response = clock(measure([created(at())], as_of=at(1)), "response")
    assert response.state == "breached"
    response = clock(
        measure([created(at()), event("ticket.responded", at(1))], as_of=at(3)), "response"
    )
    assert response.state == "met"  # answered on the deadline itself


def test_pending_pauses_resolution_and_keeps_the_time_spent() -> None:
    events = [
        created(at()),
        status(at(1), "pending_customer"),
        status(at(0, days=2), "in_progress"),
    ]
    paused = clock(measure(events[:2], as_of=at(5)), "resolution")
    assert paused.state == "paused"
    assert paused.elapsed == timedelta(hours=1)
    assert paused.deadline is None
    resumed = clock(measure(events, as_of=at(0, days=2)), "resolution")
    assert resumed.state == "running"
    assert resumed.elapsed == timedelta(hours=1)
    # Seven business hours left from Wednesday 09:00: Wednesday 16:00.
    assert resumed.deadline == at(7, days=2)


def test_resolved_stops_and_reopen_resumes_with_the_time_spent() -> None:
    events = [created(at()), status(at(2), "resolved")]
    resolved = measure(events, as_of=at(4))
    assert clock(resolved, "resolution").state == "met"
    assert clock(resolved, "response").stopped_at == at(2)  # resolving answers the requester
    reopened = measure([*events, status(at(0, days=1), "in_progress")], as_of=at(1, days=1))
    resolution = clock(reopened, "resolution")
    assert resolution.state == "running"
    assert resolution.stopped_at is None
    assert resolution.elapsed == timedelta(hours=3)


def test_closed_stops_every_clock_and_later_events_change_nothing() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(0.5), function="pc-software"),
        status(at(1), "closed"),
    ]
    closed = measure(events, as_of=at(3))
    assert all(c.stopped_at == at(1) and not c.running for c in closed.clocks)
    later = measure([*events, status(at(2), "in_progress")], as_of=at(3))
    assert later.clocks == closed.clocks


def test_ola_clock_runs_from_assignment_until_reassignment() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        event("ticket.assigned", at(3), function="server-network"),
    ]
    result = measure(events, as_of=at(4))
    first, second = clock(result, "ola:1:pc-software"), clock(result, "ola:2:server-network")
    assert first.agreement.kind == "ola"
    assert first.metric == "resolution"
    assert first.target == timedelta(hours=4)  # OLA PC og Software, P2 resolution
    assert (first.started_at, first.stopped_at, first.elapsed) == (at(1), at(3), timedelta(hours=2))
    assert first.state == "met"
    assert second.running
    assert second.target == timedelta(hours=3)  # OLA Server og Netværk, P2
    assert second.elapsed == timedelta(hours=1)
    assert result.timeline.assigned_function == "server-network"


def test_a_function_handed_the_ticket_back_resumes_its_one_clock() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        event("ticket.assigned", at(2), function="server-network"),
        event("ticket.assigned", at(3), function="pc-software"),
    ]
    result = measure(events, as_of=at(4))
    assert [c.key for c in result.clocks] == [
        "response",
        "resolution",
        "ola:1:pc-software",
        "ola:1:pc-software:response",
        "ola:2:server-network",
        "ola:2:server-network:response",
    ]
    # Handing the ticket on is acting on it: each function's response clock stopped
    # then, and a hand-back does not start it again.
    for key, start in (("ola:1:pc-software:response", 1), ("ola:2:server-network:response", 2)):
        acting = clock(result, key)
        assert (acting.started_at, acting.stopped_at, acting.elapsed) == (
            at(start),
            at(start + 1),
            timedelta(hours=1),
        )
    back, other = clock(result, "ola:1:pc-software"), clock(result, "ola:2:server-network")
    # 10-11 and 12-13 with PC og Software: two hours of its four.
    assert (back.started_at, back.stopped_at) == (at(1), None)
    assert (back.state, back.elapsed) == ("running", timedelta(hours=2))
    assert back.deadline == at(6)  # two hours left from 13:00
    assert (other.state, other.stopped_at, other.elapsed) == ("met", at(3), timedelta(hours=1))
    assert result.timeline.assigned_function == "pc-software"


def test_a_function_handed_back_a_paused_ticket_waits_with_it() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        status(at(2), "pending_customer"),
        event("ticket.assigned", at(3), function="server-network"),
        event("ticket.assigned", at(4), function="pc-software"),
    ]
    back = clock(measure(events, as_of=at(5)), "ola:1:pc-software")
    assert (back.state, back.stopped_at, back.elapsed) == ("paused", None, timedelta(hours=1))
    resumed = [*events, status(at(6), "in_progress")]
    back = clock(measure(resumed, as_of=at(7)), "ola:1:pc-software")
    assert (back.state, back.elapsed) == ("running", timedelta(hours=2))


def test_flipping_between_two_functions_keeps_two_ola_clocks() -> None:
    functions = itertools.cycle(["pc-software", "server-network"])
    flips = [
        event("ticket.assigned", at(0, days=1) + timedelta(minutes=n), function=f)
        for n, f in zip(range(200), functions, strict=False)
    ]
    result = measure([created(at()), *flips], as_of=flips[-1].occurred_at + timedelta(hours=1))
    olas = [c for c in result.clocks if c.agreement.kind == "ola"]
    assert [c.key for c in olas] == [
        "ola:1:pc-software",
        "ola:1:pc-software:response",
        "ola:2:server-network",
        "ola:2:server-network:response",
    ]
    # A minute at a time each, 100 for the first and 99 for the second, which then kept
    # the ticket for an hour.
    assert clock(result, "ola:1:pc-software").elapsed == timedelta(minutes=100)
    assert clock(result, "ola:2:server-network").elapsed == timedelta(minutes=99 + 60)


def test_assignment_to_the_same_function_keeps_its_clock() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="helpdesk", team="a"),
        event("ticket.assigned", at(2), function="helpdesk", team="b"),
    ]
    keys = [c.key for c in measure(events, as_of=at(3)).clocks]
    assert keys == ["response", "resolution", "ola:1:helpdesk", "ola:1:helpdesk:response"]


def test_ola_pauses_and_stops_with_resolution() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        status(at(2), "pending_third_party"),
        status(at(4), "in_progress"),
        status(at(5), "resolved"),
    ]
    ola = clock(measure(events, as_of=at(6)), "ola:1:pc-software")
    assert ola.elapsed == timedelta(hours=2)
    assert ola.stopped_at == at(5)


def test_function_without_an_ola_gets_no_ola_clock() -> None:
    events = [created(at()), event("ticket.assigned", at(1), function="sales")]
    result = ticket_clocks(
        events,
        attached={},
        attach_sla=partial(attach_sla, config()),
        attach_ola=lambda *_: None,
        calendar_of=calendars().get,
        priority_of=config().priority,
        as_of=at(2),
    )
    assert result is not None
    assert [c.key for c in result.clocks] == ["response", "resolution"]


def test_priority_change_retargets_keeping_the_elapsed_time() -> None:
    events = [created(at()), event("ticket.priority_changed", at(2), priority="P1")]
    resolution = clock(measure(events, as_of=at(3)), "resolution")
    assert resolution.priority == "P1"
    assert resolution.target == timedelta(hours=4)
    assert resolution.elapsed == timedelta(hours=3)
    assert resolution.deadline == at(4)
    # A clock that had stopped keeps the target it stopped under.
    response = clock(
        measure([created(at()), event("ticket.responded", at(0.5)), *events[1:]], as_of=at(3)),
        "response",
    )
    assert (response.priority, response.target) == ("P2", timedelta(hours=1))


def test_priority_from_impact_and_urgency() -> None:
    result = measure([created(at(), priority=None, impact="high", urgency="high")], as_of=at(1))
    assert clock(result, "resolution").priority == "P1"


def test_reclassification_attaches_the_new_agreement_from_the_start() -> None:
    events = [created(at()), event("ticket.reclassified", at(2), department="sof")]
    result = measure(events, as_of=at(0, days=1))
    resolution = clock(result, "resolution")
    assert resolution.agreement.department == "sof"
    assert resolution.agreement.calendar == "care-24-7"
    assert resolution.started_at == at()
    assert resolution.elapsed == timedelta(hours=24)  # round the clock since creation
    assert set(result.agreements) == {sla_key("sof", "esdh")}


def test_service_the_department_has_not_ordered_runs_under_the_defaults() -> None:
    ordered = set(config().departments["buf"].services)
    other = next(s for s in config().services if s not in ordered)
    resolution = clock(measure([created(at(), service=other)], as_of=at(1)), "resolution")
    assert resolution.agreement.kind == "default"
    assert resolution.target == config().general_contract.default_targets["P2"]["resolution"]


def test_batch_service_runs_in_the_night_windows() -> None:
    night = at(14)  # Monday 23:00
    result = measure([created(night, department="okf", service="opus-loen")], as_of=at(15))
    resolution = clock(result, "resolution")
    assert resolution.agreement.batch
    assert resolution.elapsed == timedelta(hours=1)
    plain = measure([created(night, department="okf", service="esdh")], as_of=at(15))
    assert clock(plain, "resolution").elapsed == timedelta(0)


def test_attached_snapshot_is_kept_over_the_current_config() -> None:
    current = attach_sla(config(), "buf", "esdh")
    older = replace(
        current, targets_s={**current.targets_s, "P2": {"response": 600, "resolution": 7200}}
    )
    result = measure([created(at())], as_of=at(1), attached={sla_key("buf", "esdh"): older})
    assert clock(result, "resolution").target == timedelta(hours=2)
    assert result.agreements[sla_key("buf", "esdh")] is older


def test_events_before_creation_wait_for_it() -> None:
    responded = event("ticket.responded", at(0.5))
    assert (
        ticket_clocks(
            [responded],
            attached={},
            attach_sla=partial(attach_sla, config()),
            attach_ola=partial(attach_ola, config()),
            calendar_of=calendars().get,
            priority_of=config().priority,
            as_of=at(1),
        )
        is None
    )
    result = measure([responded, created(at())], as_of=at(1))
    assert clock(result, "response").stopped_at == at(0.5)


def test_agreement_round_trips_through_json() -> None:
    agreement = attach_sla(config(), "okf", "opus-loen")
    assert Agreement.from_json(agreement.to_json()) == agreement


STREAM = [
    created(at(), event_id=UUID(int=1)),
    event("ticket.assigned", at(0.5), function="pc-software", event_id=UUID(int=2)),
    event("ticket.responded", at(0.75), event_id=UUID(int=3)),
    status(at(1), "pending_customer"),
    status(at(3), "in_progress"),
    event("ticket.priority_changed", at(4), priority="P1", event_id=UUID(int=4)),
    event("ticket.assigned", at(5), function="server-network", event_id=UUID(int=5)),
    event(
        "ticket.commented",
        at(5),
        visibility="public",
        body="Vi kigger på det",
        event_id=UUID(int=6),
    ),
    status(at(6), "resolved"),
    status(at(0, days=1), "in_progress"),
    event("ticket.reclassified", at(1, days=1), service="netvaerk-vpn", event_id=UUID(int=7)),
]


@settings(max_examples=60, deadline=None)
@given(st.permutations(STREAM))
def test_arrival_order_does_not_matter(arrival: list[TicketEvent]) -> None:
    as_of = at(2, days=1)
    assert measure(arrival, as_of).clocks == measure(STREAM, as_of).clocks


def test_every_prefix_of_the_stream_measures_without_error() -> None:
    for n in range(1, len(STREAM) + 1):
        for as_of in (at(), at(3), at(0, days=3)):
            result = measure(STREAM[:n], as_of)
            assert all(c.fraction >= 0 for c in result.clocks)


@pytest.mark.parametrize("steps", list(itertools.islice(itertools.permutations(range(3)), 3)))
def test_same_instant_events_are_ordered_by_event_id(steps: tuple[int, ...]) -> None:
    same = [
        created(at(), event_id=UUID(int=10)),
        status(at(1), "resolved"),
        status(at(1), "in_progress"),
    ]
    shuffled = [same[i] for i in steps]
    assert measure(shuffled, at(2)).clocks == measure(same, at(2)).clocks


def test_ola_after_reclassification_is_the_same_whatever_arrived_first() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        event("ticket.reclassified", at(2), department="sof"),
    ]
    first = measure(events[:2], as_of=at(3))  # the assignment recorded before the rest
    later = measure(events, as_of=at(0, days=1), attached=dict(first.agreements))
    at_once = measure(events, as_of=at(0, days=1))
    assert later.clocks == at_once.clocks
    assert clock(later, "ola:1:pc-software").agreement.calendar == "care-24-7"


def test_a_clock_stopped_after_its_deadline_while_the_calendar_was_closed_is_breached() -> None:
    # BUF ESDH, P2: 8 business hours from Monday 08:00 end at 16:00, when the office
    # closes. Its breach step fired then; a resolution at 07:59 on Tuesday, with no
    # business time between, does not make it met.
    late = [created(at(-1)), status(at(23 - 0.0167), "resolved")]
    resolution = clock(measure(late, as_of=at(days=2)), "resolution")
    assert resolution.elapsed == resolution.target
    assert resolution.state == "breached"
    # Ending exactly on the deadline still meets it.
    on_time = [created(at(-1)), status(at(7), "resolved")]
    assert clock(measure(on_time, as_of=at(days=2)), "resolution").state == "met"
