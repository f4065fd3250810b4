"""Pure SLA-clock core: business-time calendars (and, with the intake issue, ticket clocks).

No I/O and no wall clock here: every instant is passed in.
"""

from engine.sla_clock.calendar import BusinessCalendar, NaiveDatetimeError
from engine.sla_clock.spec import CalendarSpec, HolidaySpec
from engine.sla_clock.windows import Window, parse_window

__all__ = [
    "BusinessCalendar",
    "CalendarSpec",
    "HolidaySpec",
    "NaiveDatetimeError",
    "Window",
    "parse_window",
]
