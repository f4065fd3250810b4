"""SLA compliance: clocks' outcomes grouped, counted and measured against their targets.

Pure. The simulator feeds it the clocks it measured in memory, ``sla-engine report``
the clocks stored in PostgreSQL; both print what ``summarize`` returns, so the two
count the same way.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["met", "breached", "open"]
GroupKey = Literal["department", "service", "priority", "metric", "agreement", "function"]

SLA_GROUPING: tuple[GroupKey, ...] = ("department", "service", "priority", "metric")
OLA_GROUPING: tuple[GroupKey, ...] = ("function", "priority", "metric")


@dataclass(frozen=True, slots=True)
class ClockOutcome:
    """One clock as it ended (or stands, while open) at the end of the period."""

    ticket_id: str
    department: str
    service: str
    priority: str
    metric: str
    agreement: str  # sla, default, ola
    function: str
    outcome: Outcome
    elapsed_s: float
    target_s: float


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """A group's counts; compliance is met / (met + breached), None while nothing ended."""

    group: tuple[str, ...]
    tickets: int
    met: int
    breached: int
    open: int
    compliance: float | None
    median_s: float | None  # business time used, of the clocks that ended
    p90_s: float | None
    target_s: float  # the group's most common target

    @property
    def breach_share(self) -> float | None:
        return None if self.compliance is None else 1.0 - self.compliance


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
        ended = [clock.elapsed_s for clock in clocks if clock.outcome != "open"]
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
                median_s=percentile(ended, 0.5),
                p90_s=percentile(ended, 0.9),
                target_s=targets.most_common(1)[0][0],
            )
        )
    return rows
