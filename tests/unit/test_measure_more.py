"""Measuring a ticket on from its last reading gives what measuring all its events gives."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.business_time.calendar import to_us
from engine.config import load_config
from engine.events import TicketEvent, event_adapter
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from engine.sla_clock.timeline import READ_ORDER
from tests.helpers import EXAMPLE_CONFIG

CPH = ZoneInfo("Europe/Copenhagen")
# A Friday before the clocks fall back: weekends, a night and a repeated hour in reach.
START = datetime(2026, 10, 23, 14, 0, tzinfo=CPH)
METER = ClockMeter(load_config(EXAMPLE_CONFIG))
PRIORITIES = ["P1", "P2", "P3", "P4"]
LEVELS = ["low", "medium", "high"]
# Calendars office, extended and round the clock, a batch service, and services the
# department has not ordered (the general contract's defaults).
DEPARTMENTS = ["buf", "sof", "sf", "okf"]
SERVICES = ["esdh", "omsorgssystem", "opus-loen", "netvaerk-vpn"]
FUNCTIONS = ["pc-software", "server-network", "helpdesk", "sales"]
STATUSES = ["new", "in_progress", "pending_customer", "pending_third_party", "resolved",
            "closed"]  # fmt: skip


def event(type_: str, minutes: int, event_id: UUID, **fields: Any) -> TicketEvent:
    return event_adapter.validate_python(
        {
            "schema_version": 1,
            "event_id": str(event_id),
            "type": type_,
            "ticket_id": "KS-1",
            "occurred_at": START + timedelta(minutes=minutes),
            "channel": "web",
            **fields,
        }
    )


# Quarter hours over five days: ties between events are common, so is a late one.
instants = st.integers(0, 5 * 24 * 4).map(lambda quarter: quarter * 15)
priorities = st.one_of(
    st.fixed_dictionaries({"priority": st.sampled_from(PRIORITIES)}),
    st.fixed_dictionaries({"impact": st.sampled_from(LEVELS),
                           "urgency": st.sampled_from(LEVELS)}),
)  # fmt: skip
reclassified = st.one_of(
    st.fixed_dictionaries({"department": st.sampled_from(DEPARTMENTS)}),
    st.fixed_dictionaries({"service": st.sampled_from(SERVICES)}),
    st.fixed_dictionaries({"department": st.sampled_from(DEPARTMENTS),
                           "service": st.sampled_from(SERVICES)}),
)  # fmt: skip
# Type and fields of each event after the creation; flips weigh most.
later_fields = st.one_of(
    st.tuples(st.just("ticket.status_changed"),
              st.fixed_dictionaries({"status": st.sampled_from(STATUSES[1:4])})),
    st.tuples(st.just("ticket.status_changed"),
              st.fixed_dictionaries({"status": st.sampled_from(STATUSES)})),
    st.tuples(st.just("ticket.assigned"),
              st.fixed_dictionaries({"function": st.sampled_from(FUNCTIONS)})),
    st.tuples(st.just("ticket.priority_changed"), priorities),
    st.tuples(st.just("ticket.responded"), st.just({})),
    st.tuples(st.just("ticket.commented"),
              st.fixed_dictionaries({"visibility": st.just("public"), "body": st.just("x")})),
    st.tuples(st.just("ticket.reclassified"), reclassified),
    # A rating moves no clock, before or after closing.
    st.tuples(st.just("ticket.rated"),
              st.fixed_dictionaries({"score": st.integers(1, 5)})),
)  # fmt: skip


@st.composite
def histories(draw: st.DrawFn) -> list[TicketEvent]:
    """A ticket's events in the order they arrive, out of order now and then."""
    created = event(
        "ticket.created", draw(instants), draw(st.uuids()),
        department=draw(st.sampled_from(DEPARTMENTS)), service=draw(st.sampled_from(SERVICES)),
        subject="Sag", **draw(priorities),
    )  # fmt: skip
    later = [
        event(type_, minutes, event_id, **fields)
        for type_, fields, minutes, event_id in draw(
            st.lists(st.tuples(later_fields, instants, st.uuids()).map(
                lambda drawn: (*drawn[0], *drawn[1:])), max_size=40)
        )
    ]  # fmt: skip
    in_order = sorted([created, *later], key=READ_ORDER)
    # Mostly in order, as they come from one frontend, with some swapped: late events.
    arrival = list(in_order)
    for i, j in draw(
        st.lists(
            st.tuples(st.integers(0, len(arrival) - 1), st.integers(0, len(arrival) - 1)),
            max_size=4,
        )
    ):
        arrival[i], arrival[j] = arrival[j], arrival[i]
    return arrival


