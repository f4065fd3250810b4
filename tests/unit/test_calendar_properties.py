"""Property tests of the business calendar, and a brute-force oracle for its open time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.business_time import BusinessCalendar, parse_window
from engine.business_time.windows import WEEKDAYS

CPH = ZoneInfo("Europe/Copenhagen")
# Forms that matter: office hours, split days, nights across midnight, whole days, and
# windows that touch the time the clocks skip or repeat: an hour from 02:00 (Copenhagen, New
# York), half an hour at 02:00 (Lord Howe), an hour at midnight (Santiago).
WINDOW_FORMS = [
    "08:00-16:00",
    "07:30-12:00",
    "13:00-17:15",
    "22:00-06:00",
    "00:00-24:00",
    "02:00-03:00",
    "01:30-02:30",
    "02:30-04:00",
    "23:00-02:30",
    "16:00-08:00",
    "01:45-02:15",
    "23:30-00:30",
    "00:00-01:00",
]

week_strategy = st.dictionaries(
    st.sampled_from(WEEKDAYS),
    st.lists(st.sampled_from(WINDOW_FORMS), min_size=1, max_size=3),
    min_size=1,
)
holiday_strategy = st.sampled_from(
    [{"country": None}, {"country": "DK"}, {"country": "DK", "categories": ["public", "optional"]}]
)


@st.composite
def calendars(draw: st.DrawFn) -> tuple[dict[str, Any], BusinessCalendar]:
    config = {"week": draw(week_strategy), "holidays": draw(holiday_strategy)}
    return config, BusinessCalendar.from_config(config)


# Instants over two years around both of 2026's daylight-saving changes, to the microsecond.
instants = st.integers(
    min_value=int(datetime(2025, 12, 1, tzinfo=UTC).timestamp() * 1e6),
    max_value=int(datetime(2027, 12, 1, tzinfo=UTC).timestamp() * 1e6),
).map(lambda us: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us))
zones = st.sampled_from([UTC, CPH])
durations = st.integers(min_value=0, max_value=20 * 8 * 3600 * 10**6).map(
    lambda us: timedelta(microseconds=us)
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(calendars(), instants, zones, durations)
def test_elapsed_to_the_deadline_is_the_duration(
    cal: tuple[dict[str, Any], BusinessCalendar], start: datetime, zone: Any, d: timedelta
) -> None:
    _, business = cal
    deadline = business.add(start.astimezone(zone), d)
    assert deadline >= start
    assert business.elapsed(start, deadline) == d


@SETTINGS
@given(calendars(), instants, instants, durations, durations)
def test_add_is_monotonic_in_start_and_duration(
    cal: tuple[dict[str, Any], BusinessCalendar],
    s1: datetime,
    s2: datetime,
    d1: timedelta,
    d2: timedelta,
) -> None:
    _, business = cal
    s1, s2 = sorted((s1, s2))
    d1, d2 = sorted((d1, d2))
    assert business.add(s1, d1) <= business.add(s2, d1)
    assert business.add(s1, d1) <= business.add(s1, d2)


@SETTINGS
@given(calendars(), instants, durations)
def test_deadline_is_the_earliest_instant(
    cal: tuple[dict[str, Any], BusinessCalendar], start: datetime, d: timedelta
) -> None:
    _, business = cal
    deadline = business.add(start, d)
    tick = timedelta(microseconds=1)
    if d > timedelta(0):
        # Business time was still running just before the deadline.
        assert business.is_open(deadline - tick)
        assert business.elapsed(start, deadline - tick) == d - tick
    else:
        assert business.is_open(deadline)
        assert deadline == start or business.elapsed(start, deadline) == timedelta(0)


@SETTINGS
@given(
    calendars(),
    instants,
    # a clock's steps and deadline; some reach past the years the calendar has built
    st.lists(st.integers(min_value=0, max_value=3000 * 3600 * 10**6), min_size=1, max_size=6),
)
def test_adding_each_duration_from_one_start_is_adding_them_one_by_one(
    cal: tuple[dict[str, Any], BusinessCalendar], start: datetime, durations: list[int]
) -> None:
    config, business = cal
    start_us = round(start.timestamp() * 1e6)
    # A calendar of its own for each: what one has built must not decide the answers.
    one_by_one = BusinessCalendar.from_config(config)
    expected = [one_by_one.add_us(start_us, d) for d in durations]
    assert business.add_each_us(start_us, durations) == expected


@SETTINGS
@given(calendars(), instants, instants, instants)
def test_elapsed_is_additive(
    cal: tuple[dict[str, Any], BusinessCalendar], a: datetime, b: datetime, c: datetime
) -> None:
    _, business = cal
    a, b, c = sorted((a, b, c))
    assert business.elapsed(a, c) == business.elapsed(a, b) + business.elapsed(b, c)


def _open_by_wall_clock(
    config: dict[str, Any], instant: datetime, zone: ZoneInfo, closed: set[date]
) -> bool:
    """Reference: is the instant's local wall time inside a window of its day or the day before."""
    wall = instant.astimezone(zone).replace(tzinfo=None)
    for back in (0, 1):
        day = wall.date() - timedelta(days=back)
        if day in closed:
            continue
        for text in config["week"].get(WEEKDAYS[day.weekday()], []):
            window = parse_window(text)
            midnight = datetime.combine(day, datetime.min.time())
            if (
                midnight + timedelta(minutes=window.start_min)
                <= wall
                < midnight + timedelta(minutes=window.end_min)
            ):
                return True
    return False


