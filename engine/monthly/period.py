"""Months in a department's calendar: the month a report covers, and when it is due. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from engine.business_time.calendar import BusinessCalendar, NaiveDatetimeError

TREND_MONTHS = 3
"""A report's month is set against this many months before it."""


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month, as ``2026-11``."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise ValueError(f"month {self.month} is not 1-12")

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``; raises ``ValueError`` with a reason a person can act on."""
        year, dash, month = text.partition("-")
        if not (dash and len(year) == 4 and len(month) == 2 and (year + month).isdigit()):
            raise ValueError(f"{text!r} is not a month written YYYY-MM")
        return cls(int(year), int(month))

    @classmethod
    def of(cls, at: datetime, zone: ZoneInfo) -> Month:
        """The month ``at`` falls in, in ``zone``."""
        if at.utcoffset() is None:
            raise NaiveDatetimeError(f"{at.isoformat()} has no UTC offset")
        local = at.astimezone(zone)
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def plus(self, months: int) -> Month:
        """The month ``months`` later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def start(self, zone: ZoneInfo) -> datetime:
        """Local midnight of the first day, in ``zone``."""
        return datetime.combine(self.first_day, time(), zone)

    def end(self, zone: ZoneInfo) -> datetime:
        """Local midnight of the next month's first day: the end, exclusive."""
        return self.plus(1).start(zone)

    def trend(self) -> tuple[Month, ...]:
        """The months a report sets this one against, oldest first, then this one."""
        return tuple(self.plus(-n) for n in range(TREND_MONTHS, -1, -1))


def due_at(calendar: BusinessCalendar, month: Month) -> datetime:
    """When the report for ``month`` is due: the first open instant of the month after,
    the morning of its first working day in ``calendar``."""
    return calendar.next_open(month.plus(1).start(calendar.spec.zone))


def month_due(calendar: BusinessCalendar, now: datetime) -> tuple[Month, datetime] | None:
    """The month whose report is due at ``now`` (the month before ``now``'s), with its due
    instant; None while this month's first working day has not opened yet."""
    reported = Month.of(now, calendar.spec.zone).plus(-1)
    due = due_at(calendar, reported)
    return (reported, due) if now >= due else None
