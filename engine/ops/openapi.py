"""The HTTP port's contract: an OpenAPI 3.1 document made from pydantic models of its answers.

The committed copy is ``docs/openapi.json``; a unit test fails when it drifts from the
models, and the integration tests hold the port's real answers to it. Regenerate with::

    .venv/bin/python -m engine.ops.openapi > docs/openapi.json

The models describe what the handlers write (``engine.ops.ticket_state``,
``engine.ops.worklist``, ``engine.reporting``); they are the contract, not the code path.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from engine.ops.reload import ReloadStatus
from engine.ops.worklist import DEFAULT_PAGE, MAX_PAGE
from engine.sheet.words import LANGUAGES
from engine.sla_clock.clocks import ClockState
from engine.store.reads import LiveState
from engine.vocabulary import AgreementKind, Metric, Priority, ProviderFunction, Tier

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Answer):
    """An RFC 9457 problem document: every 4xx and 5xx answer."""

    status: int
    title: str
    detail: str


class Health(_Answer):
    status: Literal["ok"]


class ConfigVersion(_Answer):
    """The agreement configuration an engine runs."""

    version: str = Field(description="a hash of the configuration's files, as check-config prints")
    loaded_at: datetime = Field(description="when it was loaded: at start, or by a reload")


class Readiness(_Answer):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="database, broker, intake: 'ok' or why not")
    config: ConfigVersion


class Step(_Answer):
    """An escalation step of a clock: when it falls due, and whether it fired."""

    fraction: float = Field(description="the share of the target at which it fires")
    tier: Tier
    due_at: datetime | None = Field(description="null: no business time reaches it")
    fired_at: datetime | None
    status: Literal["fired", "superseded", "pending"]


class ClockSummary(_Answer):
    """One SLA or OLA clock of a ticket, measured at the answer's ``as_of``."""

    key: str = Field(description="response, resolution, update:<start>, ola:<n>:<function>...")
    metric: Metric
    agreement: AgreementKind
    agreement_key: str
    agreement_valid_from: datetime | None = Field(
        description="from when the agreement version the clock keeps (the one in force at "
        "the ticket's creation) was in force; null: its first version"
    )
    function: ProviderFunction | str | None
    priority: Priority
    state: ClockState
    running: bool
    started_at: datetime
    stopped_at: datetime | None
    elapsed_s: float = Field(description="business time used")
    target_s: float
    fraction: float = Field(description="elapsed_s / target_s")
    deadline: datetime | None = Field(description="when it breaches; null while paused")


class ClockDetail(ClockSummary):
    steps: list[Step]


class _TicketFields(_Answer):
    ticket_id: str
    as_of: datetime
    events: int = Field(description="events recorded for the ticket")
    created_at: datetime | None = None
    department: str | None = None
    service: str | None = None
    priority: Priority | None = None
    status: str | None = None
    assigned_function: ProviderFunction | None = None
    waiting_for: Literal["ticket.created"] | None = Field(
        default=None, description="present while the ticket's creation has not arrived"
    )
    unmeasurable: str | None = Field(
        default=None, description="present when the configuration no longer knows its agreement"
    )


class TicketState(_TicketFields):
    """``GET /tickets/{ticket_id}``: the ticket's clocks with their steps."""

    config_version: str = Field(
        description="the configuration the answering engine measured it with, as /readyz "
        "and check-config name it"
    )
    clocks: list[ClockDetail]


class WorklistItem(_TicketFields):
    """A worklist row: the ticket's clocks as in ``GET /tickets/{id}``, without steps."""

    next_deadline: datetime | None = Field(
        description="the sort key: the earliest deadline of a running clock among the chosen"
    )
    clocks: list[ClockSummary]


class WorklistPage(_Answer):
    as_of: datetime
    limit: int
    items: list[WorklistItem]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: last")


class _Measures(_Answer):
    tickets: int
    met: int
    breached: int
    open: int
    compliance_pct: float | None = Field(description="met / (met + breached); null: none decided")
    median_s: float | None
    p90_s: float | None
    target_s: float | None
    median_of_target_pct: float | None
    p90_of_target_pct: float | None


class SlaRow(_Measures):
    department: str
    department_name: str
    service: str
    service_name: str
    priority: Priority
    metric: Metric
    agreement: Literal["sla", "default"]


