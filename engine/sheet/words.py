"""The sheet's wording: durations, targets, prices, dates and windows in plain words.

One rule for both languages: the words themselves come from ``templates/words.<lang>.json``,
so a Danish and an English sheet say the same thing in the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

from engine.business_time.windows import WEEKDAYS, Weekday, Window
from engine.vocabulary import Metric

Language = Literal["da", "en"]
LANGUAGES: tuple[Language, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "da"

Basis = Literal["open", "open_batch", "always"]
"""What a target's business time counts: opening hours, those and batch windows, or all day."""

_METRIC_ORDER: tuple[Metric, ...] = ("response", "resolution", "update")
_MINUTES_PER_DAY = 24 * 60


@cache
def words(language: Language) -> Mapping[str, Any]:
    """The word file of ``language``, read once."""
    folder = resources.files("engine.sheet").joinpath("templates")
    text = folder.joinpath(f"words.{language}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _count(n: int, unit: str, language: Language) -> str:
    one, many = words(language)["units"][unit]
    return f"{n} {one if n == 1 else many}"


def _join(parts: Sequence[str], language: Language) -> str:
    """``a``, ``a og b``, ``a, b og c``: the way both languages list things."""
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {words(language)['and']} {parts[-1]}"


def duration_words(duration: timedelta, language: Language) -> str:
    """``"1 time og 30 minutter"`` / ``"1 hour and 30 minutes"``; hours never become days.

    Business days differ per calendar (8 hours in an office, 24 in care), so a target
    of 24 hours stays "24 timer" rather than turning into days the reader would misjudge.
    """
    total = int(duration.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        _count(n, unit, language)
        for n, unit in ((hours, "hour"), (minutes, "minute"), (seconds, "second"))
        if n
    ]
    return _join(parts, language) if parts else _count(0, "minute", language)


def target_sentence(targets: Mapping[Metric, timedelta], basis: Basis, language: Language) -> str:
    """``"Svar inden 30 minutter i åbningstiden, løsning inden 4 timer."``"""
    w = words(language)
    parts = [
        w["target_phrases"][metric].format(d=duration_words(targets[metric], language))
        for metric in _METRIC_ORDER
        if metric in targets
    ]
    if not parts:
        return ""
    parts[0] = f"{parts[0]} {w['basis'][basis]}"
    sentence = ", ".join(parts)
    return f"{sentence[0].upper()}{sentence[1:]}."


def _group(number: str, separator: str) -> str:
    digits = number.lstrip("-")
    groups: list[str] = []
    while len(digits) > 3:
        digits, tail = digits[:-3], digits[-3:]
        groups.insert(0, tail)
    return ("-" if number.startswith("-") else "") + separator.join([digits, *groups])


def price_words(price: Decimal, language: Language) -> str:
    """``"48.000 kr."`` / ``"DKK 48,000"``; øre shown only when there are any."""
    w = words(language)
    whole, _, fraction = f"{price:.2f}".partition(".")
    number = _group(whole, w["thousands"])
    if fraction != "00":
        number += w["decimal_point"] + fraction
    text: str = w["price_format"].format(n=number)
    return text


def percent_words(fraction: float, language: Language) -> str:
    """``0.75`` as ``"75 %"`` / ``"75%"``; one decimal where the fraction needs it."""
    w = words(language)
    number = f"{round(fraction * 100, 1):g}".replace(".", w["decimal_point"])
    text: str = w["percent"].format(n=number)
    return text


def date_words(day: date, language: Language) -> str:
    """``"torsdag 1. januar 2026"`` / ``"Thursday 1 January 2026"``."""
    w = words(language)
    weekday = w["weekdays"][_weekday(day)]
    text: str = w["date"].format(
        weekday=weekday, day=day.day, month=w["months"][day.month - 1], year=day.year
    )
    return text


def _weekday(day: date) -> Weekday:
    return WEEKDAYS[day.weekday()]


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def window_words(window: Window, language: Language) -> str:
    """A window in words: its hours, the whole day, or a night window into the next morning."""
    w = words(language)
    if window.start_min == 0 and window.end_min == _MINUTES_PER_DAY:
        text: str = w["window_all_day"]
        return text
    if window.end_min > _MINUTES_PER_DAY:
        end = _hhmm(window.end_min - _MINUTES_PER_DAY)
        text = w["window_overnight"].format(start=_hhmm(window.start_min), end=end)
        return text
    text = w["window"].format(start=_hhmm(window.start_min), end=_hhmm(window.end_min))
    return text


def windows_words(windows: Sequence[Window], language: Language) -> str:
    """A day's windows in words; ``"lukket"`` / ``"closed"`` when it has none."""
    if not windows:
        text: str = words(language)["closed"]
        return text
    return ", ".join(window_words(window, language) for window in windows)


def list_words(items: Sequence[str], language: Language) -> str:
    """Items joined the way the language lists them."""
    return _join(items, language)


def choose_language(accept_language: str | None) -> Language:
    """The sheet's language a browser's ``Accept-Language`` prefers; Danish when neither is.

    Each range is a language tag with an optional ``q`` weight (RFC 9110); ``en-GB`` asks
    for English, ``*`` for anything (Danish, the default), ``q=0`` for not this one.
    """
    best: tuple[float, int, Language] | None = None
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # an unreadable weight counts as no wish
        primary = tag.strip().lower().split("-")[0]
        language = DEFAULT_LANGUAGE if primary == "*" else primary
        if weight <= 0 or language not in LANGUAGES:
            continue
        # The highest weight wins; among equals, the range written first.
        if best is None or (weight, -position) > (best[0], -best[1]):
            best = (weight, position, language)
    return best[2] if best is not None else DEFAULT_LANGUAGE
