"""The monthly report's wording: its own words over the SLA sheet's, in Danish or English.

The approach of ``engine.sheet.words``: the words live in ``templates/words.<lang>.json``
(the sheet's months, units, prices and percentages under them), so a Danish and an
English report say the same in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any

from engine.monthly.period import Month
from engine.sheet import words as sheet
from engine.sheet.words import Language


@cache
def words(language: Language) -> Mapping[str, Any]:
    """The sheet's words with the report's over them, read once."""
    folder = resources.files("engine.monthly").joinpath("templates")
    own = json.loads(folder.joinpath(f"words.{language}.json").read_text(encoding="utf-8"))
    return {**sheet.words(language), **own}


def month_words(month: Month, language: Language) -> str:
    """``"november 2026"`` / ``"November 2026"``."""
    return f"{words(language)['months'][month.month - 1]} {month.year}"


def duration_words(seconds: float | None, language: Language) -> str:
    """Business time used, to the minute, in words; a dash for none."""
    if seconds is None:
        text: str = words(language)["no_value"]
        return text
    return sheet.duration_words(timedelta(minutes=round(seconds / 60)), language)


def percent_words(pct: float | None, language: Language) -> str:
    """A percentage (``93.5``) in words; a dash for none."""
    if pct is None:
        text: str = words(language)["no_value"]
        return text
    return sheet.percent_words(pct / 100, language)


def points_words(points: float | None, language: Language) -> str:
    """A change in percentage points, signed: ``"+2,5 %-point"`` / ``"-3 pp"``."""
    w = words(language)
    if points is None:
        text: str = w["no_value"]
        return text
    number = f"{round(points, 1):+g}".replace(".", w["decimal_point"])
    text = w["points"].format(n=number)
    return text
