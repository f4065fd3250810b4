"""The validated description of a business calendar, as written in ``config/``."""

from __future__ import annotations

from datetime import date
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.sla_clock.windows import Weekday, WindowField

DEFAULT_TIMEZONE = "Europe/Copenhagen"
DEFAULT_COUNTRY = "DK"

WeekWindows = dict[Weekday, tuple[WindowField, ...]]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    dates: tuple[date, ...] = Field(default=(), description="extra closure days")
    open_dates: tuple[date, ...] = Field(
        default=(), description="days kept open although they are holidays or closure days"
    )

    @model_validator(mode="after")
    def _known_country_and_categories(self) -> HolidaySpec:
        if self.country is None:
            return self
        supported = _supported_countries()
        if self.country not in supported:
            raise ValueError(f"unknown holiday country {self.country!r} (ISO 3166 alpha-2)")
        if self.subdivision is not None and self.subdivision not in supported[self.country]:
            raise ValueError(f"unknown subdivision {self.subdivision!r} of {self.country}")
        known = holidays.country_holidays(self.country).supported_categories
        unknown = sorted(set(self.categories) - set(known))
        if unknown:
            raise ValueError(
                f"unknown holiday categories {unknown} for {self.country} "
                f"(known: {', '.join(sorted(known))})"
            )
        return self


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
