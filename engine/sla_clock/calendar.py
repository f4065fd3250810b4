"""Business-time arithmetic over a calendar's open intervals.

The calendar's open time is kept as sorted, disjoint real-time intervals in epoch
microseconds with cumulative sums, built a local year at a time when first needed. ``add``
and ``elapsed`` are then a binary search and some integer arithmetic, whatever the duration.
Integers keep ``elapsed(s, add(s, d)) == d`` exact to the microsecond.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import holidays

from engine.sla_clock.spec import CalendarSpec
from engine.sla_clock.wall_time import EPOCH, wall_span_to_utc
from engine.sla_clock.windows import WEEKDAYS, Window

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)  # times an int: the fastest exact timedelta


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone was given where an instant is required."""


# Instants are handled between these years. Within them a float timestamp converts to and
# from exact microseconds (up to 2**53 of them, about 285 years either side of 1970), which
# is several times faster than timedelta arithmetic on the hot path.
FIRST_YEAR, LAST_YEAR = 1900, 2199


def to_us(at: datetime) -> int:
    """Epoch microseconds of an aware datetime; a naive one is refused."""
    if at.tzinfo is None:
        raise NaiveDatetimeError(f"expected a timezone-aware datetime, got {at!r}; attach a tzinfo")
    return round(at.timestamp() * 1e6)


def duration_us(duration: timedelta) -> int:
    """Microseconds of a non-negative duration."""
    us = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
    if us < 0:
        raise ValueError(f"a business duration cannot be negative: {duration}")
    return us