# Events after every other, in a batch that rolls back.
DROPPED = {
    status: [event("ticket.status_changed", 6 * 24 * 60, uuid4(), status=status)]
    for status in STATUSES
}


def same(more: TicketClocks | None, full: TicketClocks | None) -> None:
    """Every field of the clocks, the timeline and the snapshots is the same; of the
    update cycles, those that ended by the last measurement read on from are left out."""
    if full is None:
        assert more is None
        return
    assert more is not None
    left_out = [c.key for c in full.clocks if more.reading.left_out(c.key)]
    assert not (more.complete and left_out)
    # key, state, elapsed, fraction, due instants, ...
    assert more.clocks == tuple(c for c in full.clocks if c.key not in left_out)
    assert more.timeline == full.timeline  # its runs' segments and stops too
    assert more.agreements == full.agreements
    assert (more.reading.count, more.reading.last) == (full.reading.count, full.reading.last)


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_measuring_on_gives_what_measuring_everything_gives(
    arrival: list[TicketEvent], data: st.DataObject
) -> None:
    attached: dict[str, Agreement] = {}
    events: list[TicketEvent] = []
    measured: TicketClocks | None = None
    stored: dict[str, Clock] = {}
    while len(events) < len(arrival):
        size = data.draw(st.integers(1, 3), label="chunk")
        new = arrival[len(events) : len(events) + size]
        events = events + new
        as_of = START + timedelta(minutes=data.draw(instants, label="as_of"))
        reading = None if measured is None else measured.reading
        if reading is not None and data.draw(st.booleans(), label="a batch rolled back"):
            # Read on from the same reading with other events, then drop that: what the
            # reading says, and what reading on from it gives, stay as they were.
            before = events[: len(events) - len(new)]
            for status in data.draw(st.lists(st.sampled_from(STATUSES), min_size=1)):
                dropped = DROPPED[status]
                assert reading.follows(dropped)
                METER.measure_more(reading, [*before, *dropped], dropped, attached, as_of)
            same(METER.measure_more(reading, before, [], attached, as_of),
                 METER.measure(before, attached, as_of))  # fmt: skip
        # The recorder and the simulator give the reading up (in place); others copy it.
        in_place = data.draw(st.booleans(), label="read on in place")
        measured = METER.measure_more(reading, events, new, attached, as_of, in_place=in_place)
        full = METER.measure(events, attached, as_of)
        same(measured, full)
        stored = kept(stored, measured)
        if full is not None and measured is not None:
            # A clock left out as kept is one the new events left stopped as it was.
            stops = {clock.key: clock.stopped_at for clock in full.clocks}
            for key in measured.reading.kept:
                assert stops.get(key, START) is not None, f"{key} runs again but was kept"
        if full is not None:
            # What the recorder keeps of the clocks left out is what they are: measured
            # when they had ended (unless this instant is earlier than their end).
            assert stored.keys() == {clock.key for clock in full.clocks}
            for clock in full.clocks:
                if clock.stopped_at is not None and clock.stopped_at <= as_of:
                    assert stored[clock.key]._replace(as_of=as_of) == clock
        if measured is not None:
            for clock in measured.clocks:
                assert (clock.elapsed, clock.due_us) == walked(measured, clock)
        if measured is not None:
            for key, agreement in measured.agreements.items():
                attached.setdefault(key, agreement)  # as the recorder keeps them


def kept(stored: dict[str, Clock], measured: TicketClocks | None) -> dict[str, Clock]:
    """The clocks as the recorder keeps them after writing a measurement."""
    if measured is None:
        return stored
    written = {clock.key: clock for clock in measured.clocks}
    if measured.complete:
        return written
    reading = measured.reading
    return {
        **{key: c for key, c in stored.items() if key in written or reading.left_out(key)},
        **written,
    }


