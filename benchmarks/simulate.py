"""Simulation throughput: a synthetic year of ticket events through the in-memory simulator.

Run: ``.venv/bin/python -m benchmarks.simulate [--tickets N]``.

1. Generates a year with ``examples.make_year.year_events`` (default 250,000 tickets, about
   two million events, in arrival order with a few late and resent ones), each encoded
   as the JSON line a history file holds.
2. Parses the lines into ``TicketEvent``s with ``parse_event``, timed alone.
3. Runs ``simulate`` over them up to the end of the year, timed alone: events per second,
   against the goal of 100,000 events a second.

``--tune-gc`` collects cyclic garbage as ``sla-engine simulate`` does (``tune_gc`` in
``engine.cli.shared``: freeze, then a young threshold of 200,000): millions of live
parsed events make the default collector walk them again and again, which shows in both
rates.

Prints the totals (events applied, duplicates, refused, tickets, steps fired and
breaches, clock outcomes), the three rates, the wall time and the peak RSS of the
process, which holds the year's lines and parsed events at once.
"""

import argparse
import json
import os
import resource
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from engine.cli.shared import tune_gc
from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.simulate.core import Simulation, simulate
from engine.sla_clock.meter import ClockMeter
from examples.make_day import TZ
from examples.make_year import SEED, TICKETS, YEAR, year_events

REPO = Path(__file__).resolve().parent.parent
GOAL_EVENTS_S = 100_000


def generate(year: int, tickets: int, seed: int) -> list[bytes]:
    """The year as JSON lines, in arrival order."""
    config = load_config(REPO / "config")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return [dumps(event).encode() for event in year_events(year, tickets, seed, config)]


def print_totals(run: Simulation, offered: int) -> None:
    """What the simulation did with the year."""
    outcomes = Counter(outcome.outcome for outcome in run.outcomes)
    print(
        f"events offered {offered:,}: applied {run.events:,}, duplicates {run.duplicates:,}, "
        f"refused {len(run.refused):,}"
    )
    print(f"tickets {run.tickets:,} ({run.waiting:,} never created)")
    print(f"steps fired {len(run.steps):,}, breaches (step 1.0) {run.breaches:,}")
    by_outcome = ", ".join(f"{name} {outcomes[name]:,}" for name in ("met", "breached", "open"))
    print(f"clocks {len(run.outcomes):,}: {by_outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=TICKETS)
    parser.add_argument("--year", type=int, default=YEAR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--tune-gc", action="store_true", help="collect garbage as rarely as the daemon does"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="simulating processes (default: one a core)",
    )
    args = parser.parse_args()
    if args.tune_gc:
        tune_gc()
    began = time.perf_counter()

    lines = generate(args.year, args.tickets, args.seed)
    generated_s = time.perf_counter() - began
    print(
        f"generated {len(lines):,} events of {args.tickets:,} tickets "
        f"({args.year}, seed {args.seed}) in {generated_s:.1f} s: "
        f"{len(lines) / generated_s:,.0f} events/s"
    )

    start = time.perf_counter()
    events: list[TicketEvent] = [parse_event(line) for line in lines]
    parse_s = time.perf_counter() - start
    del lines
    print(f"parse_event: {len(events) / parse_s:>10,.0f} events/s ({parse_s:.1f} s)")

    meter = ClockMeter(load_config(REPO / "config"))
    start = time.perf_counter()
    run = simulate(meter, events, datetime(args.year + 1, 1, 1, tzinfo=TZ), args.workers)
    simulate_s = time.perf_counter() - start
    rate = len(events) / simulate_s
    verdict = "met" if rate >= GOAL_EVENTS_S else "NOT met"
    print(
        f"simulate:    {rate:>10,.0f} events/s ({simulate_s:.1f} s, {args.workers} processes; "
        f"goal {GOAL_EVENTS_S:,} events/s: {verdict})"
    )

    print_totals(run, len(events))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    collector = "tuned as the daemon's" if args.tune_gc else "default"
    print(
        f"wall time {time.perf_counter() - began:.1f} s, peak RSS {peak_mib:,.0f} MiB, "
        f"Python {sys.version.split()[0]}, garbage collector {collector}"
    )


if __name__ == "__main__":
    main()
