"""The synthetic year (``examples/make_year.py``): valid, deterministic, and life-like."""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from engine.config import AgreementConfig, load_config
from engine.events import parse_event
from engine.sla_clock.meter import ClockMeter
from examples.make_day import NAMESPACE
from examples.make_year import event_id, main, year_events
from tests.helpers import EXAMPLE_CONFIG

TZ = ZoneInfo("Europe/Copenhagen")
YEAR = 2026
TICKETS = 3000
Event = dict[str, Any]
# Where a status may go next; "new" is where every ticket starts.
NEXT_STATUS = {
    "new": {"in_progress", "resolved"},
    "in_progress": {"pending_customer", "pending_third_party", "resolved"},
    "pending_customer": {"in_progress", "resolved"},
    "pending_third_party": {"in_progress"},
    "resolved": {"in_progress", "closed"},
    "closed": set(),
}


@pytest.fixture(scope="module")
def config() -> AgreementConfig:
    return load_config(EXAMPLE_CONFIG)


@pytest.fixture(scope="module")
def lines(config: AgreementConfig) -> list[Event]:
    """A small year, in file order, resends included."""
    return list(year_events(YEAR, TICKETS, seed=11, config=config))


@pytest.fixture(scope="module")
def stories(lines: list[Event]) -> dict[str, list[Event]]:
    """Each ticket's distinct events in occurred_at order."""
    by_ticket: dict[str, dict[str, Event]] = defaultdict(dict)
    for event in lines:
        by_ticket[event["ticket_id"]][event["event_id"]] = event
    return {
        ticket_id: sorted(events.values(), key=_instant) for ticket_id, events in by_ticket.items()
    }


@pytest.fixture(scope="module")
def created(stories: dict[str, list[Event]]) -> list[Event]:
    return [events[0] for events in stories.values()]


def _instant(event: Event) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def _local(event: Event) -> datetime:
    return _instant(event).astimezone(TZ)


def _per_day(created: list[Event], days: list[date]) -> float:
    """Tickets raised per day on the given days."""
    counts = Counter(_local(event).date() for event in created)
    return sum(counts[day] for day in days) / len(days)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _priority(config: AgreementConfig, event: Event) -> str:
    priority = event.get("priority")
    return str(priority) if priority else config.priority(event["impact"], event["urgency"])


def test_the_same_seed_gives_the_same_year_and_another_seed_another(
    config: AgreementConfig,
) -> None:
    first = list(year_events(YEAR, 300, seed=5, config=config))
    assert first == list(year_events(YEAR, 300, seed=5, config=config))
    assert first != list(year_events(YEAR, 300, seed=6, config=config))


def test_event_ids_are_uuid5_of_ticket_and_sequence(stories: dict[str, list[Event]]) -> None:
    assert event_id("KS-2026-000001", 3) == str(uuid.uuid5(NAMESPACE, "KS-2026-000001/3"))
    for ticket_id, events in list(stories.items())[:200]:
        expected = {str(uuid.uuid5(NAMESPACE, f"{ticket_id}/{n}")) for n in range(1, 99)}
        assert {event["event_id"] for event in events} <= expected


def test_every_line_is_a_valid_event_the_configuration_can_track(
    config: AgreementConfig, lines: list[Event]
) -> None:
    meter = ClockMeter(config)
    for line in lines:
        event = parse_event(json.dumps(line, ensure_ascii=False))
        assert meter.refusal(event) is None, line


def test_departments_and_services_come_from_the_configuration(
    config: AgreementConfig, lines: list[Event], created: list[Event]
) -> None:
    terms = [e for e in lines if e["type"] in ("ticket.created", "ticket.reclassified")]
    assert {e["department"] for e in terms if "department" in e} == set(config.departments)
    assert {e["service"] for e in terms if "service" in e} <= set(config.services)
    unordered = [
        e for e in created if e["service"] not in config.departments[e["department"]].services
    ]
    # Out of agreement now and then (default targets), but rarely.
    assert 0.005 * len(created) < len(unordered) < 0.05 * len(created)


def test_most_tickets_are_raised_in_office_hours_and_on_monday_mornings_most(
    created: list[Event],
) -> None:
    local = [_local(event) for event in created]
    office = [at for at in local if at.weekday() < 5 and 8 <= at.hour < 16]
    assert len(office) > 0.7 * len(local)
    assert any(at.weekday() >= 5 for at in local), "a few at weekends"
    assert any(at.hour >= 18 or at.hour < 6 for at in local), "a few at night"
    mornings = Counter(at.weekday() for at in local if 8 <= at.hour < 11)
    assert mornings[0] > 1.15 * max(mornings[day] for day in range(1, 5))


def test_the_seasons_show(created: list[Event]) -> None:
    july = _per_day(created, _days(date(YEAR, 7, 1), date(YEAR, 7, 31)))
    september = _per_day(created, _days(date(YEAR, 9, 1), date(YEAR, 9, 30)))
    school_start = _per_day(created, _days(date(YEAR, 8, 10), date(YEAR, 8, 28)))
    january = _per_day(created, _days(date(YEAR, 1, 5), date(YEAR, 1, 30)))
    christmas = _per_day(created, _days(date(YEAR, 12, 23), date(YEAR, 12, 31)))
    november = _per_day(created, _days(date(YEAR, 11, 2), date(YEAR, 11, 27)))
    assert july < 0.7 * september
    assert school_start > 1.2 * september
    assert january > november
    assert christmas < 0.5 * november


