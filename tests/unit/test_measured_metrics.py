"""The metrics an agreement may set targets for are the metrics its clocks measure.

``MEASURED_METRICS`` (engine/vocabulary.py) is what ``check-config`` accepts; these
tests hold it to the clocks the core makes of tickets under the example configuration,
so that a metric added to the configuration's vocabulary without its clock fails here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, get_args

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.sla_clock.meter import ClockMeter
from engine.vocabulary import MEASURED_METRICS, AgreementKind, Metric
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

METER = ClockMeter(load_config(EXAMPLE_CONFIG))
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)  # office hours


def at(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at(minutes), **fields)))


def ticket(ticket_id: str, service: str, function: str) -> list[TicketEvent]:
    """A P1 ticket of ØKF's, assigned, answered and updated, its resolution still running."""
    return [
        ev("ticket.created", ticket_id, 0, 0, department="okf", service=service,
           priority="P1", subject="Løn fejler", requester={"name": "B"}),
        ev("ticket.assigned", ticket_id, 1, 1, function=function),
        ev("ticket.responded", ticket_id, 2, 5),
        ev("ticket.commented", ticket_id, 3, 10, visibility="public", body="Vi er i gang"),
        ev("ticket.status_changed", ticket_id, 4, 12, status="in_progress"),
    ]  # fmt: skip


# At P1 every agreement here sets a target for every metric its clocks measure: ØKF's
# Opus Løn (ordered: its SLA, with the contract's update target), print (not ordered:
# the contract's defaults), and the OLAs of server-network and pc-software.
TICKETS = [
    ticket("SLA", "opus-loen", "server-network"),
    ticket("DEFAULT", "print", "pc-software"),
]


def measured_metrics() -> dict[AgreementKind, set[Metric]]:
    """Every (agreement kind, metric) of a clock the core makes of TICKETS, at any instant."""
    produced: dict[AgreementKind, set[Metric]] = defaultdict(set)
    for events in TICKETS:
        # Before and after each event: a clock that exists only for a while counts too.
        for minutes in (0.5, 3, 7, 11, 20, 120):
            clocks = METER.measure(
                [e for e in events if e.occurred_at <= at(minutes)], {}, at(minutes)
            )
            assert clocks is not None
            for clock in clocks.clocks:
                produced[clock.agreement.kind].add(clock.metric)
    return dict(produced)


def test_every_agreement_kind_has_its_measured_metrics() -> None:
    assert set(MEASURED_METRICS) == set(get_args(AgreementKind))


def test_every_metric_of_the_vocabulary_is_measured_under_some_agreement() -> None:
    # A metric no clock measures would only be a config key every target of is refused.
    assert set(get_args(Metric)) == set().union(*MEASURED_METRICS.values())


def test_no_clock_measures_a_metric_its_agreement_may_not_set() -> None:
    for kind, metrics in measured_metrics().items():
        assert metrics <= MEASURED_METRICS[kind], kind


def test_every_metric_an_agreement_may_set_has_its_clock() -> None:
    assert measured_metrics() == {kind: set(metrics) for kind, metrics in MEASURED_METRICS.items()}
