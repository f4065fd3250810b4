"""Durations written for people."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("320h", timedelta(hours=320)),
        ("90s", timedelta(seconds=90)),
        ("1h 15m", timedelta(hours=1, minutes=15)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("4", "not a duration"),
        ("4 hours", "not a duration"),
        ("30m4h", "not a duration"),
        ("0m", "longer than zero"),
        ("2d", "business days differ per calendar"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30m", "4h", "1h30m", "2h0m5s", "45s"])
def test_format_reads_back(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_format() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(hours=80)) == "80h"
