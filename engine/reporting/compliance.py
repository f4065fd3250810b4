"""SLA compliance: clocks' outcomes grouped, counted and measured against their targets.

Pure. The simulator feeds it the clocks it measured in memory, ``sla-engine report``
the clocks stored in PostgreSQL; both decide each clock's outcome with ``outcome_of``
and print the records ``sla_records`` and ``ola_records`` make of them, so the two
count and round the same way.

A clock's outcome is decided once it has used its target or stopped short of it: a
clock still running (or paused) past its target is ``breached``, not ``open``, for no
later event can make it met, its breach step has fired and ``sla_breaches_total``
counted it; leaving it open would flatter a group by its worst tickets. The business
time used (median, p90) is that of the decided clocks that no longer run: a running
clock's figure still grows (and a stored one's is as of its last measurement).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Outcome = Literal["met", "breached", "open"]
GroupKey = Literal["department", "service", "priority", "metric", "agreement", "function"]

SLA_GROUPING: tuple[GroupKey, ...] = ("department", "service", "priority", "metric")
OLA_GROUPING: tuple[GroupKey, ...] = ("function", "priority", "metric")
# 'default' rows are services outside the department's SLA, under the general contract's
# targets: grouped apart from the 'sla' rows so that out of agreement stays visible.
SLA_BY: tuple[GroupKey, ...] = (*SLA_GROUPING, "agreement")
MEASURES = (
    "tickets",
    "met",
    "breached",
    "open",
    "compliance_pct",
    "median_s",
    "p90_s",
    "target_s",
    "median_of_target_pct",
    "p90_of_target_pct",
)
SLA_COLUMNS = (*SLA_BY, *MEASURES)
OLA_COLUMNS = (*OLA_GROUPING, *MEASURES)


class ClockOutcome(NamedTuple):
    """One clock as it ended (or stands, while it runs or waits) at the end of the period.

    A named tuple rather than a dataclass: a year's simulation makes close to a million,
    in worker processes that send them back pickled, and a tuple is made, pickled and
    read back at a fraction of a frozen dataclass's cost.
    """

    ticket_id: str
    department: str
    service: str
    priority: str
    metric: str
    agreement: str  # sla, default, ola
    function: str
    outcome: Outcome
    running: bool  # at the end of the period: its business time used still grows
    elapsed_s: float  # business time used, as last measured
    target_s: float


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """A group's counts; compliance is met / (met + breached), None while none is decided."""

    group: tuple[str, ...]
    tickets: int
    met: int
    breached: int
    open: int
    compliance: float | None
    median_s: float | None  # business time used, of the met and breached clocks not running
    p90_s: float | None
    target_s: float  # the group's most common target

    @property
    def breach_share(self) -> float | None:
        return None if self.compliance is None else 1.0 - self.compliance


def outcome_of(state: str, *, overdue: bool = False) -> Outcome:
    """A clock's outcome from its state as measured: running, paused, met or breached.

    ``met``: stopped within its target. ``breached``: it used its whole target, whether
    it has stopped since or still runs or waits. ``open``: running or paused short of
    its target. ``overdue``: measured before the end of the period, it has run past its
    deadline since.
    """
    if state == "met":
        return "met"
    if state == "breached" or overdue:
        return "breached"
    return "open"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0 < q <= 1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(
    outcomes: Iterable[ClockOutcome], by: Sequence[GroupKey] = SLA_GROUPING
) -> list[ComplianceRow]:
    """Outcomes grouped by the ``by`` fields, in the groups' order."""
    groups: dict[tuple[str, ...], list[ClockOutcome]] = defaultdict(list)
    for clock in outcomes:
        groups[tuple(getattr(clock, field) for field in by)].append(clock)
    rows = []
    for group, clocks in sorted(groups.items()):
        counts = Counter(clock.outcome for clock in clocks)
        # Open clocks are undecided, and a running one's time used is not yet known.
        used = [c.elapsed_s for c in clocks if c.outcome != "open" and not c.running]
        decided = counts["met"] + counts["breached"]
        targets = Counter(clock.target_s for clock in clocks)
        rows.append(
            ComplianceRow(
                group=group,
                tickets=len({clock.ticket_id for clock in clocks}),
                met=counts["met"],
                breached=counts["breached"],
                open=counts["open"],
                compliance=counts["met"] / decided if decided else None,
                median_s=percentile(used, 0.5),
                p90_s=percentile(used, 0.9),
                target_s=targets.most_common(1)[0][0],
            )
        )
    return rows


def sla_records(outcomes: Iterable[ClockOutcome]) -> list[dict[str, Any]]:
    """SLA rows, by department, service, priority, metric and agreement (sla or default)."""
    rows = summarize((c for c in outcomes if c.agreement != "ola"), SLA_BY)
    return [_record(row, SLA_BY) for row in rows]


def ola_records(outcomes: Iterable[ClockOutcome]) -> list[dict[str, Any]]:
    """OLA rows, by provider function, priority and metric."""
    rows = summarize((c for c in outcomes if c.agreement == "ola"), OLA_GROUPING)
    return [_record(row, OLA_GROUPING) for row in rows]


def _record(row: ComplianceRow, by: Sequence[GroupKey]) -> dict[str, Any]:
    return {
        **dict(zip(by, row.group, strict=True)),
        "tickets": row.tickets,
        "met": row.met,
        "breached": row.breached,
        "open": row.open,
        "compliance_pct": None if row.compliance is None else round(100 * row.compliance, 1),
        "median_s": _seconds(row.median_s),
        "p90_s": _seconds(row.p90_s),
        "target_s": _seconds(row.target_s),
        "median_of_target_pct": _share_pct(row.median_s, row.target_s),
        "p90_of_target_pct": _share_pct(row.p90_s, row.target_s),
    }


def _seconds(value: float | None) -> float | None:
    # Business time is measured to the microsecond; a report needs a tenth of a second.
    return None if value is None else round(value, 1)


def _share_pct(part_s: float | None, target_s: float) -> float | None:
    return None if part_s is None else round(100 * part_s / target_s, 1)


TOTAL_MEASURES = ("tickets", "met", "breached", "open", "compliance_pct")
"""What a total counts: over priorities and metrics, a median or a target means nothing."""


def total_records(outcomes: Iterable[ClockOutcome], by: Sequence[GroupKey]) -> list[dict[str, Any]]:
    """The SLA clocks (in agreement or not) totalled over priorities and metrics, by ``by``:
    tickets, met, breached, open and compliance."""
    rows = summarize((c for c in outcomes if c.agreement != "ola"), by)
    return [
        {key: value for key, value in _record(row, by).items() if key in (*by, *TOTAL_MEASURES)}
        for row in rows
    ]