class BusinessCalendar:
    """Open business time of one calendar: deadlines, elapsed time and opening checks."""

    __slots__ = (
        "_batch_calendar",
        "_closed_cache",
        "_cum",
        "_cum_end",
        "_ends",
        "_first_year",
        "_hi_us",
        "_include_batch",
        "_last_year",
        "_lo_us",
        "_spec",
        "_starts",
        "_zone",
    )

    def __init__(self, spec: CalendarSpec, *, include_batch: bool = False) -> None:
        if not spec.has_week_hours(include_batch=include_batch):
            raise ValueError("the calendar has no opening window on any weekday")
        self._spec = spec
        self._zone = spec.zone
        self._include_batch = include_batch
        self._batch_calendar: BusinessCalendar | None = None
        self._closed_cache: dict[int, frozenset[date]] = {}
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._cum: list[int] = []  # open time before interval i
        self._cum_end: list[int] = []  # open time up to the end of interval i
        self._first_year = 0
        self._last_year = -1
        self._lo_us = 0
        self._hi_us = 0

    @classmethod
    def from_config(cls, config: CalendarSpec | Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from its config mapping (validated) or a validated spec."""
        spec = config if isinstance(config, CalendarSpec) else CalendarSpec.model_validate(config)
        return cls(spec)

    @property
    def spec(self) -> CalendarSpec:
        """The calendar's validated description."""
        return self._spec

    @property
    def covers_batch(self) -> bool:
        """Whether the batch windows are open time on this calendar."""
        return self._include_batch

    def with_batch_windows(self) -> BusinessCalendar:
        """The calendar that also covers the batch windows (itself when it has none)."""
        if self._include_batch or not self._spec.batch_windows:
            return self
        if self._batch_calendar is None:
            self._batch_calendar = BusinessCalendar(self._spec, include_batch=True)
        return self._batch_calendar

    def __repr__(self) -> str:
        batch = ", with batch windows" if self._include_batch else ""
        return f"<BusinessCalendar {self._spec.timezone}{batch}>"

    # -- queries ------------------------------------------------------------------------

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant at which the business time since ``start`` reaches ``duration``."""
        # to_us and duration_us inlined: a function call is a tenth of this method's cost.
        if start.tzinfo is None:
            to_us(start)  # raises NaiveDatetimeError
        s = round(start.timestamp() * 1e6)
        dur = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
        if dur < 0:
            duration_us(duration)  # raises ValueError
        if not self._lo_us <= s < self._hi_us:
            self._cover(s)
        # The hot path, kept flat: it decides how many deadlines a second the engine sets.
        starts, ends, cum_end = self._starts, self._ends, self._cum_end
        i = bisect_right(ends, s)  # the first interval ending after s
        if i < len(ends):
            begin = starts[i]
            if dur == 0:
                return datetime.fromtimestamp((s if s > begin else begin) / 1e6, self._zone)
            target = self._cum[i] + (s - begin if s > begin else 0) + dur
            if target <= cum_end[-1]:
                j = bisect_left(cum_end, target, i)
                return datetime.fromtimestamp((ends[j] - cum_end[j] + target) / 1e6, self._zone)
        self._extend_forward()  # the deadline lies beyond the built years
        return self.add(start, duration)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero when ``end`` is not after ``start``."""
        a, b = to_us(start), to_us(end)
        if b <= a:
            return _ZERO
        if not self._lo_us <= a < self._hi_us:
            self._cover(a)
        if not self._lo_us <= b < self._hi_us:
            self._cover(b)
        return _MICROSECOND * (self._open_before(b) - self._open_before(a))

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` is open time: windows are open at their start, closed at their end."""
        x = to_us(at)
        if not self._lo_us <= x < self._hi_us:
            self._cover(x)
        i = bisect_right(self._starts, x) - 1
        return i >= 0 and x < self._ends[i]

    def next_open(self, at: datetime) -> datetime:
        """The first open instant at or after ``at`` (``at`` itself while open)."""
        return self.add(at, _ZERO)

    def open_time_in_year(self, year: int) -> timedelta:
        """Business time in one local calendar year."""
        lo, hi = self._year_start_us(year), self._year_start_us(year + 1)
        self._cover(lo)
        self._cover(hi)
        return _MICROSECOND * (self._open_before(hi) - self._open_before(lo))

    # -- internals ----------------------------------------------------------------------

    def _open_before(self, x: int) -> int:
        """Open time from the first built interval up to instant ``x``."""
        i = bisect_right(self._starts, x) - 1
        if i < 0:
            return 0
        return self._cum[i] + min(x, self._ends[i]) - self._starts[i]

    def _cover(self, x: int) -> None:
        """Build intervals until instant ``x`` lies inside the built range."""
        if not _FIRST_US <= x < _LAST_US:
            raise ValueError(
                f"instant {from_utc_us(x)} lies outside the years {FIRST_YEAR}-{LAST_YEAR} "
                "that calendars handle"
            )
        if self._last_year < self._first_year:
            year = from_utc_us(x).astimezone(self._zone).year
            self._build(year)
        while x < self._lo_us:
            self._extend_backward()
        while x >= self._hi_us:
            self._extend_forward()

    def _extend_forward(self) -> None:
        self._build(self._last_year + 1)

    def _extend_backward(self) -> None:
        self._build(self._first_year - 1)

    def _build(self, year: int) -> None:
        """Add the intervals of a whole local year adjacent to the built range."""
        if not FIRST_YEAR - 1 <= year <= LAST_YEAR + 1:
            raise ValueError(f"business time beyond the years {FIRST_YEAR}-{LAST_YEAR}")
        new = self._year_intervals(year)
        if self._last_year < self._first_year:
            self._first_year = self._last_year = year
            self._lo_us, self._hi_us = self._year_start_us(year), self._year_start_us(year + 1)
            pairs = new
        elif year == self._last_year + 1:
            self._last_year = year
            self._hi_us = self._year_start_us(year + 1)
            pairs = [*zip(self._starts, self._ends, strict=True), *new]
        else:  # a year before the built range: rare, so rebuild the sums from scratch
            self._first_year = year
            self._lo_us = self._year_start_us(year)
            pairs = [*new, *zip(self._starts, self._ends, strict=True)]
        self._set_intervals(_merge(pairs))

    def _set_intervals(self, pairs: list[tuple[int, int]]) -> None:
        self._starts = [a for a, _ in pairs]
        self._ends = [b for _, b in pairs]
        self._cum, self._cum_end = [], []
        total = 0
        for a, b in pairs:
            self._cum.append(total)
            total += b - a
            self._cum_end.append(total)

    def _year_start_us(self, year: int) -> int:
        return to_us(datetime(year, 1, 1, tzinfo=self._zone))

    def _year_intervals(self, year: int) -> list[tuple[int, int]]:
        """Open intervals within one local year, clipped to it, sorted and merged."""
        lo, hi = self._year_start_us(year), self._year_start_us(year + 1)
        closed = self._closed_dates(year - 1) | self._closed_dates(year)
        spans: list[tuple[int, int]] = []
        day = date(year - 1, 12, 31)  # its windows may cross midnight into the year
        last = date(year, 12, 31)
        while day <= last:
            midnight = datetime.combine(day, time())
            for window in self._windows_on(day, day in closed):
                start = midnight + timedelta(minutes=window.start_min)
                end = midnight + timedelta(minutes=window.end_min)
                for a, b in wall_span_to_utc(start, end, self._zone):
                    a, b = max(a, lo), min(b, hi)
                    if a < b:
                        spans.append((a, b))
            day += _DAY
        return _merge(sorted(spans))

    def _windows_on(self, day: date, closed: bool) -> list[Window]:
        weekday = WEEKDAYS[day.weekday()]
        windows: list[Window] = [] if closed else list(self._spec.week.get(weekday, ()))
        if self._include_batch and (self._spec.batch_on_closed_days or not closed):
            windows.extend(self._spec.batch_windows.get(weekday, ()))
        return windows

    def _closed_dates(self, year: int) -> frozenset[date]:
        cached = self._closed_cache.get(year)
        if cached is not None:
            return cached
        spec = self._spec.holidays
        closed = {d for d in spec.dates if d.year == year}
        if spec.country is not None:
            closed.update(
                holidays.country_holidays(
                    spec.country, subdiv=spec.subdivision, categories=spec.categories, years=year
                )
            )
        result = frozenset(closed - set(spec.open_dates))
        self._closed_cache[year] = result
        return result


def from_utc_us(us: int) -> datetime:
    """The UTC datetime of epoch microseconds, exact at any size."""
    return EPOCH + timedelta(microseconds=us)


_FIRST_US = round(datetime(FIRST_YEAR, 1, 2, tzinfo=UTC).timestamp() * 1e6)
_LAST_US = round(datetime(LAST_YEAR, 12, 30, tzinfo=UTC).timestamp() * 1e6)


def _merge(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge sorted intervals that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for a, b in pairs:
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged
