"""Weekly opening windows written as local wall-clock spans, e.g. ``"08:00-16:00"``."""

from __future__ import annotations

import re
from typing import Annotated, Literal, NamedTuple

from pydantic import PlainSerializer, PlainValidator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_MINUTES_PER_DAY = 24 * 60
_WINDOW_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class Window(NamedTuple):
    """A span of local wall time on one day, in minutes after that day's midnight.

    ``end_min`` exceeds 1440 when the window crosses midnight: it still belongs to the
    day it starts on.
    """

    start_min: int
    end_min: int

    def __str__(self) -> str:
        end = self.end_min - _MINUTES_PER_DAY if self.end_min > _MINUTES_PER_DAY else self.end_min
        return f"{_hhmm(self.start_min)}-{_hhmm(end)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str) -> Window:
    """Parse ``"HH:MM-HH:MM"``; an end at or before the start crosses midnight."""
    match = _WINDOW_RE.match(text.strip())
    if match is None:
        raise ValueError(f"window {text!r} is not written 'HH:MM-HH:MM'")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59:
        raise ValueError(f"window {text!r} starts at an impossible time")
    if eh > 24 or em > 59 or (eh == 24 and em != 0):
        raise ValueError(f"window {text!r} ends at an impossible time (24:00 is the latest)")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise ValueError(f"window {text!r} is empty; write '00:00-24:00' for a whole day")
    if end < start:
        end += _MINUTES_PER_DAY
    return Window(start, end)


def _validate_window(value: object) -> Window:
    if isinstance(value, Window):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a window is a string 'HH:MM-HH:MM', not {type(value).__name__}")
    return parse_window(value)


WindowField = Annotated[Window, PlainValidator(_validate_window), PlainSerializer(str)]
"""A pydantic field type that reads and writes a window as ``"HH:MM-HH:MM"``."""
