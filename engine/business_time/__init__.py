"""Pure business-time calendars: weekly windows, holidays, batch windows, DST; no I/O.

Below both the configuration (which describes calendars and checks them) and the
SLA-clock core (which runs clocks on them), so that neither has to import the other's
way round.
"""

from engine.business_time.calendar import BusinessCalendar, NaiveDatetimeError
from engine.business_time.spec import CalendarSpec, HolidaySpec
from engine.business_time.windows import Window, parse_window

__all__ = [
    "BusinessCalendar",
    "CalendarSpec",
    "HolidaySpec",
    "NaiveDatetimeError",
    "Window",
    "parse_window",
]
