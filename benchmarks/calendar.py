"""Time BusinessCalendar.add and .elapsed on the example office calendar.

Run: ``make bench`` (or ``.venv/bin/python -m benchmarks.calendar [--calls N]``; as a module,
so that this file does not shadow the standard library's ``calendar``).
1,000,000 calls each by default, with random starts over two years and random
durations up to 20 business days; prints calls per second on one core, the best
and the median of a few runs. Then the milliseconds that building years costs: a new
calendar's first call, and an instant far from the built years.
"""

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from engine.business_time import BusinessCalendar
from engine.config import load_config

REPO = Path(__file__).resolve().parent.parent
BUSINESS_DAY = timedelta(hours=8)


def _timed(label: str, calls: int, repeat: int, fn: Callable[[], None]) -> None:
    """Print the best and the median rate of ``repeat`` runs.

    This machine is shared and its speed wanders by a third from run to run, so the
    best run is the figure that says what the code costs; the median shows the spread.
    """
    rates = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        rates.append(calls / (time.perf_counter() - began))
    print(f"{label:<47} {calls:>9,} {max(rates):>10,.0f} {statistics.median(rates):>10,.0f}")


def _timed_once(
    label: str,
    repeat: int,
    prepare: Callable[[], BusinessCalendar],
    fn: Callable[[BusinessCalendar], object],
) -> None:
    """Print the best and the median time of ``fn`` on ``repeat`` freshly prepared calendars."""
    times_ms = []
    for _ in range(repeat):
        calendar = prepare()
        began = time.perf_counter()
        fn(calendar)
        times_ms.append((time.perf_counter() - began) * 1e3)
    print(f"{label:<47} {'':>9} {min(times_ms):>10,.1f} {statistics.median(times_ms):>10,.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each benchmark")
    parser.add_argument("--seed", type=int, default=20261127)
    args = parser.parse_args()
    calls: int = args.calls

    config = load_config(REPO / "config")
    spec = config.calendars["office"]
    calendar = BusinessCalendar.from_config(spec)
    zone = spec.zone
    rng = random.Random(args.seed)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    span_us = int(timedelta(days=2 * 365).total_seconds() * 1e6)
    max_us = int((20 * BUSINESS_DAY).total_seconds() * 1e6)

    # Events carry RFC 3339 instants with a fixed offset; the calendar answers in its zone.
    offsets = [timezone(timedelta(hours=1)), timezone(timedelta(hours=2)), UTC]
    starts = [
        (first + timedelta(microseconds=rng.randrange(span_us))).astimezone(rng.choice(offsets))
        for _ in range(calls)
    ]
    durations = [timedelta(microseconds=rng.randrange(max_us)) for _ in range(calls)]
    ends = [s + timedelta(microseconds=rng.randrange(span_us // 24)) for s in starts]
    zoned = [s.astimezone(zone) for s in starts]

    # Build the two years (and a little beyond) once, as a running engine would have.
    calendar.add(first, timedelta(0))
    calendar.add(first + timedelta(days=2 * 365), 40 * BUSINESS_DAY)

    add, elapsed, is_open = calendar.add, calendar.elapsed, calendar.is_open

    def add_fixed() -> None:
        for s, d in zip(starts, durations, strict=True):
            add(s, d)

    def add_zoned() -> None:
        for s, d in zip(zoned, durations, strict=True):
            add(s, d)

    def elapsed_fixed() -> None:
        for s, e in zip(starts, ends, strict=True):
            elapsed(s, e)

    def open_checks() -> None:
        for s in starts:
            is_open(s)

    repeat: int = args.repeat
    print(
        f"office calendar ({spec.timezone}, DK holidays), Python {sys.version.split()[0]}, "
        f"best and median of {repeat} runs"
    )
    print(f"{'':<47} {'calls':>9} {'best/s':>10} {'median/s':>10}")
    _timed("add(start, duration), fixed-offset starts", calls, repeat, add_fixed)
    _timed("add(start, duration), Europe/Copenhagen starts", calls, repeat, add_zoned)
    _timed("elapsed(start, end), fixed-offset instants", calls, repeat, elapsed_fixed)
    _timed("is_open(at)", calls, repeat, open_checks)

    def new_calendar() -> BusinessCalendar:
        return BusinessCalendar.from_config(spec)

    def calendar_for_2026() -> BusinessCalendar:
        built = BusinessCalendar.from_config(spec)
        built.is_open(first)
        return built

    def cover_far_years(calendar: BusinessCalendar) -> None:
        # As one event with a mistyped year would: the engine's loop waits while years build.
        calendar.is_open(datetime(1901, 6, 1, tzinfo=zone))
        calendar.is_open(datetime(2198, 6, 1, tzinfo=zone))

    print(f"{'':<47} {'':>9} {'best':>10} {'median':>10}")
    _timed_once(
        "first call on a new calendar (builds a year)",
        repeat,
        new_calendar,
        lambda calendar: calendar.add(first, 320 * timedelta(hours=1)),
    )
    _timed_once("cover 1901..2198 from a 2026 calendar", repeat, calendar_for_2026, cover_far_years)


if __name__ == "__main__":
    main()
