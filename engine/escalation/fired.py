"""A step of a clock at the moment it fired: what the scheduler records and notices tell."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.escalation.policy import BREACH
from engine.vocabulary import AgreementKind, Metric, Priority, ProviderFunction, Tier


@dataclass(frozen=True, slots=True)
class FiredStep:
    """A step of a clock at the moment it fired, with what its notices tell."""

    ticket_id: str
    clock_key: str
    metric: Metric
    agreement_kind: AgreementKind
    department: str
    service: str
    function: ProviderFunction
    priority: Priority
    calendar: str
    target_s: float
    step: float
    tier: Tier
    due_at: datetime
    fired_at: datetime
    deadline: datetime | None  # when the target is (or was) used up, while it runs
    # When the engine could first know the step was due: its instant, or the measurement
    # that gave it an instant already past (a late creation, a retarget); lateness counts
    # from here, so that only the engine's own delay is its service level.
    known_at: datetime | None = None
    # Where the ticket is when the step fires (the latest ``ticket.assigned``): the provider
    # side of an SLA clock's step is the function's lead, or the customer team's contact;
    # None while the ticket is unassigned, when the helpdesk lead hears of it.
    assigned_function: ProviderFunction | None = None
    assigned_team: str | None = None

    @property
    def late_s(self) -> float:
        """Seconds from when the step could be known due to when it fired."""
        return self.late_at(self.fired_at)

    def late_at(self, at: datetime) -> float:
        """Seconds from when the step could be known due to ``at`` (its commit, say)."""
        since = max(self.due_at, self.known_at) if self.known_at else self.due_at
        return max(0.0, (at - since).total_seconds())

    @property
    def state(self) -> Literal["warning", "breach", "escalated"]:
        """A warning before the target, the breach at it, an escalation after it."""
        return "warning" if self.step < BREACH else "breach" if self.step == BREACH else "escalated"
