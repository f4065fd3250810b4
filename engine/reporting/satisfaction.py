"""Requesters' satisfaction in ``sla-engine report``, beside compliance.

``satisfaction_of_period`` reads the counts from the store, and ``render_report`` prints
them with the functions here, one per format. The counting and rounding are
``engine.satisfaction``'s, as the simulator's, so a report and a simulation of the same
history show the same figures. Tickets are chosen as compliance chooses them: created in
the period, each with the rating that counts for it now (its latest), under its
department and service as they stand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from engine.reporting.output import write
from engine.reporting.window import check_window
from engine.satisfaction import SATISFACTION_COLUMNS, RatingCounts, satisfaction_records
from engine.store.reads import SatisfactionReads

TITLE = "Satisfaction per department and service: rated tickets, mean score, share of 4-5"


async def satisfaction_of_period(
    reads: SatisfactionReads, start: datetime, end: datetime, department: str | None = None
) -> list[RatingCounts]:
    """The rated tickets created in ``[start, end)``, counted per department and service
    (only ``department``'s, when given)."""
    check_window(start, end)
    return await reads.satisfaction_of_period(start, end, department)


def satisfaction_flat(counts: Sequence[RatingCounts], period: str) -> list[dict[str, Any]]:
    """The records as rows of the report's one CSV or JSON Lines table."""
    return [
        {"period": period, "section": "satisfaction", **record}
        for record in satisfaction_records(counts)
    ]


def write_satisfaction_table(
    counts: Sequence[RatingCounts],
    out: TextIO,
    period: str,
    shown: Callable[[Mapping[str, Any]], dict[str, Any]] = dict,
) -> None:
    """The section of the table report: a heading with the period, then the table, its
    records through ``shown`` (``Names.named``: names instead of ids)."""
    out.write(f"\n{TITLE}, {period}\n")
    write([shown(r) for r in satisfaction_records(counts)], SATISFACTION_COLUMNS, "table", out)
