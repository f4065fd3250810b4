"""Business-time arithmetic over a calendar's open intervals.

The calendar's open time is kept as sorted, disjoint real-time intervals in epoch
microseconds with cumulative sums, built by local years when first needed. The built years
stay one contiguous range: an instant outside it builds just the missing years, in one go,
appended (or prepended) to what is there. ``add`` and ``elapsed`` are then a binary search
and some integer arithmetic, whatever the duration. Integers keep
``elapsed(s, add(s, d)) == d`` exact to the microsecond.

Results are in the calendar's zone. By PEP 495 a datetime in the hour that repeats when
clocks fall back (either pass, ``fold=0`` or ``fold=1``) never compares ``==`` to a datetime
in another zone, not even to the same instant (and ``!=`` is true): compare such deadlines
in UTC (``astimezone(UTC)``) or with ``<``, ``<=``, ``>``, ``>=``, whose ordering is right.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import holidays

from engine.business_time.spec import FIRST_YEAR, LAST_YEAR, CalendarSpec
from engine.business_time.wall_time import EPOCH, MICROSECOND, offset_periods, wall_spans_to_utc
from engine.business_time.windows import WEEKDAYS, Window

_ZERO = timedelta(0)
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000
_EPOCH_DAY = date(1970, 1, 1).toordinal()

_WeekTable = tuple[tuple[tuple[int, int], ...], ...]


class NaiveDatetimeError(ValueError):
    """A datetime without a time zone was given where an instant is required."""


# Instants are handled in these local years, both included. Within them a float timestamp
# converts to and from exact microseconds (up to 2**53 of them, about 285 years either side
# of 1970), which is several times faster than timedelta arithmetic on the hot path.


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
        "_closed",
        "_cum",
        "_cum_end",
        "_ends",
        "_first_year",
        "_hi_us",
        "_holiday_years",
        "_include_batch",
        "_last_year",
        "_lo_us",
        "_spec",
        "_starts",
        "_week_us",
        "_zone",
    )

    def __init__(self, spec: CalendarSpec, *, include_batch: bool = False) -> None:
        if not spec.has_week_hours(include_batch=include_batch):
            raise ValueError("the calendar has no opening window on any weekday")
        self._spec = spec
        self._zone = spec.zone
        self._include_batch = include_batch
        self._batch_calendar: BusinessCalendar | None = None
        kept_open = {d.toordinal() for d in spec.holidays.open_dates}
        self._closed = {d.toordinal() for d in spec.holidays.dates} - kept_open  # day ordinals
        self._holiday_years: set[int] = set()  # whose public holidays are in _closed
        self._week_us = self._week_tables()
        self._starts: list[int] = []
        self._ends: list[int] = []
        # Open time before interval i and up to its end, counted from an arbitrary origin.
        self._cum: list[int] = []
        self._cum_end: list[int] = []
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
        """The earliest instant at which the business time since ``start`` reaches ``duration``.

        The deadline is in the calendar's zone. One in the hour repeated when clocks fall
        back never compares ``==`` to a datetime in another zone, not even the same instant
        (PEP 495): compare it in UTC, or with ``<`` and ``>``, whose ordering is right.
        """
        # to_us and duration_us inlined: a function call is a tenth of this method's cost.
        if start.tzinfo is None:
            to_us(start)  # raises NaiveDatetimeError
        dur = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
        if dur < 0:
            duration_us(duration)  # raises ValueError
        us = self.add_us(round(start.timestamp() * 1e6), dur)
        return datetime.fromtimestamp(us / 1e6, self._zone)

    def add_us(self, start_us: int, duration_us: int) -> int:
        """``add`` in epoch microseconds, for callers that do their arithmetic in integers."""
        s, dur = start_us, duration_us
        if not self._lo_us <= s < self._hi_us:
            self._cover(s)
        # The hot path, kept flat: it decides how many deadlines a second the engine sets.
        while True:
            starts, ends, cum_end = self._starts, self._ends, self._cum_end
            i = bisect_right(ends, s)  # the first interval ending after s
            if i < len(ends):
                begin = starts[i]
                if dur == 0:
                    return s if s > begin else begin
                target = self._cum[i] + (s - begin if s > begin else 0) + dur
                if target <= cum_end[-1]:
                    j = bisect_left(cum_end, target, i)
                    return ends[j] - cum_end[j] + target
            self._extend_forward()  # the deadline lies beyond the built years

    def add_each_us(self, start_us: int, durations: Sequence[int]) -> list[int]:
        """``add_us`` of each duration from one start: a clock's steps and deadline.

        The interval the start lies in is looked up once rather than once per duration:
        every event measures the running clocks of its ticket again, each with a handful
        of steps.
        """
        s = start_us
        if not self._lo_us <= s < self._hi_us:
            self._cover(s)
        starts, ends, cum, cum_end = self._starts, self._ends, self._cum, self._cum_end
        i = bisect_right(ends, s)  # the first interval ending after s
        if i == len(ends):
            return [self.add_us(s, dur) for dur in durations]
        begin = starts[i]
        done = cum[i] + (s - begin if s > begin else 0)  # open time up to s, from the first
        built = cum_end[-1]
        found = []
        for dur in durations:
            target = done + dur
            if dur == 0:
                found.append(s if s > begin else begin)
            elif target <= built:
                j = bisect_left(cum_end, target, i)
                found.append(ends[j] - cum_end[j] + target)
            else:  # beyond the built years: add_us builds them
                found.append(self.add_us(s, dur))
        return found

    def elapsed_us(self, start_us: int, end_us: int) -> int:
        """``elapsed`` in epoch microseconds."""
        if end_us <= start_us:
            return 0
        if not self._lo_us <= start_us < self._hi_us:
            self._cover(start_us)
        if not self._lo_us <= end_us < self._hi_us:
            self._cover(end_us)
        return self._open_before(end_us) - self._open_before(start_us)

    def instant(self, us: int) -> datetime:
        """The datetime, in the calendar's zone, of an instant in epoch microseconds."""
        return datetime.fromtimestamp(us / 1e6, self._zone)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero when ``end`` is not after ``start``."""
        return MICROSECOND * self.elapsed_us(to_us(start), to_us(end))

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
        self._cover(hi - 1)
        return MICROSECOND * (self._open_before(hi) - self._open_before(lo))

    # -- internals ----------------------------------------------------------------------

    def _open_before(self, x: int) -> int:
        """Open time from the sums' origin up to instant ``x`` (only differences matter)."""
        i = bisect_right(self._starts, x) - 1
        if i < 0:
            return self._cum[0] if self._cum else 0
        return self._cum[i] + min(x, self._ends[i]) - self._starts[i]

    def _cover(self, x: int) -> None:
        """Build the local years up to the one holding instant ``x``, keeping one built range."""
        year = self._local_year(x)
        if self._last_year < self._first_year:
            self._grow(year, year)
        else:
            self._grow(min(year, self._first_year), max(year, self._last_year))

    def _extend_forward(self) -> None:
        if self._last_year >= LAST_YEAR:
            raise ValueError(f"business time beyond the years {FIRST_YEAR}-{LAST_YEAR}")
        self._grow(self._first_year, self._last_year + 1)

    def _grow(self, first_year: int, last_year: int) -> None:
        """Widen the built range to the local years ``first_year`` to ``last_year``.

        Only the missing years are built, each side in one go, so a far instant costs the
        years in between once rather than a rebuild of everything per year.
        """
        if self._last_year < self._first_year:
            self._append(self._open_intervals(first_year, last_year))
        else:
            if first_year < self._first_year:
                self._prepend(self._open_intervals(first_year, self._first_year - 1))
            if last_year > self._last_year:
                self._append(self._open_intervals(self._last_year + 1, last_year))
        self._first_year, self._last_year = first_year, last_year
        self._lo_us = self._year_start_us(first_year)
        self._hi_us = self._year_start_us(last_year + 1)

    def _append(self, pairs: list[tuple[int, int]]) -> None:
        """Add merged intervals that begin where or after the built ones end."""
        starts, ends, cum, cum_end = self._starts, self._ends, self._cum, self._cum_end
        total = cum_end[-1] if cum_end else 0
        for a, b in pairs:
            if ends and a <= ends[-1]:  # open across the year boundary: one interval
                total += b - ends[-1]
                ends[-1], cum_end[-1] = b, total
            else:
                starts.append(a)
                ends.append(b)
                cum.append(total)
                total += b - a
                cum_end.append(total)

    def _prepend(self, pairs: list[tuple[int, int]]) -> None:
        """Add merged intervals that end where or before the built ones begin."""
        starts, ends, cum, cum_end = self._starts, self._ends, self._cum, self._cum_end
        # The sums count from an arbitrary origin, so earlier intervals count down from it
        # and the built ones keep their sums.
        total = cum[0] if cum else 0
        if pairs and starts and pairs[-1][1] >= starts[0]:  # open across the year boundary
            total -= starts[0] - pairs[-1][0]
            starts[0], cum[0] = pairs[-1][0], total
            pairs = pairs[:-1]
        new_cum, new_cum_end = [0] * len(pairs), [0] * len(pairs)
        for i in range(len(pairs) - 1, -1, -1):
            a, b = pairs[i]
            new_cum_end[i] = total
            total -= b - a
            new_cum[i] = total
        starts[:0] = [a for a, _ in pairs]
        ends[:0] = [b for _, b in pairs]
        cum[:0] = new_cum
        cum_end[:0] = new_cum_end

    def _local_year(self, x: int) -> int:
        """The calendar's local year holding instant ``x``; refused outside the handled years."""
        if not self._year_start_us(FIRST_YEAR) <= x < self._year_start_us(LAST_YEAR + 1):
            raise ValueError(
                f"instant {from_utc_us(x)} lies outside the years {FIRST_YEAR}-{LAST_YEAR} "
                f"that calendars handle (local years in {self._spec.timezone})"
            )
        year = from_utc_us(x).astimezone(self._zone).year
        # A year starts at its first local midnight; where clocks change over New Year the
        # instant's own wall time may say otherwise, and the built range must hold it.
        if x < self._year_start_us(year):
            return year - 1
        if x >= self._year_start_us(year + 1):
            return year + 1
        return year

    def _year_start_us(self, year: int) -> int:
        return to_us(datetime(year, 1, 1, tzinfo=self._zone))

    def _open_intervals(self, first_year: int, last_year: int) -> list[tuple[int, int]]:
        """Open intervals of the local years ``first_year`` to ``last_year``, clipped, merged."""
        closed = self._closed_days(first_year - 1, last_year)
        open_week, closed_week = self._week_us
        local: list[tuple[int, int]] = []
        # From the 31st of December before: its windows may cross midnight into the range.
        first_day, last_day = date(first_year - 1, 12, 31), date(last_year, 12, 31)
        for day in range(first_day.toordinal(), last_day.toordinal() + 1):
            midnight = (day - _EPOCH_DAY) * _DAY_US
            for a, b in (closed_week if day in closed else open_week)[day % 7]:
                local.append((midnight + a, midnight + b))
        lo, hi = self._year_start_us(first_year), self._year_start_us(last_year + 1)
        return _merge(wall_spans_to_utc(local, offset_periods(self._zone, lo, hi)))

    def _closed_days(self, first_year: int, last_year: int) -> set[int]:
        """Closed days as ordinals, with the public holidays of these years loaded."""
        spec = self._spec.holidays
        missing = [y for y in range(first_year, last_year + 1) if y not in self._holiday_years]
        if missing and spec.country is not None:
            # One call for all the years: the package's set-up costs more than a year's dates.
            found = holidays.country_holidays(
                spec.country,
                subdiv=spec.subdivision,
                categories=spec.categories,
                years=range(missing[0], missing[-1] + 1),
            )
            self._closed.update(d.toordinal() for d in found)
            self._closed.difference_update(d.toordinal() for d in spec.open_dates)
        self._holiday_years.update(missing)
        return self._closed

    def _week_tables(self) -> tuple[_WeekTable, _WeekTable]:
        """Windows of an open and of a closed day, in microseconds after local midnight.

        Indexed by a day's ordinal modulo 7, each sorted by start.
        """
        open_week: list[tuple[tuple[int, int], ...]] = [()] * 7
        closed_week: list[tuple[tuple[int, int], ...]] = [()] * 7
        spec = self._spec
        for weekday, name in enumerate(WEEKDAYS):
            batch = spec.batch_windows.get(name, ()) if self._include_batch else ()
            on_open = [*spec.week.get(name, ()), *batch]
            on_closed = batch if spec.batch_on_closed_days else ()
            index = (weekday + 1) % 7  # date.fromordinal(1) is a Monday
            open_week[index] = _windows_us(on_open)
            closed_week[index] = _windows_us(on_closed)
        return tuple(open_week), tuple(closed_week)


def from_utc_us(us: int) -> datetime:
    """The UTC datetime of epoch microseconds, exact at any size."""
    return EPOCH + timedelta(microseconds=us)


def _windows_us(windows: Iterable[Window]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((w.start_min * _MINUTE_US, w.end_min * _MINUTE_US) for w in windows))


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
