"""A ticket's state as GET /tickets/{id} answers it: the configuration and the agreement
version that measured it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from engine.config import load_config
from engine.ops.ticket_state import measure_ticket
from engine.sla_clock.meter import ClockMeter
from engine.store.reads import TicketRows
from tests.helpers import EXAMPLE_CONFIG
from tests.openapi_check import model_errors
from tests.streams import CPH, event

METER = ClockMeter(load_config(EXAMPLE_CONFIG))


def rows(ticket: str, created: datetime) -> TicketRows:
    created_event = event("ticket.created", ticket, 0, created, department="kff",
                          service="pc-arbejdsplads", priority="P2", subject="Skærm",
                          requester={"name": "B"})  # fmt: skip
    return TicketRows([json.dumps(created_event)], "{}", [])


def test_each_clock_names_the_agreement_version_of_the_tickets_creation() -> None:
    # KFF's example agreement has a second version, in force from 1 January 2027.
    before = datetime(2026, 12, 30, 10, tzinfo=CPH)
    after = datetime(2027, 1, 5, 10, tzinfo=CPH)
    old = measure_ticket(METER, "K-1", rows("K-1", before), before + timedelta(hours=1), "v1")
    new = measure_ticket(METER, "K-2", rows("K-2", after), after + timedelta(hours=1), "v1")
    assert {c["agreement_valid_from"] for c in old["clocks"] if c["agreement"] == "sla"} == {None}
    assert {c["agreement_valid_from"] for c in new["clocks"] if c["agreement"] == "sla"} == {
        datetime(2027, 1, 1, tzinfo=CPH).isoformat()
    }
    assert old["config_version"] == new["config_version"] == "v1"
    assert model_errors("TicketState", new) == []
