"""The SLA sheet's wording: durations, targets, prices, dates, windows and languages."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.business_time.windows import parse_window
from engine.config.durations import MAX_DURATION
from engine.sheet.words import (
    LANGUAGES,
    Language,
    choose_language,
    date_words,
    duration_words,
    percent_words,
    price_words,
    target_sentence,
    window_words,
    windows_words,
    words,
)
from engine.vocabulary import Metric

DASH = "\N{EN DASH}"


@pytest.mark.parametrize(
    ("duration", "da", "en"),
    [
        (timedelta(minutes=30), "30 minutter", "30 minutes"),
        (timedelta(hours=4), "4 timer", "4 hours"),
        (timedelta(hours=1), "1 time", "1 hour"),
        (timedelta(minutes=1), "1 minut", "1 minute"),
        (timedelta(hours=1, minutes=30), "1 time og 30 minutter", "1 hour and 30 minutes"),
        (timedelta(seconds=90), "1 minut og 30 sekunder", "1 minute and 30 seconds"),
        (
            timedelta(hours=2, minutes=1, seconds=5),
            "2 timer, 1 minut og 5 sekunder",
            "2 hours, 1 minute and 5 seconds",
        ),
        # Hours are never turned into days: a business day is 8 hours in one calendar
        # and 24 in another.
        (timedelta(hours=80), "80 timer", "80 hours"),
    ],
)
def test_durations_in_words(duration: timedelta, da: str, en: str) -> None:
    assert duration_words(duration, "da") == da
    assert duration_words(duration, "en") == en


_UNIT_SECONDS = {"time": 3600, "timer": 3600, "minut": 60, "minutter": 60}
_UNIT_SECONDS |= {"sekund": 1, "sekunder": 1, "hour": 3600, "hours": 3600}
_UNIT_SECONDS |= {"minute": 60, "minutes": 60, "second": 1, "seconds": 1}


@given(
    seconds=st.integers(min_value=1, max_value=int(MAX_DURATION.total_seconds())),
    language=st.sampled_from(LANGUAGES),
)
def test_a_duration_in_words_reads_back_as_the_same_duration(
    seconds: int, language: Language
) -> None:
    text = duration_words(timedelta(seconds=seconds), language)
    found = re.findall(r"(\d+) ([a-zæøå]+)", text)
    assert sum(int(n) * _UNIT_SECONDS[unit] for n, unit in found) == seconds
    # Singular for one, plural otherwise, in either language.
    for n, unit in found:
        assert (unit in ("time", "minut", "sekund", "hour", "minute", "second")) == (n == "1")


def test_the_issues_example_sentence() -> None:
    targets: dict[Metric, timedelta] = {
        "response": timedelta(minutes=30),
        "resolution": timedelta(hours=4),
    }
    assert (
        target_sentence(targets, "open", "da")
        == "Svar inden 30 minutter i åbningstiden, løsning inden 4 timer."
    )
    assert (
        target_sentence(targets, "open", "en")
        == "Response within 30 minutes in opening hours, resolution within 4 hours."
    )


def test_a_sentence_names_the_update_target_and_the_time_it_counts() -> None:
    targets: dict[Metric, timedelta] = {
        "update": timedelta(hours=1),
        "resolution": timedelta(hours=2),
        "response": timedelta(minutes=15),
    }
    assert target_sentence(targets, "open_batch", "da") == (
        "Svar inden 15 minutter i åbningstiden og batchvinduerne, løsning inden 2 timer, "
        "nyt til brugeren senest 1 time efter seneste opdatering."
    )
    assert target_sentence(targets, "always", "en") == (
        "Response within 15 minutes round the clock, resolution within 2 hours, "
        "news to the requester at most 1 hour after the last update."
    )
    # Without a response target the time basis goes with the first target there is.
    only: dict[Metric, timedelta] = {"resolution": timedelta(hours=8)}
    assert target_sentence(only, "open", "da") == "Løsning inden 8 timer i åbningstiden."
    assert target_sentence({}, "open", "da") == ""


@pytest.mark.parametrize(
    ("price", "da", "en"),
    [
        (Decimal(48000), "48.000 kr.", "DKK 48,000"),
        (Decimal(950), "950 kr.", "DKK 950"),
        (Decimal("950.5"), "950,50 kr.", "DKK 950.50"),
        (Decimal(1234567), "1.234.567 kr.", "DKK 1,234,567"),
        (Decimal(0), "0 kr.", "DKK 0"),
    ],
)
def test_prices_in_words(price: Decimal, da: str, en: str) -> None:
    assert price_words(price, "da") == da
    assert price_words(price, "en") == en


def test_percentages_dates_and_windows() -> None:
    assert (percent_words(0.75, "da"), percent_words(0.75, "en")) == ("75 %", "75%")
    assert (percent_words(1.5, "da"), percent_words(1 / 3, "da")) == ("150 %", "33,3 %")
    day = date(2026, 6, 5)
    assert date_words(day, "da") == "fredag 5. juni 2026"
    assert date_words(day, "en") == "Friday 5 June 2026"
    assert window_words(parse_window("08:00-16:00"), "da") == f"08:00{DASH}16:00"
    assert window_words(parse_window("00:00-24:00"), "en") == "all day"
    assert window_words(parse_window("22:00-06:00"), "da") == f"22:00{DASH}06:00 (til næste morgen)"
    assert (
        window_words(parse_window("22:00-06:00"), "en")
        == f"22:00{DASH}06:00 (into the next morning)"
    )
    two = (parse_window("07:00-11:00"), parse_window("12:00-15:30"))
    assert windows_words(two, "da") == f"07:00{DASH}11:00, 12:00{DASH}15:30"
    assert (windows_words((), "da"), windows_words((), "en")) == ("lukket", "closed")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "da"),
        ("", "da"),
        ("en", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("da-DK, en;q=0.8", "da"),
        ("de-DE, en;q=0.7, da;q=0.5", "en"),
        ("da;q=0.4, en;q=0.6", "en"),
        ("en;q=0, da;q=0.1", "da"),
        ("en;q=0", "da"),
        ("de, fr", "da"),
        ("*", "da"),
        ("en;q=nonsense, da;q=0.2", "da"),
        ("EN-us", "en"),
    ],
)
def test_accept_language_chooses_the_sheets_language(header: str | None, language: str) -> None:
    assert choose_language(header) == language


def _shape(value: Any) -> Any:
    """A word file's keys and the shape of its values, without the words themselves."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return sorted(re.findall(r"\{(\w+)\}", value))


def test_both_languages_have_the_same_words_with_the_same_blanks() -> None:
    # Same wording rules: every text exists in both, and fills in the same values.
    assert _shape(words("da")) == _shape(words("en"))
