"""When a year's tickets are raised: the arrival model behind ``examples/make_year.py``.

Every local hour of the year gets a weight: the season of its day, times how busy that
hour is on an ordinary weekday or on a closed day (weekends and Danish public holidays,
from the ``holidays`` package, with the days the municipality also closes). Departments
on a round-the-clock calendar (care) have a flatter day than the offices.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta, tzinfo

import holidays

# Tickets raised per local hour (0-23): a morning peak, a lunch dip, a trickle at night.
# fmt: off
WORKDAY_HOURS = (0.15, 0.1, 0.1, 0.1, 0.1, 0.15, 0.4, 2.5, 12, 14, 13, 10,
                 6, 9, 8, 5, 2, 1.2, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2)
CLOSED_DAY_HOURS = (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.25, 0.35, 0.35, 0.35,
                    0.35, 0.35, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.25, 0.2, 0.15, 0.1)
# Care works shifts every day: evenings and nights raise their share, weekends too.
CARE_WORKDAY_HOURS = (0.8, 0.6, 0.5, 0.5, 0.5, 0.6, 1.5, 4, 10, 11, 10, 8,
                      5, 7, 7, 5, 3.5, 3, 2.5, 2.5, 2, 1.8, 1.5, 1)
CARE_CLOSED_DAY_HOURS = tuple(0.55 * w for w in CARE_WORKDAY_HOURS)
# fmt: on
WEEKDAY_FACTOR = (1.2, 1.05, 1.0, 0.95, 0.8)  # Monday brings the weekend's problems; short Friday
MONDAY_MORNING = 1.4  # on top, 8-11 on Mondays
# Month by month; July is the common summer holiday, January starts the year busy.
MONTH_FACTOR = (1.2, 1.05, 1.0, 0.95, 0.95, 0.9, 0.5, 1.0, 1.05, 1.0, 1.0, 0.9)
CHRISTMAS_WEEK = 0.3  # 23 December to 31 December
AUTUMN_HOLIDAY = 0.8  # week 42, the schools' autumn holiday
SCHOOL_START_DAYS = 19  # from the second Monday of August: new pupils, new staff, new logins
SCHOOL_START = 1.5
BEFORE_SCHOOL_START = 0.75  # August's first days are still holiday
OFFICE_HOURS = (8, 16)  # local, Monday to Friday: what counts as office hours


def school_start_day(year: int) -> date:
    """The second Monday of August, when Copenhagen's schools start."""
    eighth = date(year, 8, 8)
    return eighth + timedelta(days=-eighth.weekday() % 7)


def season(day: date) -> float:
    """How busy a day is for its time of year, as a factor of an ordinary day."""
    start = school_start_day(day.year)
    if day.month == 12 and day.day >= 23:
        return CHRISTMAS_WEEK
    if day.month == 8:
        if day < start:
            return BEFORE_SCHOOL_START
        if day < start + timedelta(days=SCHOOL_START_DAYS):
            return SCHOOL_START
    if day.isocalendar().week == 42:
        return AUTUMN_HOLIDAY
    return MONTH_FACTOR[day.month - 1]


class Arrivals:
    """A year's hours and their weights, and the local-time questions the stories ask."""

    def __init__(self, year: int, zone: tzinfo) -> None:
        self.year = year
        self.zone = zone
        self.start_s = int(datetime(year, 1, 1, tzinfo=zone).timestamp())
        self.end_s = int(datetime(year + 1, 1, 1, tzinfo=zone).timestamp())
        # The days the office calendar closes: public holidays, 24 and 31 Dec, 1 May, 5 June.
        self.holidays = holidays.country_holidays(
            "DK", years=year, categories=(holidays.PUBLIC, holidays.OPTIONAL)
        )
        self.school_start = school_start_day(year)
        self.hours = list(range(self.start_s, self.end_s, 3600))  # DST-exact: real hours
        # Offsets are whole hours, so an instant's text is its hour's prefix plus the
        # minutes and seconds: several times faster than a datetime per event.
        self._local_hours = [self._hour_text(s, zone) for s in self.hours]
        self._utc_hours = [self._hour_text(s, UTC) for s in self.hours]
        self.cum_weights = {
            care: list(itertools.accumulate(self._weight(s, care) for s in self.hours))
            for care in (False, True)
        }

    def closed(self, day: date) -> bool:
        """A weekend day or a holiday: the offices are closed."""
        return day.weekday() >= 5 or day in self.holidays

    def _weight(self, hour_s: int, care: bool) -> float:
        local = datetime.fromtimestamp(hour_s, self.zone)
        day, hour = local.date(), local.hour
        if self.closed(day):
            profile = CARE_CLOSED_DAY_HOURS if care else CLOSED_DAY_HOURS
            return season(day) * profile[hour]
        profile = CARE_WORKDAY_HOURS if care else WORKDAY_HOURS
        weight = season(day) * WEEKDAY_FACTOR[day.weekday()] * profile[hour]
        if day.weekday() == 0 and 8 <= hour < 11:
            weight *= MONDAY_MORNING
        return weight

    def sample(self, rng: random.Random, care: bool, count: int) -> list[int]:
        """``count`` creation instants (epoch seconds), unsorted."""
        hours = rng.choices(self.hours, cum_weights=self.cum_weights[care], k=count)
        return [hour_s + rng.randrange(3600) for hour_s in hours]

    def office_hours(self, at_s: int) -> bool:
        """Monday to Friday, 8 to 16 local, not a holiday."""
        local = datetime.fromtimestamp(at_s, self.zone)
        return OFFICE_HOURS[0] <= local.hour < OFFICE_HOURS[1] and not self.closed(local.date())

    def in_school_start(self, at_s: int) -> bool:
        """Within the weeks after the schools start."""
        day = datetime.fromtimestamp(at_s, self.zone).date()
        return 0 <= (day - self.school_start).days < SCHOOL_START_DAYS

    def nightly_run(self, at_s: int) -> int:
        """The helpdesk system's nightly job at 02:00 local, at or after an instant."""
        local = datetime.fromtimestamp(at_s, self.zone)
        day = local.date() if local.hour < 2 else local.date() + timedelta(days=1)
        return int(datetime(day.year, day.month, day.day, 2, tzinfo=self.zone).timestamp())

    @staticmethod
    def _hour_text(hour_s: int, zone: tzinfo) -> tuple[str, str]:
        text = datetime.fromtimestamp(hour_s, zone).isoformat(timespec="seconds")
        offset = text[19:].replace("+00:00", "Z")
        return text[:14], offset  # "2026-03-29T03:", "+02:00"

    def rfc3339(self, at_s: int, *, utc: bool = False) -> str:
        """An instant of the year as the contract writes it: local with its offset, or UTC."""
        hour, within_s = divmod(at_s - self.start_s, 3600)
        prefix, offset = (self._utc_hours if utc else self._local_hours)[hour]
        minute, second = divmod(within_s, 60)
        return f"{prefix}{minute:02d}:{second:02d}{offset}"
