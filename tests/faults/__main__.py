"""The fault and load scenarios at full size, and their table: ``make test-faults``.

Run: ``.venv/bin/python -m tests.faults [--events N] [--backlog N] [--batch-size N]
[--bench-intake EVENTS_S] [--only NAME]``. Prints one Markdown row per scenario
(docs/RELIABILITY.md holds the last full run's) and exits 1 when any scenario lost,
doubled or got wrong anything, or the backlog sent one recipient more than one message
in a digest window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from tests.faults.harness import table
from tests.faults.scenarios import SCENARIOS, run_scenario


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events per scenario")
    parser.add_argument(
        "--backlog",
        type=int,
        default=1_000_000,
        help="events waiting before the engine starts, in the backlog scenario",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=500,
        help="the engines' batch size: smaller puts more batches between faults (not in "
        "the backlog scenario, which drains with the engine's defaults, as bench-intake does)",
    )
    parser.add_argument(
        "--bench-intake",
        type=float,
        default=float(os.environ.get("SLA_ENGINE_BENCH_INTAKE_EVENTS_S") or 0) or None,
        metavar="EVENTS_S",
        help="events/s `make bench-intake` drained right before on this machine, which the "
        "backlog's drain is reported against (env SLA_ENGINE_BENCH_INTAKE_EVENTS_S)",
    )
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    rows = []
    began = time.monotonic()
    for name in args.only or SCENARIOS:
        size = args.backlog if name == "backlog" else args.events
        started = time.monotonic()
        row = await run_scenario(
            name, size, batch_size=args.batch_size, bench_intake_events_s=args.bench_intake
        )
        print(f"{name}: {'ok' if row.ok else 'FAILED'} in {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        rows.append(row)
    print(table(rows))
    print(f"\n{len(rows)} scenarios in {time.monotonic() - began:.0f} s", file=sys.stderr)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
