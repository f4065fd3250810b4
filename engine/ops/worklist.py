"""The agents' worklist, as the HTTP port answers it: pure.

``worklist_query`` reads a request's query string into a ``WorklistQuery`` (or says what
is wrong with it, for a 400), ``worklist_page`` measures the listed tickets' clocks as
``GET /tickets/{id}`` does, without their steps.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.config.durations import Duration
from engine.ops.ticket_state import JSON, measure_ticket
from engine.sla_clock.meter import ClockMeter
from engine.store.reads import ClockScope, LiveState, TicketRows, WorklistKey, WorklistQuery
from engine.vocabulary import Metric, Priority, ProviderFunction

DEFAULT_PAGE = 50
MAX_PAGE = 200  # a page is measured from its tickets' events: bounded, like its cost
_Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class BadRequest(ValueError):
    """A query the endpoint cannot answer; its message is the problem document's detail."""


class WorklistParams(BaseModel):
    """The query string of ``GET /tickets`` (see ``WorklistQuery`` for what each means)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: _Name | None = None
    service: _Name | None = None
    priority: Priority | None = None
    function: ProviderFunction | None = None
    team: _Name | None = None
    metric: Metric | None = None
    state: LiveState | None = None
    scope: ClockScope = "open"
    breached: bool | None = None
    breaching_within: Duration | None = None
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=600)


def worklist_query(query: Mapping[str, str], keys: Sequence[str], now: datetime) -> WorklistQuery:
    """The worklist asked for by a query string (``keys``: every name in it, repeats
    included); raises ``BadRequest``."""
    once(keys)
    try:
        params = WorklistParams.model_validate(dict(query))
    except ValidationError as exc:
        raise BadRequest(_reasons(exc)) from None
    within: timedelta | None = params.breaching_within
    return WorklistQuery(
        now=now,
        # One more than the page: whether another page follows, without a count.
        limit=params.limit + 1,
        department=params.department,
        service=params.service,
        priority=params.priority,
        function=params.function,
        team=params.team,
        scope=params.scope,
        metric=params.metric,
        state=params.state,
        breached=params.breached,
        breaching_within=within,
        after=None if params.cursor is None else decode_cursor(params.cursor),
    )


def once(keys: Sequence[str]) -> None:
    """Refuse a query string that names a parameter twice; raises ``BadRequest``."""
    repeated = sorted(key for key, n in Counter(keys).items() if n > 1)
    if repeated:
        raise BadRequest(f"give each parameter once: {', '.join(repeated)} repeated")


def encode_cursor(key: WorklistKey) -> str:
    """An opaque cursor for the page after the row ``key``."""
    deadline = None if key.next_deadline is None else key.next_deadline.isoformat()
    text = json.dumps([deadline, key.ticket_id], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> WorklistKey:
    """The row a cursor points after; raises ``BadRequest`` for one this port never made."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        deadline, ticket_id = json.loads(text)
        at = None if deadline is None else datetime.fromisoformat(deadline)
        if not isinstance(ticket_id, str) or (at is not None and at.utcoffset() is None):
            raise ValueError("not a cursor")
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor is not one this engine gave; start again without it") from None
    return WorklistKey(at, ticket_id)


def worklist_page(
    meter: ClockMeter,
    query: WorklistQuery,
    keys: Sequence[WorklistKey],
    rows: Mapping[str, TicketRows],
) -> JSON:
    """The page of ``keys`` (read with ``query``, one more than the page asked for), each
    ticket measured at ``query.now`` from ``rows``. CPU work: run it off the event loop."""
    page_size = query.limit - 1
    shown = keys[:page_size]
    items = []
    for key in shown:
        found = rows.get(key.ticket_id)
        if found is None:  # purged between the two reads
            continue
        state = measure_ticket(meter, key.ticket_id, found, query.now, with_steps=False)
        deadline = None if key.next_deadline is None else key.next_deadline.isoformat()
        items.append({"next_deadline": deadline, **state})
    more = len(keys) > page_size
    return {
        "as_of": query.now.isoformat(),
        "limit": page_size,
        "items": items,
        "next_cursor": encode_cursor(shown[-1]) if more and shown else None,
    }


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "query"
        message = "unknown parameter" if error["type"] == "extra_forbidden" else error["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