def test_public_holidays_are_quiet(created: list[Event]) -> None:
    public = holidays.country_holidays("DK", years=YEAR)
    weekdays = [d for d in _days(date(YEAR, 1, 1), date(YEAR, 12, 31)) if d.weekday() < 5]
    on_holidays = [d for d in weekdays if d in public]
    assert len(on_holidays) >= 5
    ordinary = [d for d in weekdays if d not in public]
    assert _per_day(created, on_holidays) < 0.25 * _per_day(created, ordinary)


def test_priorities_are_mostly_p3_and_p4(config: AgreementConfig, created: list[Event]) -> None:
    priorities = Counter(_priority(config, event) for event in created)
    assert set(priorities) == {"P1", "P2", "P3", "P4"}
    assert priorities["P1"] < 0.03 * len(created)
    assert priorities["P1"] < priorities["P2"] < priorities["P4"] < priorities["P3"]
    assert priorities["P3"] + priorities["P4"] > 0.75 * len(created)
    # Forms and monitoring give impact and urgency; the desk sets a priority.
    assert any("impact" in event for event in created)
    assert any("priority" in event for event in created)


def test_channels_are_mixed(created: list[Event]) -> None:
    channels = Counter(event["channel"] for event in created)
    for channel in ("email", "phone", "web"):
        assert channels[channel] > 0.15 * len(created), channels
    assert 0 < channels["api"] < 0.15 * len(created)


def _statuses(events: list[Event]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "ticket.status_changed"]


def _features(events: list[Event]) -> set[str]:
    """What happened in one ticket's story."""
    statuses = _statuses(events)
    features = set(statuses) & {"pending_customer", "pending_third_party", "closed"}
    if any(a == "resolved" and b == "in_progress" for a, b in itertools.pairwise(statuses)):
        features.add("reopened")
    if len({e["function"] for e in events if e["type"] == "ticket.assigned"}) > 1:
        features.add("reassigned")
    if any(e["type"] == "ticket.commented" and e["visibility"] == "public" for e in events):
        features.add("public comment")
    if any(e["type"] == "ticket.commented" and e["visibility"] == "internal" for e in events):
        features.add("internal comment")
    kinds = {e["type"] for e in events}
    features |= kinds & {"ticket.priority_changed", "ticket.reclassified", "ticket.rated"}
    return features


# The share of tickets whose story has each feature: (more than, less than).
FEATURE_SHARES = {
    "pending_customer": (0.10, 0.30),
    "pending_third_party": (0.02, 0.12),
    "reopened": (0.02, 0.12),
    "reassigned": (0.15, 0.45),
    "ticket.priority_changed": (0.02, 0.10),
    "ticket.reclassified": (0.005, 0.05),  # rare
    "public comment": (0.2, 0.6),
    "internal comment": (0.2, 0.6),
    "closed": (0.8, 0.99),
    "ticket.rated": (0.15, 0.4),  # a third of the requesters answer the survey
}


@pytest.mark.parametrize("feature", sorted(FEATURE_SHARES))
def test_stories_vary_as_tickets_do(stories: dict[str, list[Event]], feature: str) -> None:
    low, high = FEATURE_SHARES[feature]
    share = sum(1 for events in stories.values() if feature in _features(events)) / len(stories)
    assert low < share < high, f"{feature}: {share:.3f}"


def test_a_few_lines_arrive_late_and_a_few_twice(lines: list[Event]) -> None:
    late, latest = 0, None
    for event in lines:
        at = _instant(event)
        if latest is not None and at < latest:
            late += 1
        latest = at if latest is None or at > latest else latest
    assert 0.002 * len(lines) < late < 0.03 * len(lines)
    first: dict[str, Event] = {}
    resent = 0
    for event in lines:
        if event["event_id"] in first:
            assert event == first[event["event_id"]], "a resend is the same event"
            resent += 1
        first[event["event_id"]] = event
    assert 0 < resent < 0.005 * len(lines)


def test_each_ticket_is_told_in_order(
    config: AgreementConfig, stories: dict[str, list[Event]]
) -> None:
    year_end = datetime(YEAR + 1, 1, 1, tzinfo=TZ)
    for ticket_id, events in stories.items():
        instants = [_instant(e) for e in events]
        assert events[0]["type"] == "ticket.created", ticket_id
        assert [e["type"] for e in events].count("ticket.created") == 1, ticket_id
        assert all(a < b for a, b in itertools.pairwise(instants)), ticket_id
        assert datetime(YEAR, 1, 1, tzinfo=TZ) <= instants[0]
        assert instants[-1] < year_end
        status = "new"
        for changed in _statuses(events):
            assert changed in NEXT_STATUS[status], f"{ticket_id}: {status} -> {changed}"
            status = changed
        if status == "closed":
            assert events[-1]["status"] == "closed", f"{ticket_id}: nothing after closing"


def test_each_ticket_ends_with_the_function_owning_its_service(
    config: AgreementConfig, stories: dict[str, list[Event]]
) -> None:
    for ticket_id, events in stories.items():
        service = events[0]["service"]
        for event in events[1:]:
            if event["type"] == "ticket.reclassified":
                service = event.get("service") or service
        assigned = [e["function"] for e in events if e["type"] == "ticket.assigned"]
        if assigned and "resolved" in _statuses(events):
            assert assigned[-1] == config.services[service].function, ticket_id


def test_the_command_writes_the_year_as_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "year.jsonl"
    main(["--year", "2027", "--tickets", "50", "--seed", "3", "--out", str(out)])
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == list(year_events(2027, 50, seed=3))
    assert {_local(event).year for event in written} == {2027}
