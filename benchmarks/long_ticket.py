"""The cost of a ticket's n-th event, as its history grows: n = 100, 1,000 and 10,000.

Run: ``make bench-long-ticket`` (or ``.venv/bin/python -m benchmarks.long_ticket
[--full] [--sizes 100,1000,10000]``). Pure core, no services.

Four kinds of history, one event a minute after a ``ticket.created`` (BUF, ESDH, P2,
assigned to PC og Software): public comments, status flips (in_progress /
pending_customer), priority flips (P2 / P3), and assignment flips between two provider
functions. For each, the state the recorder keeps after n - 1 events is made (untimed),
then the n-th event and up to n/10 (at most 50) after it are appended one at a time,
timed, the way the recorder appends an event of a batch: the history kept in memory
plus the new event, the ticket's clocks measured at the event's instant with the
snapshots the ticket already has, each clock's next due instant worked out and the rows
of the ticket and of each clock made (``ticket_row``, ``clock_row`` of the PostgreSQL
recording adapter), and what was measured kept for the next event. The
default measures through ``ClockMeter.measure_more`` from the reading the previous event
left (the recorder's path); ``--full`` through ``ClockMeter.measure`` of every event,
which the code before ``measure_more`` took, so the same file run against an older
checkout gives its figures. The garbage collector is tuned as the daemon's.

Prints, per kind, the best and the median milliseconds of the n-th event at each n, and
the ratio of the best at the largest n to the best at the smallest (the goal: within
3x). The machine is shared, so the best of the repeats is the figure that says what
the code costs.
"""

import argparse
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from engine.cli.shared import tune_gc
from engine.config import load_config
from engine.escalation import next_due
from engine.events import TicketEvent, event_adapter
from engine.sla_clock.meter import ClockMeter
from engine.store.postgres.recording import clock_row, ticket_row
from engine.store.recording import MeasuredClock, MeasuredTicket

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 23, 9, tzinfo=ZoneInfo("Europe/Copenhagen"))
# The fields of the events that make up each history, taken in turn.
KINDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "public comments": [("ticket.commented", {"visibility": "public", "body": "Vi kigger"})],
    "status flips": [
        ("ticket.status_changed", {"status": "pending_customer"}),
        ("ticket.status_changed", {"status": "in_progress"}),
    ],
    "priority flips": [
        ("ticket.priority_changed", {"priority": "P3"}),
        ("ticket.priority_changed", {"priority": "P2"}),
    ],
    "assignment flips": [
        ("ticket.assigned", {"function": "server-network"}),
        ("ticket.assigned", {"function": "pc-software"}),
    ],
}


def history(kind: str, n: int) -> list[TicketEvent]:
    """A ticket's first ``n`` events of one kind, one a minute, in order."""

    def event(seq: int, type_: str, **fields: Any) -> TicketEvent:
        return event_adapter.validate_python(
            {
                "schema_version": 1,
                "event_id": str(UUID(int=seq + 1)),
                "type": type_,
                "ticket_id": "LONG-1",
                "occurred_at": START + timedelta(minutes=seq),
                "channel": "web",
                **fields,
            }
        )

    events = [
        event(
            0, "ticket.created", department="buf", service="esdh", priority="P2", subject="Lang sag"
        ),
        event(1, "ticket.assigned", function="pc-software"),
    ]
    turns = KINDS[kind]
    for seq in range(2, n):
        type_, fields = turns[seq % len(turns)]
        events.append(event(seq, type_, **fields))
    return events


def timed_ms(
    meter: ClockMeter, events: list[TicketEvent], n: int, full: bool, budget_s: float
) -> list[float]:
    """Milliseconds of appending the n-th event of ``events`` and a few after it, each to
    those before it as the recorder appends it, for about ``budget_s`` (at least 5)."""
    times: list[float] = []
    began = time.perf_counter()
    # Events n to n + n/10 at most: each is about the n-th.
    calls = max(1, min(n // 10, 50))
    while len(times) < 5 or time.perf_counter() - began < budget_s:
        # The state the recorder keeps after the first n - 1 events: made untimed.
        kept = events[: n - 1]
        first = meter.measure(kept, {}, kept[-1].occurred_at)
        assert first is not None
        attached = dict(first.agreements)
        reading = first.reading if not full else None
        for event in events[n - 1 : n - 1 + calls]:
            start = time.perf_counter()
            new = [event]
            history = kept + new
            if full:
                measured = meter.measure(history, attached, event.occurred_at)
            else:
                measured = meter.measure_more(reading, history, new, attached, event.occurred_at)
            assert measured is not None
            for clock in measured.clocks:
                due = next_due(
                    clock.agreement.fractions, clock.due_us[: len(clock.agreement.fractions)], {}
                )
                clock_row(MeasuredClock("LONG-1", clock, due))
            added = {k: a for k, a in measured.agreements.items() if k not in attached}
            ticket_row(MeasuredTicket("LONG-1", measured, added, len(history)))
            times.append((time.perf_counter() - start) * 1e3)
            # What the recorder keeps once the batch is committed.
            kept = history
            reading = None if full else measured.reading
            if len(times) >= 5 and time.perf_counter() - began >= budget_s:
                break
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="measure every event again (ClockMeter.measure), the old path",
    )
    parser.add_argument(
        "--sizes", default="100,1000,10000", help="the event numbers n to time, comma-separated"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=1.0,
        help="seconds of repeats for each figure (at least 5 calls)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    meter = ClockMeter(load_config(REPO / "config"))
    path = "ClockMeter.measure of every event" if args.full else "ClockMeter.measure_more"
    print(f"the n-th event of a ticket, appended through {path}: best / median ms")
    print(f"{'history':<18}" + "".join(f"{f'n = {n:,}':>22}" for n in sizes) + f"{'ratio':>8}")
    tune_gc()
    for kind in KINDS:
        events = history(kind, max(sizes) + 50)
        bests = []
        cells = []
        for n in sizes:
            times = timed_ms(meter, events, n, args.full, args.budget_s)
            bests.append(min(times))
            cells.append(f"{min(times):>10.3f} / {statistics.median(times):>8.3f}")
        print(
            f"{kind:<18}"
            + "".join(f"{cell:>22}" for cell in cells)
            + f"{bests[-1] / bests[0]:>7.1f}x"
        )


if __name__ == "__main__":
    main()
