"""Durations written for people: ``"30m"``, ``"4h"``, ``"1h30m"``, ``"90s"``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

MAX_DURATION = timedelta(hours=10_000)
"""The longest target: about five years of office hours, far beyond any agreement."""


def parse_duration(text: str) -> timedelta:
    """Parse a positive business duration such as ``"1h30m"``."""
    compact = text.strip().replace(" ", "")
    match = _DURATION_RE.match(compact)
    if not compact or match is None:
        hint = (
            "; business days differ per calendar, so write hours ('16h')"
            if re.search(r"\d+\s*[dw]", compact)
            else ""
        )
        raise ValueError(f"{text!r} is not a duration like '30m', '4h' or '1h30m'{hint}")
    digits = [(group or "").lstrip("0") for group in match.groups()]
    # Count digits before int(), which refuses 4,300 of them; timedelta overflows far sooner.
    too_long = any(len(d) > 12 for d in digits)
    hours, minutes, seconds = (0, 0, 0) if too_long else (int(d or 0) for d in digits)
    if too_long or hours * 3600 + minutes * 60 + seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"duration {text!r} is longer than {format_duration(MAX_DURATION)}, "
            "the longest target allowed"
        )
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError(f"duration {text!r} must be longer than zero")
    return duration


def format_duration(duration: timedelta) -> str:
    """Write a duration the way ``parse_duration`` reads it."""
    total = int(duration.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{seconds}s" if seconds or not any(parts) else "")
    return "".join(parts)


def _validate_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration is a string such as '4h' or '30m', not {value!r}")
    return parse_duration(value)


Duration = Annotated[
    timedelta, PlainValidator(_validate_duration), PlainSerializer(format_duration)
]
"""A pydantic field type for a business duration written like ``"1h30m"``."""
