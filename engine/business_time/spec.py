"""The validated description of a business calendar, as written in ``config/``."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine.business_time.windows import Weekday, WindowField

DEFAULT_TIMEZONE = "Europe/Copenhagen"
DEFAULT_COUNTRY = "DK"

# The local years a calendar handles instants in (calendar.py imports them from here).
FIRST_YEAR, LAST_YEAR = 1900, 2199

WeekWindows = dict[Weekday, tuple[WindowField, ...]]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _within_supported_years(day: date) -> date:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        years = f"{FIRST_YEAR}-{LAST_YEAR}"
        raise ValueError(f"{day} lies outside the years {years} a calendar handles")
    return day


CalendarDate = Annotated[date, AfterValidator(_within_supported_years)]
"""A day a calendar can close or keep open."""


@cache
def _supported_countries() -> dict[str, list[str]]:
    return holidays.list_supported_countries()


class HolidaySpec(_Frozen):
    """Public holidays by country, plus extra closure days and days kept open."""

    country: str | None = Field(
        default=DEFAULT_COUNTRY, description="ISO 3166 code for the `holidays` package; null: none"
    )
    subdivision: str | None = None
    categories: tuple[str, ...] = Field(
        default=("public",),
        description="holiday categories observed; Denmark files 24 and 31 December, "
        "1 May and 5 June under 'optional'",
    )
    dates: tuple[CalendarDate, ...] = Field(default=(), description="extra closure days")
    open_dates: tuple[CalendarDate, ...] = Field(
        default=(), description="days kept open although they are holidays or closure days"
    )

    # Field validators rather than one model validator, so that an error names the key.
    # Fields are validated in order: ``info.data`` lacks the country when it was refused.
    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in _supported_countries():
            raise ValueError(f"unknown holiday country {value!r} (ISO 3166 alpha-2)")
        return value

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "country" not in info.data:
            return value
        country = info.data["country"]
        if country is None:
            raise ValueError(f"subdivision {value!r} needs a country")
        if value not in _supported_countries()[country]:
            raise ValueError(f"unknown subdivision {value!r} of {country}")
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        country = info.data.get("country")
        if country is None:
            return value
        known = holidays.country_holidays(country).supported_categories
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(
                f"unknown holiday categories {unknown} for {country} "
                f"(known: {', '.join(sorted(known))})"
            )
        return value


class CalendarSpec(_Frozen):
    """Weekly windows in a time zone, minus closure days, plus optional batch windows."""

    timezone: str = DEFAULT_TIMEZONE
    week: WeekWindows = Field(description="windows per weekday; weekdays left out are closed")
    holidays: HolidaySpec = HolidaySpec()
    batch_windows: WeekWindows = Field(
        default_factory=dict,
        description="windows in which batch-covered services are also covered",
    )
    batch_on_closed_days: bool = Field(
        default=True,
        description="batch runs go on through holidays and closure days, and so does their cover",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    def has_week_hours(self, *, include_batch: bool = False) -> bool:
        """Whether any weekday has an opening window."""
        days = [*self.week.values(), *(self.batch_windows.values() if include_batch else ())]
        return any(days)