def walked(measured: TicketClocks, clock: Clock) -> tuple[timedelta, tuple[int | None, ...]]:
    """A clock's business time and due instants found by walking each of its segments,
    as they were found before runs kept their sums."""
    runs = [*measured.timeline.runs, *measured.reading.cycles]
    run = next(run for run in runs if run.key == clock.key)
    calendar, as_of_us = clock.calendar, to_us(clock.as_of)
    target_us = round(clock.target.total_seconds() * 1e6)
    needs = [round(target_us * fraction) for fraction, _ in clock.agreement.steps] + [target_us]
    due: list[int | None] = [None] * len(needs)
    spent = elapsed_us = 0
    for start, end in run.segments:
        a, b = to_us(start), None if end is None else to_us(end)
        length = None if b is None else calendar.elapsed_us(a, b)
        for index, need in enumerate(needs):
            if due[index] is None and spent < need and (length is None or need <= spent + length):
                due[index] = calendar.add_us(a, need - spent)
        elapsed_us += calendar.elapsed_us(a, as_of_us if b is None else min(b, as_of_us))
        spent += length or 0
    return timedelta(microseconds=elapsed_us), tuple(due)


def _flips() -> list[TicketEvent]:
    created = event("ticket.created", 0, uuid4(), department="buf", service="esdh",
                    subject="Sag", priority="P2")  # fmt: skip
    kinds = [("ticket.status_changed", {"status": "pending_customer"}),
             ("ticket.assigned", {"function": "pc-software"}),
             ("ticket.priority_changed", {"priority": "P1"}),
             ("ticket.status_changed", {"status": "in_progress"}),
             ("ticket.assigned", {"function": "server-network"}),
             ("ticket.priority_changed", {"priority": "P3"})]  # fmt: skip
    return [created] + [
        event(kinds[n % len(kinds)][0], 15 * (n + 1), uuid4(), **kinds[n % len(kinds)][1])
        for n in range(60)
    ]


def test_events_in_order_are_read_on_without_reading_the_history_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = _flips()
    first = METER.measure(events[:1], {}, START)
    assert first is not None
    readings = [first.reading]
    monkeypatch.setattr(METER, "measure", _no_full_measure)
    for n in range(1, len(events)):
        as_of = events[n].occurred_at
        measured = METER.measure_more(readings[-1], events[: n + 1], events[n : n + 1], {}, as_of)
        assert measured is not None
        readings.append(measured.reading)
    monkeypatch.undo()
    # Each reading was left as it was read: measuring on from one again is the same.
    again = METER.measure_more(readings[10], events[:12], events[11:12], {}, START)
    same(again, METER.measure(events[:12], {}, START))


def test_reading_on_in_place_gives_the_reading_itself_read_on() -> None:
    events = _flips()
    first = METER.measure(events[:30], {}, START)
    assert first is not None
    reading, at_end = first.reading, events[-1].occurred_at
    measured = METER.measure_more(reading, events, events[30:], {}, at_end, in_place=True)
    assert measured is not None
    assert measured.reading is reading
    assert reading.count == len(events)
    same(measured, METER.measure(events, {}, at_end))


@pytest.mark.parametrize("in_place", [False, True])
def test_a_clock_stopped_by_the_last_measurement_that_runs_again_is_measured_again(
    in_place: bool,
) -> None:
    events = [
        event("ticket.created", 0, uuid4(), department="buf", service="esdh", subject="Sag",
              priority="P2"),
        event("ticket.status_changed", 60, uuid4(), status="resolved"),
        event("ticket.rated", 90, uuid4(), score=4),
    ]  # fmt: skip
    first = METER.measure(events, {}, START + timedelta(minutes=120))
    assert first is not None
    reopened = event("ticket.status_changed", 150, uuid4(), status="in_progress")
    as_of = START + timedelta(minutes=180)
    measured = METER.measure_more(
        first.reading, [*events, reopened], [reopened], {}, as_of, in_place=in_place
    )
    assert measured is not None
    # The response stays as it stopped; resolution runs again.
    assert measured.reading.kept == {"response"}
    same(measured, METER.measure([*events, reopened], {}, as_of))


def test_a_late_event_or_a_reading_of_other_events_measures_everything_again() -> None:
    events = _flips()
    at_end = events[-1].occurred_at
    full = METER.measure(events, {}, at_end)
    # The last event came before the one ahead of it: that one is late.
    early = METER.measure([*events[:-2], events[-1]], {}, at_end)
    assert early is not None
    assert METER.measure_more(early.reading, events, events[-2:-1], {}, at_end) == full
    # A reading of fewer events than those before the new ones, or none.
    fewer = METER.measure(events[:-3], {}, at_end)
    assert fewer is not None
    assert METER.measure_more(fewer.reading, events, events[-1:], {}, at_end) == full
    assert METER.measure_more(None, events, events[-1:], {}, at_end) == full


def _no_full_measure(*args: object) -> None:
    raise AssertionError("measured every event again")
