"""The domain's shared names: the words the configuration, the event contract and the core all use.

Kept apart from each of them, so that the wire contract does not depend on the
configuration models and the configuration does not depend on the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

Tier = Literal["operational", "tactical", "strategic"]
TIERS: tuple[Tier, ...] = ("operational", "tactical", "strategic")

ProviderFunction = Literal["server-network", "pc-software", "helpdesk", "sales", "administration"]
PROVIDER_FUNCTIONS: tuple[ProviderFunction, ...] = (
    "server-network",
    "pc-software",
    "helpdesk",
    "sales",
    "administration",
)

Priority = Literal["P1", "P2", "P3", "P4"]
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4")

Metric = Literal["response", "resolution", "update"]
REQUIRED_METRICS: tuple[Metric, ...] = ("response", "resolution")

Level = Literal["high", "medium", "low"]
"""An impact or an urgency."""
LEVELS: tuple[Level, ...] = ("high", "medium", "low")

AgreementKind = Literal["sla", "ola", "default"]
"""Where a clock's targets come from: the department's SLA, an OLA, or the contract's defaults."""

MEASURED_METRICS: Mapping[AgreementKind, frozenset[Metric]] = MappingProxyType(
    {
        "sla": frozenset({"response", "resolution", "update"}),
        "default": frozenset({"response", "resolution", "update"}),
        "ola": frozenset({"response", "resolution"}),
    }
)
"""The metrics the clocks measure, per kind of agreement: the one list of them.

``check-config`` refuses a target of any other metric, which nobody would measure. A
metric added to ``Metric`` comes with its clock and its place here: a unit test holds
this list to the clocks the core makes (tests/unit/test_measured_metrics.py).
"""
