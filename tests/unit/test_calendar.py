"""Business calendar: deadlines and elapsed time across nights, weekends, holidays and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engine.business_time import BusinessCalendar, NaiveDatetimeError

CPH = ZoneInfo("Europe/Copenhagen")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
OFFICE: dict[str, Any] = {"week": {day: ["08:00-16:00"] for day in WEEKDAYS}}


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *rest: int) -> datetime:
    """A Copenhagen wall-clock instant."""
    second, micro = (*rest, 0, 0)[:2]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=CPH)


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


@pytest.fixture
def office() -> BusinessCalendar:
    return BusinessCalendar.from_config(OFFICE)


# 2026-11-23 is a Monday.


def test_add_within_one_day(office: BusinessCalendar) -> None:
    assert office.add(at(2026, 11, 23, 10), h(2)) == at(2026, 11, 23, 12)


def test_add_carries_over_the_night(office: BusinessCalendar) -> None:
    assert office.add(at(2026, 11, 23, 15), h(2)) == at(2026, 11, 24, 9)


def test_add_carries_over_the_weekend(office: BusinessCalendar) -> None:
    assert office.add(at(2026, 11, 27, 15), h(2)) == at(2026, 11, 30, 9)
    assert office.add(at(2026, 11, 28, 12), h(1)) == at(2026, 11, 30, 9)


def test_duration_ending_at_closing_time_gives_closing_time(office: BusinessCalendar) -> None:
    assert office.add(at(2026, 11, 23, 15), h(1)) == at(2026, 11, 23, 16)
    assert office.add(at(2026, 11, 23, 8), h(8)) == at(2026, 11, 23, 16)


def test_add_zero_is_the_first_business_instant_at_or_after_start(
    office: BusinessCalendar,
) -> None:
    assert office.add(at(2026, 11, 23, 10, 30), timedelta(0)) == at(2026, 11, 23, 10, 30)
    assert office.add(at(2026, 11, 28, 10), timedelta(0)) == at(2026, 11, 30, 8)
    # Windows are half-open: closed at their last instant.
    assert office.add(at(2026, 11, 23, 16), timedelta(0)) == at(2026, 11, 24, 8)
    assert office.next_open(at(2026, 11, 23, 7, 59)) == at(2026, 11, 23, 8)
    assert office.next_open(at(2026, 11, 23, 12)) == at(2026, 11, 23, 12)


def test_windows_are_open_at_start_and_closed_at_end(office: BusinessCalendar) -> None:
    assert office.is_open(at(2026, 11, 23, 8))
    assert office.is_open(at(2026, 11, 23, 15, 59, 59, 999999))
    assert not office.is_open(at(2026, 11, 23, 16))
    assert not office.is_open(at(2026, 11, 23, 7, 59, 59, 999999))
    assert not office.is_open(at(2026, 11, 28, 12))  # Saturday


def test_elapsed_counts_only_business_time(office: BusinessCalendar) -> None:
    assert office.elapsed(at(2026, 11, 23, 10), at(2026, 11, 23, 12)) == h(2)
    assert office.elapsed(at(2026, 11, 27, 15), at(2026, 11, 30, 9)) == h(2)
    assert office.elapsed(at(2026, 11, 23, 0), at(2026, 11, 30, 0)) == h(40)


def test_elapsed_is_zero_when_end_is_not_after_start(office: BusinessCalendar) -> None:
    assert office.elapsed(at(2026, 11, 23, 12), at(2026, 11, 23, 12)) == timedelta(0)
    assert office.elapsed(at(2026, 11, 23, 12), at(2026, 11, 23, 10)) == timedelta(0)


def test_split_day_skips_the_lunch_break() -> None:
    cal = BusinessCalendar.from_config(
        {"week": {"tue": ["08:00-12:00", "13:00-16:00"]}, "holidays": {"country": None}}
    )
    assert cal.add(at(2026, 11, 24, 11, 30), h(1)) == at(2026, 11, 24, 13, 30)
    assert cal.add(at(2026, 11, 24, 11), h(1)) == at(2026, 11, 24, 12)
    assert not cal.is_open(at(2026, 11, 24, 12, 30))
    assert cal.elapsed(at(2026, 11, 24, 0), at(2026, 11, 25, 0)) == h(7)


def test_public_holidays_are_closed(office: BusinessCalendar) -> None:
    # Maundy Thursday to Easter Monday 2026: 2 April to 6 April.
    assert office.add(at(2026, 4, 1, 15), h(2)) == at(2026, 4, 7, 9)
    assert not office.is_open(at(2026, 4, 6, 10))


def test_optional_holiday_category_is_selectable(office: BusinessCalendar) -> None:
    # Christmas Eve is filed under Denmark's optional category: open unless observed.
    assert office.add(at(2026, 12, 23, 15), h(2)) == at(2026, 12, 24, 9)
    observing = BusinessCalendar.from_config(
        {**OFFICE, "holidays": {"country": "DK", "categories": ["public", "optional"]}}
    )
    assert observing.add(at(2026, 12, 23, 15), h(2)) == at(2026, 12, 28, 9)
    assert not observing.is_open(at(2026, 6, 5, 10))  # Constitution Day
    assert office.is_open(at(2026, 6, 5, 10))


def test_extra_closure_dates_and_dates_kept_open() -> None:
    cal = BusinessCalendar.from_config(
        {**OFFICE, "holidays": {"dates": ["2026-11-24"], "open_dates": ["2026-12-25"]}}
    )
    assert cal.add(at(2026, 11, 23, 15), h(2)) == at(2026, 11, 25, 9)
    assert cal.is_open(at(2026, 12, 25, 10))  # Christmas Day, kept open
    assert cal.is_open(at(2026, 12, 24, 10))  # optional category not observed


def test_no_holidays_when_country_is_null() -> None:
    cal = BusinessCalendar.from_config({**OFFICE, "holidays": {"country": None}})
    assert cal.is_open(at(2026, 12, 25, 10))


def test_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    cal = BusinessCalendar.from_config({"week": {"sun": ["22:00-06:00"]}})
    assert cal.is_open(at(2026, 11, 30, 1))  # Monday night, from Sunday's window
    assert not cal.is_open(at(2026, 11, 29, 1))  # Sunday night: Saturday has no window
    assert cal.add(at(2026, 11, 29, 23), h(3)) == at(2026, 11, 30, 2)
    assert cal.add(at(2026, 11, 29, 23), h(7)) == at(2026, 11, 30, 6)
    assert cal.add(at(2026, 11, 29, 23), h(8)) == at(2026, 12, 6, 23)


def test_holiday_closes_the_window_starting_on_it_not_the_one_ending_on_it() -> None:
    cal = BusinessCalendar.from_config(
        {"week": {d: ["22:00-06:00"] for d in WEEKDAYS}, "holidays": {"dates": ["2026-11-25"]}}
    )
    assert cal.is_open(at(2026, 11, 25, 3))  # Tuesday's window, into the closed Wednesday
    assert not cal.is_open(at(2026, 11, 25, 23))  # Wednesday's own window
    assert cal.is_open(at(2026, 11, 26, 23))


def test_whole_day_window() -> None:
    cal = BusinessCalendar.from_config(
        {"week": {"sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}, "holidays": {"country": None}}
    )
    assert cal.elapsed(at(2026, 11, 27, 12), at(2026, 11, 30, 12)) == h(48)
    assert cal.add(at(2026, 11, 28, 23), h(2)) == at(2026, 11, 29, 1)


def test_overlapping_windows_count_once() -> None:
    cal = BusinessCalendar.from_config(
        {"week": {"mon": ["08:00-12:00", "10:00-14:00"]}, "holidays": {"country": None}}
    )
    assert cal.elapsed(at(2026, 11, 23, 0), at(2026, 11, 24, 0)) == h(6)


class TestDaylightSaving:
    """2026 in Europe/Copenhagen: spring forward 29 March, fall back 25 October."""

    def test_spring_forward_day_lasts_23_hours(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sun": ["00:00-24:00"]}})
        assert cal.elapsed(at(2026, 3, 29), at(2026, 3, 30)) == h(23)
        assert cal.add(at(2026, 3, 29), h(23)) == at(2026, 3, 30)

    def test_fall_back_day_lasts_25_hours(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sun": ["00:00-24:00"]}})
        assert cal.elapsed(at(2026, 10, 25), at(2026, 10, 26)) == h(25)
        assert cal.add(at(2026, 10, 25), h(25)) == at(2026, 10, 26)

    def test_skipped_hour_window_is_empty_and_repeated_hour_lasts_two(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sun": ["02:00-03:00"]}})
        assert cal.elapsed(at(2026, 3, 29), at(2026, 3, 30)) == timedelta(0)
        assert cal.elapsed(at(2026, 10, 25), at(2026, 10, 26)) == h(2)
        assert cal.elapsed(at(2026, 3, 22), at(2026, 3, 23)) == h(1)
        # 90 minutes into the doubled hour: the second 02:30, in winter time.
        deadline = cal.add(at(2026, 10, 25), timedelta(minutes=90))
        assert deadline.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        assert (deadline.hour, deadline.minute, deadline.fold) == (2, 30, 1)

    def test_deadline_in_the_repeated_hour_compares_in_utc_or_by_order(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sun": ["02:00-03:00"]}})
        same = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
        deadline = cal.add(at(2026, 10, 25), timedelta(minutes=90))
        # PEP 495, as add's docstring warns: == across zones fails in the repeated hour.
        assert deadline != same
        assert deadline.astimezone(UTC) == same
        tick = timedelta(microseconds=1)
        assert deadline <= same <= deadline
        assert same - tick < deadline < same + tick

    def test_window_starting_inside_the_skipped_hour_opens_when_clocks_jump(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sun": ["02:30-04:00"]}})
        assert cal.elapsed(at(2026, 3, 29), at(2026, 3, 30)) == h(1)
        assert cal.next_open(at(2026, 3, 29)) == datetime(2026, 3, 29, 1, tzinfo=UTC)

    def test_night_window_over_the_change(self) -> None:
        cal = BusinessCalendar.from_config({"week": {"sat": ["22:00-06:00"]}})
        assert cal.elapsed(at(2026, 3, 28, 12), at(2026, 3, 29, 12)) == h(7)
        assert cal.elapsed(at(2026, 10, 24, 12), at(2026, 10, 25, 12)) == h(9)

    def test_office_hours_keep_their_wall_clock_across_the_change(
        self, office: BusinessCalendar
    ) -> None:
        deadline = office.add(at(2026, 3, 27, 15), h(2))
        assert deadline == at(2026, 3, 30, 9)
        assert deadline.utcoffset() == h(2)
        assert office.add(at(2026, 10, 23, 15), h(2)).utcoffset() == h(1)


def test_long_target_across_christmas_matches_a_day_count(office: BusinessCalendar) -> None:
    closed = {date(2026, 12, 25), date(2027, 1, 1)}  # DK public holidays on weekdays here
    day, hours_left = date(2026, 12, 14), 320
    while True:
        if day.weekday() < 5 and day not in closed:
            if hours_left <= 8:
                expected = at(day.year, day.month, day.day, 8 + hours_left)
                break
            hours_left -= 8
        day += timedelta(days=1)
    assert office.add(at(2026, 12, 14, 8), h(320)) == expected


def test_results_are_in_the_calendar_zone_whatever_the_input_zone(
    office: BusinessCalendar,
) -> None:
    deadline = office.add(datetime(2026, 11, 23, 9, tzinfo=UTC), h(1))
    assert deadline == at(2026, 11, 23, 11)
    assert deadline.tzinfo == CPH


def test_naive_datetimes_are_refused(office: BusinessCalendar) -> None:
    naive = datetime(2026, 11, 23, 10)
    with pytest.raises(NaiveDatetimeError, match="timezone-aware"):
        office.add(naive, h(1))
    with pytest.raises(NaiveDatetimeError):
        office.elapsed(naive, at(2026, 11, 24))
    with pytest.raises(NaiveDatetimeError):
        office.is_open(naive)
    with pytest.raises(NaiveDatetimeError):
        office.next_open(naive)


def test_negative_duration_is_refused(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        office.add(at(2026, 11, 23, 10), h(-1))


def test_building_backwards_gives_the_same_answers() -> None:
    forward = BusinessCalendar.from_config(OFFICE)
    assert forward.add(at(2031, 5, 5, 10), h(3)) == at(2031, 5, 5, 13)
    # The calendar first built 2031, now extends back a decade and forward again.
    start = at(2021, 12, 30, 10)
    fresh = BusinessCalendar.from_config(OFFICE)
    assert forward.add(start, h(700)) == fresh.add(start, h(700))
    assert forward.elapsed(start, at(2031, 5, 5, 13)) == fresh.elapsed(start, at(2031, 5, 5, 13))


@pytest.mark.parametrize("far", [at(2190, 6, 5, 10), at(1905, 6, 5, 10)])
def test_far_instant_gives_the_answers_of_a_fresh_calendar(far: datetime) -> None:
    near = at(2026, 11, 23, 10)
    cal = BusinessCalendar.from_config(OFFICE)
    deadline = cal.add(near, h(700))
    fresh = BusinessCalendar.from_config(OFFICE)
    later = far + timedelta(days=90)
    assert cal.is_open(far) == fresh.is_open(far)
    assert cal.add(far, h(700)) == fresh.add(far, h(700))
    assert cal.next_open(far + h(8)) == fresh.next_open(far + h(8))
    assert cal.elapsed(far, later) == fresh.elapsed(far, later)
    assert cal.add(near, h(700)) == deadline
    # The years between, built in one go, agree with a calendar grown a year at a time.
    first, last = sorted((far.year, near.year))
    years = range(first, last + 1)
    stepwise = BusinessCalendar.from_config(OFFICE)
    total = sum(
        (stepwise.open_time_in_year(y) for y in (years if far > near else reversed(years))),
        timedelta(0),
    )
    assert cal.elapsed(at(first, 1, 1), at(last + 1, 1, 1)) == total


def test_open_time_in_year(office: BusinessCalendar) -> None:
    # 2026: 261 weekdays, of which 7 are DK public holidays (New Year, Maundy Thursday, Good
    # Friday, Easter Monday, Ascension Day, Whit Monday, Christmas Day; Christmas second
    # day falls on a Saturday).
    weekdays = sum(1 for n in range(365) if (date(2026, 1, 1) + timedelta(n)).weekday() < 5)
    assert weekdays == 261
    assert office.open_time_in_year(2026) == h(8 * (261 - 7))


class TestBatchWindows:
    config: ClassVar[dict[str, Any]] = {
        **OFFICE,
        "batch_windows": {day: ["22:00-06:00"] for day in WEEKDAYS},
    }

    def test_plain_calendar_ignores_batch_windows(self) -> None:
        cal = BusinessCalendar.from_config(self.config)
        assert not cal.is_open(at(2026, 11, 23, 23))
        assert not cal.covers_batch

    def test_batch_calendar_covers_them_too(self) -> None:
        batch = BusinessCalendar.from_config(self.config).with_batch_windows()
        assert batch.covers_batch
        assert batch.is_open(at(2026, 11, 23, 23))
        assert batch.is_open(at(2026, 11, 23, 10))
        # Monday: office hours plus 22:00-24:00; Sunday has no batch window to run into it.
        assert batch.elapsed(at(2026, 11, 23, 0), at(2026, 11, 24, 0)) == h(8 + 2)
        assert batch.elapsed(at(2026, 11, 24, 0), at(2026, 11, 25, 0)) == h(6 + 8 + 2)
        assert batch.add(at(2026, 11, 23, 15), h(3)) == at(2026, 11, 24, 0)

    def test_batch_windows_run_on_holidays_unless_configured_not_to(self) -> None:
        christmas = at(2026, 12, 25, 23)
        cal = BusinessCalendar.from_config(self.config)
        assert cal.with_batch_windows().is_open(christmas)
        strict = BusinessCalendar.from_config({**self.config, "batch_on_closed_days": False})
        assert not strict.with_batch_windows().is_open(christmas)

    def test_without_batch_windows_it_is_the_same_calendar(self) -> None:
        cal = BusinessCalendar.from_config(OFFICE)
        assert cal.with_batch_windows() is cal


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"week": {"mon": ["8-16"]}}, "HH:MM-HH:MM"),
        ({"week": {"mon": ["08:00-08:00"]}}, "empty"),
        ({"week": {"mon": ["25:00-26:00"]}}, "impossible"),
        ({"week": {"mon": ["08:00-16:00"]}, "timezone": "Europe/Kbh"}, "unknown time zone"),
        ({"week": {"mon": ["08:00-16:00"]}, "holidays": {"country": "XX"}}, "holiday country"),
        (
            {"week": {"mon": ["08:00-16:00"]}, "holidays": {"categories": ["bank"]}},
            "unknown holiday categories",
        ),
        ({"week": {"monday": ["08:00-16:00"]}}, "Input should be 'mon'"),
        ({"week": {"mon": ["08:00-16:00"]}, "extra": 1}, "Extra inputs"),
    ],
)
def test_bad_config_is_refused_with_a_reason(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.from_config(config)


def test_calendar_without_any_window_is_refused() -> None:
    with pytest.raises(ValueError, match="no opening window"):
        BusinessCalendar.from_config({"week": {"mon": []}})


def test_instants_outside_the_supported_years_are_refused(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="outside the years 1900-2199"):
        office.add(at(2300, 1, 1), h(1))
    with pytest.raises(ValueError, match="outside the years 1900-2199"):
        office.elapsed(at(1850, 1, 1), at(2026, 1, 1))
    with pytest.raises(ValueError, match="beyond the years 1900-2199"):
        office.add(at(2199, 12, 1), h(8 * 261 * 3))


def test_first_supported_year_starts_at_its_local_new_year(office: BusinessCalendar) -> None:
    # 1 January 1900 is New Year's Day, closed but handled.
    assert not office.is_open(at(1900, 1, 1))
    assert not office.is_open(datetime(1899, 12, 31, 23, tzinfo=UTC))  # 1900 in Copenhagen
    assert office.next_open(at(1900, 1, 1)) == at(1900, 1, 2, 8)
    with pytest.raises(ValueError, match="outside the years 1900-2199"):
        office.is_open(at(1900, 1, 1) - timedelta(microseconds=1))


def test_last_supported_year_ends_at_its_local_new_year_eve(office: BusinessCalendar) -> None:
    tick = timedelta(microseconds=1)
    # 31 December 2199 is a Tuesday.
    assert office.is_open(at(2199, 12, 31, 15, 59, 59, 999999))
    assert office.add(at(2199, 12, 31, 15), h(1)) == at(2199, 12, 31, 16)
    assert office.elapsed(at(2199, 12, 31), at(2200, 1, 1) - tick) == h(8)
    with pytest.raises(ValueError, match="outside the years 1900-2199"):
        office.is_open(at(2200, 1, 1))
    with pytest.raises(ValueError, match="beyond the years 1900-2199"):
        office.add(at(2199, 12, 31, 15), h(1) + tick)


def test_a_round_the_clock_calendar_is_one_span_over_all_supported_years() -> None:
    always = BusinessCalendar.from_config(
        {"week": {day: ["00:00-24:00"] for day in ALL_DAYS}, "holidays": {"country": None}}
    )
    assert always.is_open(at(2026, 6, 1))  # built from 2026, then out to both edges
    first, last = at(1900, 1, 1), at(2200, 1, 1) - timedelta(microseconds=1)
    real_time = last.astimezone(UTC) - first.astimezone(UTC)
    assert always.elapsed(first, last) == real_time
    assert always.add(first, real_time) == last
    assert always.next_open(last) == last
