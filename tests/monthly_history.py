"""A known history for the monthly report's tests: ØKF's November 2026, and a ticket of
October for its trend, recorded as intake records them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.recording import RecordingStore
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

CONFIG = load_config(EXAMPLE_CONFIG)
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)  # office hours
RECORDED_AT = datetime(2026, 11, 30, 12, tzinfo=CPH)
# ØKF's recipients in the example configuration: the IT lead gets the whole report, each
# system owner the part about their service, in their language.
STRATEGIC = "it-ansvarlig@okf.kk.dk"
OPUS_OWNER = "systemejer-opus@okf.kk.dk"
DATA_OWNER = "systemejer-ledelsesinfo@okf.kk.dk"  # language: en


def _ev(type_: str, ticket: str, seq: int, at: datetime, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def _ticket(
    ticket: str, department: str, service: str, priority: str, at: datetime,
    responded_after_m: float, resolved_after_m: float,
) -> list[TicketEvent]:  # fmt: skip
    return [
        _ev("ticket.created", ticket, 0, at, department=department, service=service,
            priority=priority, subject="Fejl", requester={"name": "B"}),
        _ev("ticket.responded", ticket, 1, at + timedelta(minutes=responded_after_m)),
        _ev("ticket.status_changed", ticket, 2, at + timedelta(minutes=resolved_after_m),
            status="resolved"),
    ]  # fmt: skip


# ØKF's Opus Løn, P1: response 15 minutes, resolution 2 hours. Datavarehus, P2: 1h, 6h.
# Print is not ØKF's: the contract's defaults, out of agreement.
HISTORY = [
    *_ticket("OKF-A", "okf", "opus-loen", "P1", MONDAY, 5, 60),  # met
    *_ticket("OKF-B", "okf", "opus-loen", "P1", MONDAY, 20, 150),  # both breached
    *_ticket("OKF-D", "okf", "datavarehus", "P2", MONDAY + timedelta(days=1), 30, 60),
    *_ticket("OKF-P", "okf", "print", "P2", MONDAY + timedelta(days=1), 10, 40),
    *_ticket("OKF-O", "okf", "opus-loen", "P1", MONDAY - timedelta(days=35), 5, 60),  # October
    *_ticket("TMF-1", "tmf", "esdh", "P3", MONDAY, 30, 120),
    *_ticket("SOF-1", "sof", "omsorgssystem", "P2", MONDAY, 10, 60),
]


async def record_history(store: RecordingStore) -> None:
    """Record ``HISTORY`` in ``store`` as intake would have by ``RECORDED_AT``."""
    await Recorder(ClockMeter(CONFIG), store).record(HISTORY, RECORDED_AT)