# Five days walked from a Friday before each of the zones' 2026 clock changes, and from a
# Tuesday in a week without one.
CHANGE_WEEKS = [
    ("Europe/Copenhagen", date(2026, 3, 27)),  # 29 March at 02:00, an hour forward
    ("Europe/Copenhagen", date(2026, 10, 23)),  # 25 October at 03:00, an hour back
    ("Europe/Copenhagen", date(2026, 12, 22)),  # none
    ("America/New_York", date(2026, 3, 6)),  # 8 March at 02:00, an hour forward
    ("America/New_York", date(2026, 10, 30)),  # 1 November at 02:00, an hour back
    ("Australia/Lord_Howe", date(2026, 4, 3)),  # 5 April at 02:00, half an hour back
    ("Australia/Lord_Howe", date(2026, 10, 2)),  # 4 October at 02:00, half an hour forward
    ("America/Santiago", date(2026, 4, 3)),  # 5 April at 00:00, an hour back
    ("America/Santiago", date(2026, 9, 4)),  # 6 September at 00:00, an hour forward
]


@pytest.mark.parametrize(
    ("timezone", "first_day"), CHANGE_WEEKS, ids=[f"{tz}-{day}" for tz, day in CHANGE_WEEKS]
)
@settings(max_examples=40, deadline=None)
@given(week_strategy, st.sets(st.integers(min_value=0, max_value=4), max_size=2))
def test_open_time_matches_a_walk_in_quarter_hours(
    timezone: str, first_day: date, week: dict[str, list[str]], closed_offsets: set[int]
) -> None:
    zone = ZoneInfo(timezone)
    closed = {first_day + timedelta(days=n) for n in closed_offsets}
    config = {
        "timezone": timezone,
        "week": week,
        "holidays": {"country": None, "dates": sorted(closed)},
    }
    business = BusinessCalendar.from_config(config)
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    # Every window edge and clock change falls on a quarter hour of real time (these zones'
    # offsets are whole or half hours), so a walk in quarter hours sees each stretch of open
    # time whole.
    step = timedelta(minutes=15)
    steps = 5 * 24 * 4
    open_steps = 0
    for n in range(steps):
        instant = start + n * step
        expected = _open_by_wall_clock(config, instant, zone, closed)
        assert business.is_open(instant) == expected, instant
        assert business.is_open(instant + step / 2) == expected, instant
        open_steps += expected
    assert business.elapsed(start, start + steps * step) == open_steps * step
