"""Prometheus metrics the engine exports: bounded labels, never a ticket id."""

from __future__ import annotations

from prometheus_client import Counter

CLOCK_LABELS = ("department", "service", "priority", "metric", "agreement")

BREACHES = Counter(
    "sla_breaches",
    "Clocks that used up their target: the breach step fired.",
    CLOCK_LABELS,
)
ESCALATIONS = Counter(
    "sla_escalations",
    "Escalation steps fired (warnings, the breach, and escalations after it), by tier.",
    (*CLOCK_LABELS, "tier"),
)
NOTICES = Counter(
    "sla_notices",
    "Escalation notices by channel and outcome: sent, retried, or failed for good.",
    ("channel", "outcome"),
)