class OlaRow(_Measures):
    function: ProviderFunction | str
    function_name: str
    priority: Priority
    metric: Metric


class TotalRow(_Answer):
    """A department's SLA clocks over its services, priorities and metrics (``service``
    null), or one service's."""

    department: str
    department_name: str
    service: str | None
    service_name: str | None = None
    tickets: int
    met: int
    breached: int
    open: int
    compliance_pct: float | None


class SatisfactionRow(_Answer):
    """The requesters' ratings (1-5) of one service's tickets."""

    department: str
    department_name: str
    service: str
    service_name: str
    ratings: int
    mean_score: float | None
    satisfied_pct: float | None = Field(description="the share rated 4 or 5")
    score_1: int
    score_2: int
    score_3: int
    score_4: int
    score_5: int


class Compliance(_Answer):
    """What ``sla-engine report --department ID --format json`` prints; a provider
    function's answer has its OLA rows only, and no satisfaction."""

    period: str
    sla: list[SlaRow]
    ola: list[OlaRow]
    satisfaction: list[SatisfactionRow] | None = Field(
        default=None, description="a department's only"
    )
    totals: list[TotalRow]


class ReloadAnswer(_Answer):
    """What ``POST /reload`` did, as ``sla-engine reload`` prints it."""

    status: ReloadStatus
    version: str = Field(description="the configuration in force after the reload")
    previous: str = Field(description="the configuration in force before it")
    problems: list[str] = Field(description="why the files were refused, file and key each")


_MODELS: tuple[type[BaseModel], ...] = (
    Problem,
    Health,
    Readiness,
    TicketState,
    WorklistPage,
    Compliance,
    ReloadAnswer,
)

# Examples: each is checked against its schema by the tests.
_AS_OF = "2026-12-03T09:00:00+00:00"
_CLOCK: dict[str, Any] = {
    "key": "resolution",
    "metric": "resolution",
    "agreement": "sla",
    "agreement_key": "sla:okf:opus-loen",
    "agreement_valid_from": None,
    "function": "pc-software",
    "priority": "P2",
    "state": "running",
    "running": True,
    "started_at": "2026-12-02T13:10:00+00:00",
    "stopped_at": None,
    "elapsed_s": 10800.0,
    "target_s": 28800.0,
    "fraction": 0.375,
    "deadline": "2026-12-03T14:00:00+00:00",
}
_TICKET: dict[str, Any] = {
    "ticket_id": "INC-1042",
    "as_of": _AS_OF,
    "events": 3,
    "created_at": "2026-12-02T13:10:00+00:00",
    "department": "okf",
    "service": "opus-loen",
    "priority": "P2",
    "status": "in_progress",
    "assigned_function": "pc-software",
}
_STEPS = [
    {
        "fraction": 0.5,
        "tier": "operational",
        "due_at": "2026-12-03T10:00:00+00:00",
        "fired_at": None,
        "status": "pending",
    }
]
_MEASURES = {
    "tickets": 41,
    "met": 38,
    "breached": 2,
    "open": 1,
    "compliance_pct": 95.0,
    "median_s": 5400.0,
    "p90_s": 19800.0,
    "target_s": 28800.0,
    "median_of_target_pct": 18.8,
    "p90_of_target_pct": 68.8,
}
_NAMES = {"department_name": "Økonomiforvaltningen", "service_name": "KMD Opus Løn"}
_TOTAL = {"tickets": 41, "met": 38, "breached": 2, "open": 1, "compliance_pct": 95.0}
EXAMPLES: dict[str, Any] = {
    "Problem": {"status": 400, "title": "Bad Request", "detail": "limit: too large"},
    "ReloadAnswer": {
        "status": "reloaded",
        "version": "5d0e43a1c2b7",
        "previous": "88f98691f698",
        "problems": [],
    },
    "Health": {"status": "ok"},
    "Readiness": {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "intake": "ok"},
        "config": {"version": "88f98691f698", "loaded_at": _AS_OF},
    },
    "TicketState": {
        **_TICKET,
        "config_version": "88f98691f698",
        "clocks": [{**_CLOCK, "steps": _STEPS}],
    },
    "WorklistPage": {
        "as_of": _AS_OF,
        "limit": 50,
        "items": [{**_TICKET, "next_deadline": _CLOCK["deadline"], "clocks": [_CLOCK]}],
        "next_cursor": None,
    },
    "Compliance": {
        "period": "tickets created in [2026-11-01T00:00:00+01:00, 2026-12-01T00:00:00+01:00)",
        "sla": [
            {
                "department": "okf",
                "service": "opus-loen",
                "priority": "P2",
                "metric": "resolution",
                "agreement": "sla",
                **_MEASURES,
                **_NAMES,
            }
        ],
        "ola": [
            {
                "function": "pc-software",
                "priority": "P2",
                "metric": "resolution",
                **_MEASURES,
                "function_name": "PC og Software",
            }
        ],
        "satisfaction": [
            {
                "department": "okf",
                "service": "opus-loen",
                "ratings": 12,
                "mean_score": 4.25,
                "satisfied_pct": 83.3,
                "score_1": 0,
                "score_2": 1,
                "score_3": 1,
                "score_4": 4,
                "score_5": 6,
                **_NAMES,
            }
        ],
        "totals": [
            {
                "department": "okf",
                "service": None,
                **_TOTAL,
                "department_name": "Økonomiforvaltningen",
            },
            {"department": "okf", "service": "opus-loen", **_TOTAL, **_NAMES},
        ],
    },
}


def _json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(model=model)},
                "example": EXAMPLES[model],
            }
        },
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": {"$ref": _REF.format(model="Problem")},
                "example": EXAMPLES["Problem"],
            }
        },
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}  # fmt: skip


def _enum(values: tuple[str, ...] | Any) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_NOT_READY = (
    "not connected to the database yet, it is unreachable, or the query took "
    "longer than the port allows"
)
_PERIOD = [
    _query("from", "first day (YYYY-MM-DD, midnight in Copenhagen) or RFC 3339 instant; "
           "default: the first of this month", {"type": "string"}),
    _query("to", "end, exclusive, in the same forms; default: now", {"type": "string"}),
]  # fmt: skip


_SHEET_LANGUAGE = [
    _query("lang", "the page's language; default: the best of Accept-Language, else da",
           _enum(LANGUAGES)),
    {"name": "Accept-Language", "in": "header", "required": False,
     "description": "chooses the language when lang is not given", "schema": {"type": "string"}},
]  # fmt: skip


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _paths() -> dict[str, Any]:
    worklist_parameters = [
        _query("department", "the ticket's department", {"type": "string"}),
        _query("service", "the ticket's service", {"type": "string"}),
        _query("priority", "the ticket's priority now", _enum(get_args(Priority))),
        _query("function", "the provider function the ticket is assigned to now",
               _enum(get_args(ProviderFunction))),
        _query("team", "the team the ticket is assigned to now (ticket.assigned's team)",
               {"type": "string"}),
        _query("scope", "open: clocks not stopped (default); all: every clock",
               _enum(("open", "all"))),
        _query("metric", "only clocks of this metric", _enum(get_args(Metric))),
        _query("state", "a clock in this state now (running past its deadline: breached)",
               _enum(get_args(LiveState))),
        _query("breached", "true: a chosen clock is breached; false: none is",
               {"type": "boolean"}),
        _query("breaching_within", "a running clock breaches within this span, e.g. 1h, 30m",
               {"type": "string", "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"}),
        _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                      "default": DEFAULT_PAGE}),
        _query("cursor", "next_cursor of the page before", {"type": "string"}),
    ]  # fmt: skip
    return {
        "/healthz": {"get": {"summary": "Liveness: the process answers",
                             "responses": {"200": _json("Health", "alive")}}},
        "/readyz": {"get": {"summary": "Readiness: database, broker and intake",
                            "responses": {"200": _json("Readiness", "ready"),
                                          "503": _json("Readiness", "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "the text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {
            "description": "OpenAPI 3.1",
            "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/tickets": {"get": {
            "summary": "The worklist: tickets by their next deadline",
            "description": "A ticket is listed when one of its clocks passes every clock "
                           "filter (scope, metric, state, breaching_within); breached then "
                           "looks at those clocks. Sorted by the earliest deadline of a "
                           "running chosen clock (overdue first), then ticket id; tickets "
                           "without one last. Cursor pagination: a ticket added before the "
                           "cursor moves no later row. Unknown or repeated parameters: 400.",
            "parameters": worklist_parameters,
            "responses": {"200": _json("WorklistPage", "a page of tickets"),
                          "400": _problem("a parameter the worklist cannot take"),
                          "503": _problem(_NOT_READY)}}},
        "/tickets/{ticket_id}": {"get": {
            "summary": "One ticket's clocks and steps, measured now",
            "parameters": [_path("ticket_id", "a ticket id of the event contract")],
            "responses": {"200": _json("TicketState", "the ticket"),
                          "400": _problem("not a ticket id of the event contract"),
                          "404": _problem("no event of the ticket was recorded"),
                          "503": _problem(_NOT_READY)}}},
        "/departments": {"get": {
            "summary": "Redirects to /departments/ (the pages link relatively)",
            "responses": {"308": {"description": "to /departments/, with the same query",
                                  "headers": {"Location": {"schema": {"type": "string"}}}}}}},
        "/departments/": {"get": {
            "summary": "The SLA sheets' index: the departments and the service catalog",
            "description": "An HTML page, the same as `sla-engine sheet` writes, from the "
                           "configuration the engine runs. `/departments` redirects here.",
            "parameters": _SHEET_LANGUAGE,
            "responses": {"200": _html("the index page"),
                          "400": _problem("an unknown parameter or language")}}},
        "/departments/{department_id}": {"get": {
            "summary": "A department's SLA in plain words",
            "description": "An HTML page, the same as `sla-engine sheet` writes: the ordered "
                           "services and their targets, opening hours, holidays and batch "
                           "windows, escalation, contacts, priority matrix, the contract's "
                           "defaults and prices. Static: no scripts; prints on A4.",
            "parameters": [_path("department_id", "a department of the configuration"),
                           *_SHEET_LANGUAGE],
            "responses": {"200": _html("the department's sheet"),
                          "400": _problem("an unknown parameter or language"),
                          "404": _problem("no such department in the configuration")}}},
        "/departments/{department_id}/compliance": {"get": {
            "summary": "A department's SLA compliance and the OLA compliance beneath it",
            "parameters": [_path("department_id", "a department of the configuration"),
                           *_PERIOD],
            "responses": {"200": _json("Compliance", "tickets created in [from, to)"),
                          "400": _problem("from/to unreadable or an empty window"),
                          "404": _problem("no such department in the configuration"),
                          "503": _problem(_NOT_READY)}}},
        "/functions/{function_id}/compliance": {"get": {
            "summary": "A provider function's OLA compliance",
            "parameters": [_path("function_id", "a provider function of the configuration"),
                           *_PERIOD],
            "responses": {"200": _json("Compliance", "tickets created in [from, to)"),
                          "400": _problem("from/to unreadable or an empty window"),
                          "404": _problem("no such provider function in the configuration"),
                          "503": _problem(_NOT_READY)}}},
        "/reload": {"post": {
            "summary": "Load the configuration again, as SIGHUP does",
            "description": "The one request that changes what the engine does, so it is "
                           "answered only to a caller on the engine's own host: from the "
                           "loopback address, and not relayed by a proxy (a request with "
                           "Forwarded, Via, X-Forwarded-For, X-Forwarded-Host or X-Real-IP "
                           "is refused). What `sla-engine reload` calls.",
            "responses": {"200": _json("ReloadAnswer", "reloaded, or the files unchanged"),
                          "403": _problem("not from the loopback address, or through a "
                                          "proxy"),
                          "422": _json("ReloadAnswer", "refused: the engine runs on as it "
                                       "was; the problems name file and key"),
                          "503": _problem("this engine does not reload")}}},
    }  # fmt: skip


@cache
def openapi_document() -> dict[str, Any]:
    """The whole HTTP port as an OpenAPI 3.1 document."""
    schemas: dict[str, Any] = {}
    for model in _MODELS:
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sla-engine HTTP port",
            "version": API_VERSION,
            "description": "Health, metrics, tickets' SLA state, the agents' worklist, "
            "compliance and the departments' SLA sheets, read only; and POST /reload for "
            "the engine's own host. Errors are RFC 9457 problem documents.",
        },
        "paths": _paths(),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def openapi_text() -> str:
    """The document as deterministic JSON text, ending in a newline."""
    return json.dumps(openapi_document(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    print(openapi_text(), end="")
