"""The engine's HTTP port: /metrics, /healthz, /readyz, the tickets' SLA state (one, or an
agents' worklist), compliance per department and function, the departments' SLA sheets
(HTML), and /openapi.json; and POST /reload, for ``sla-engine reload`` on the same host
(loopback callers only).

It starts before the engine reaches its database and broker, so that a supervisor sees
a live process (``/healthz``) that is not ready yet (``/readyz``) while it waits, rather
than no answer at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import TypeAdapter, ValidationError

from engine.events.fields import TicketId
from engine.ops.openapi import openapi_document
from engine.ops.reload import ReloadOutcome
from engine.ops.ticket_state import measure_ticket
from engine.ops.worklist import (
    BadRequest,
    once,
    worklist_page,
    worklist_query,
)
from engine.reporting.names import Names
from engine.reporting.report import clock_outcomes, report_json
from engine.reporting.satisfaction import satisfaction_of_period
from engine.reporting.window import DATE_ZONE, check_window, parse_instant
from engine.running import ConfigInForce, RunningConfig
from engine.sheet import LANGUAGES, Language, choose_language, render_department, render_index
from engine.sla_clock.meter import ClockMeter
from engine.store.postgres.probe import ping
from engine.store.reads import ReadStore

log = structlog.get_logger(__name__)

# A readiness probe that waits longer than this on the database reports it unreachable:
# probes have their own short timeouts, and a slow answer is as bad as none to them.
READY_TIMEOUT_S = 2.0
# A probe's database finding is reused this long, and probes arriving while one is
# being made wait for it: a flood of probes opens one connection a second, not one each.
READY_CACHE_S = 1.0
_TICKET_ID: TypeAdapter[str] = TypeAdapter(TicketId)


@dataclass
class Parts:
    """What the endpoints read; filled in as the engine connects."""

    running: RunningConfig  # each request reads the configuration in force once, at its start
    database_url: str = field(repr=False)  # holds the password
    tickets: ReadStore | None = None  # set once the database answered
    broker: AbstractRobustConnection | None = None
    # Set once intake consumes: a process that connected but has not declared its
    # queues, or has stopped consuming, is not ready for traffic.
    consuming: Callable[[], bool] = field(default=lambda: False)
    # The start-up backlog wait, once intake's queue is declared: told, not checked, since
    # an engine taking a backlog is ready for traffic (a rolling restart must go on).
    startup: Callable[[], dict[str, Any]] | None = None
    # POST /reload: load the configuration again (``engine.ops.reload``); None: not offered.
    reload: Callable[[str], Awaitable[ReloadOutcome]] | None = None
    # The longest a request reads the database, all its statements together: a period's
    # compliance is read through a cursor, whose fetches PostgreSQL times one by one.
    read_timeout_s: float = 30.0

    @property
    def meter(self) -> ClockMeter:
        """The clock meter of the configuration in force."""
        return self.running.current.meter


class HttpPort:
    """An aiohttp server on ``host``:``port`` (port 0: any free one, see ``port``)."""

    def __init__(self, parts: Parts, host: str, port: int) -> None:
        self.parts = parts
        self._host = host
        self._port = port
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/tickets", self._worklist)
        app.router.add_get("/tickets/{ticket_id}", self._ticket)
        app.router.add_get("/departments", self._sheets_moved)
        app.router.add_get("/departments/", self._sheet_index)
        app.router.add_get("/departments/{department_id}", self._sheet)
        app.router.add_get("/departments/{department_id}/compliance", self._department)
        app.router.add_get("/functions/{function_id}/compliance", self._function)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_post("/reload", self._reload)
        self.app = app  # its routes are the port: the OpenAPI test compares them
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port = port
        self._database_probe: asyncio.Task[str] | None = None
        self._database_found: tuple[float, str] | None = None  # loop time, finding
        # Tickets are measured in a thread, with a meter of their own: a meter's calendars
        # grow as they are used, which is not safe beside intake's measuring on the loop,
        # nor in two threads at once. Made again for each configuration put in force.
        self._ticket_meter: tuple[ConfigInForce, ClockMeter] | None = None
        self._measuring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ticket-state")

    async def start(self) -> None:
        """Bind and serve; an address in use raises OSError, for the caller to report."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("http.listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop serving; a measurement under way finishes in its thread, unread."""
        await self._runner.cleanup()
        if self._database_probe is not None:
            self._database_probe.cancel()
        self._measuring.shutdown(wait=False, cancel_futures=True)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        # The event loop answered: the process lives. Nothing else, so that a restart
        # is never triggered by a database outage the engine is waiting out.
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = {
            "database": await self._database_finding(),
            "broker": await self._check(self._broker),
            "intake": "ok" if self.parts.consuming() else "not consuming",
        }
        ready = all(result == "ok" for result in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        if self.parts.startup is not None:
            body["startup_backlog"] = self.parts.startup()
        # Which configuration this engine runs: compare with check-config's version when
        # rolling a change through the replicas.
        current = self.parts.running.current
        body["config"] = {"version": current.version, "loaded_at": current.loaded_at.isoformat()}
        return web.json_response(body, status=200 if ready else 503)

    async def _reload(self, request: web.Request) -> web.Response:
        # Loopback only: whoever can reach the port from elsewhere (Prometheus, a load
        # balancer) has no business changing what the engine runs. Signals need a local
        # user too (SIGHUP; systemctl reload).
        if not _loopback(request.remote):
            return _problem(403, "POST /reload is answered on the loopback address only")
        # A reverse proxy on this host makes every outside caller a loopback one: what it
        # relays carries its headers, and is refused whatever the proxy lets through.
        relayed = sorted(name for name in _PROXY_HEADERS if name in request.headers)
        if relayed:
            return _problem(
                403, f"POST /reload is not answered through a proxy (it sent {', '.join(relayed)})"
            )
        if self.parts.reload is None:
            return _problem(503, "this engine does not reload its configuration")
        outcome = await self.parts.reload("http")
        return web.json_response(outcome.to_json(), status=422 if outcome.problems else 200)

    def _thread_meter(self) -> ClockMeter:
        """The port thread's meter for the configuration in force."""
        current = self.parts.running.current
        if self._ticket_meter is None or self._ticket_meter[0] is not current:
            self._ticket_meter = (current, ClockMeter(current.config))
        return self._ticket_meter[1]

    async def _database_finding(self) -> str:
        """The database check, made at most once a ``READY_CACHE_S`` and shared meanwhile."""
        found = self._database_found
        if found is not None and asyncio.get_running_loop().time() - found[0] < READY_CACHE_S:
            return found[1]
        if self._database_probe is None:
            self._database_probe = asyncio.create_task(self._probe_database())
        # Shielded: a prober that gives up must not cancel the check the others wait for.
        return await asyncio.shield(self._database_probe)

    async def _probe_database(self) -> str:
        try:
            finding = await self._check(self._database)
        finally:
            self._database_probe = None
        self._database_found = (asyncio.get_running_loop().time(), finding)
        return finding

    @staticmethod
    async def _check(probe: Callable[[], Awaitable[str]]) -> str:
        try:
            return await asyncio.wait_for(probe(), READY_TIMEOUT_S)
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001 - reported to the prober, not raised
            return f"unreachable: {exc.__class__.__name__}"

    async def _database(self) -> str:
        if self.parts.tickets is None:
            return "not connected yet"
        # A connection of its own: the pool's few are busy with intake, the scheduler
        # and the sender while a backlog drains, and a probe waiting for one would call
        # a working engine unready.
        await ping(self.parts.database_url, READY_TIMEOUT_S)
        return "ok"

    async def _broker(self) -> str:
        broker = self.parts.broker
        if broker is None:
            return "not connected yet"
        return "ok" if broker.connected.is_set() and not broker.is_closed else "reconnecting"

    async def _ticket(self, request: web.Request) -> web.Response:
        ticket_id = request.match_info["ticket_id"]
        try:
            _TICKET_ID.validate_python(ticket_id)
        except ValidationError as exc:
            # Refused before the database sees it: PostgreSQL refuses a NUL in text with
            # an error that would otherwise be a 500.
            reason = exc.errors()[0]["msg"]
            return _problem(400, f"not a ticket id of the event contract: {reason}")
        tickets = self.parts.tickets
        if tickets is None:
            return _not_connected()
        try:
            rows = await tickets.ticket(ticket_id)
        except _READ_FAILED as exc:
            return _read_failed(exc)
        if rows is None:
            return _problem(404, f"no ticket {ticket_id!r}: no event of it was recorded")
        # Off the loop, and after the connection went back to the pool: a ticket with
        # thousands of events takes a second to measure.
        version = self.parts.running.current.version
        measure = partial(
            measure_ticket, self._thread_meter(), ticket_id, rows, datetime.now(UTC), version
        )
        return await self._json_off_loop(measure)

    async def _worklist(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        try:
            query = worklist_query(request.query, [key for key, _ in request.query.items()], now)
        except BadRequest as exc:
            return _problem(400, str(exc))
        reads = self.parts.tickets
        if reads is None:
            return _not_connected()
        try:
            keys = await reads.worklist(query)
            rows = await reads.tickets([key.ticket_id for key in keys[: query.limit - 1]])
        except _READ_FAILED as exc:
            return _read_failed(exc)
        page = partial(worklist_page, self._thread_meter(), query, keys, rows)
        return await self._json_off_loop(page)

    async def _department(self, request: web.Request) -> web.Response:
        department = request.match_info["department_id"]
        if department not in self.parts.meter.config.departments:
            return _problem(404, f"no department {department!r} in the configuration")
        return await self._compliance(request, department=department)

    async def _function(self, request: web.Request) -> web.Response:
        function = request.match_info["function_id"]
        if function not in self.parts.meter.config.provider.functions:
            return _problem(404, f"no provider function {function!r} in the configuration")
        return await self._compliance(request, function=function)

    async def _compliance(
        self, request: web.Request, *, department: str | None = None, function: str | None = None
    ) -> web.Response:
        now = datetime.now(UTC)
        try:
            once([key for key, _ in request.query.items()])
            start, end = _period(request.query, now)
        except BadRequest as exc:
            return _problem(400, str(exc))
        reads = self.parts.tickets
        if reads is None:
            return _not_connected()
        names = Names(self.parts.meter.config)
        reading = asyncio.timeout(self.parts.read_timeout_s)
        try:
            async with reading:
                outcomes = await clock_outcomes(reads, start, end, now, department, function)
                # The requesters rate a department's service, not a function's work.
                satisfaction = (
                    await satisfaction_of_period(reads, start, end, department)
                    if function is None
                    else None
                )
        except _READ_FAILED as exc:
            return _read_failed(exc, cut=reading.expired())
        period = f"tickets created in [{start.isoformat()}, {end.isoformat()})"
        # A function's clocks are its OLA clocks only (the store's choice): no SLA rows.
        count = partial(report_json, outcomes, period, satisfaction=satisfaction, names=names)
        return await self._json_off_loop(count)

    async def _sheets_moved(self, request: web.Request) -> web.Response:
        # The pages link to each other relatively: the index must be read as a folder.
        raise web.HTTPPermanentRedirect(
            request.rel_url.with_path("/departments/").with_query(request.query)
        )

    async def _sheet_index(self, request: web.Request) -> web.Response:
        try:
            language, suffix = _sheet_language(request)
        except BadRequest as exc:
            return _problem(400, str(exc))
        config = self.parts.meter.config
        page = render_index(
            config,
            fmt="html",
            language=language,
            href=lambda d: f"{d or './'}{suffix}",
            at=datetime.now(UTC),
        )
        return _html(page, language)

    async def _sheet(self, request: web.Request) -> web.Response:
        department = request.match_info["department_id"]
        config = self.parts.meter.config
        if department not in config.departments:
            return _problem(404, f"no department {department!r} in the configuration")
        try:
            language, suffix = _sheet_language(request)
        except BadRequest as exc:
            return _problem(400, str(exc))
        # The holidays listed are this year's where the departments are; the version
        # shown is the one in force now.
        now = datetime.now(DATE_ZONE)
        page = render_department(
            config,
            department,
            fmt="html",
            language=language,
            year=now.year,
            href=lambda d: f"{d or './'}{suffix}",
            at=now,
        )
        return _html(page, language)

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def _json_off_loop(self, work: Callable[[], Any]) -> web.Response:
        """A JSON answer made in the port's thread, after the connection went back to the
        pool: the work, and the text too (a worklist page of 200 tickets is 400 kB)."""
        text = await asyncio.get_running_loop().run_in_executor(
            self._measuring, lambda: json.dumps(work())
        )
        return web.Response(text=text, content_type="application/json")


# Headers a reverse proxy adds to what it relays (RFC 7239, the de facto X-Forwarded-*
# and X-Real-IP, and the Via every HTTP proxy must add): a caller on this host sends none.
_PROXY_HEADERS = ("Forwarded", "Via", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
# What a read of the database may fail with and the port answers 503 to: the database
# away, no connection of the port's free in time (TimeoutError), the port's pool closing
# as the engine stops (InterfaceError), or a statement cancelled at the timeout.
_READ_FAILED = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.QueryCanceledError,
)


def _loopback(remote: str | None) -> bool:
    """Whether a peer address is this host's loopback (IPv4, IPv6, or IPv4 mapped in v6)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _not_connected() -> web.Response:
    return _problem(503, "the engine is not connected to its database yet")


def _read_failed(exc: BaseException, *, cut: bool = False) -> web.Response:
    """The 503 problem of a failed read; ``cut``: the request's own time ran out."""
    if cut or isinstance(exc, asyncpg.QueryCanceledError):
        return _problem(
            503,
            "the query took longer than the port allows (SLA_ENGINE_HTTP_STATEMENT_TIMEOUT_S):"
            " narrow it (more filters, a shorter period) or try again when the engine is less"
            " busy",
        )
    if isinstance(exc, TimeoutError):
        return _problem(
            503,
            "no database connection of the port was free in time (SLA_ENGINE_HTTP_DB_"
            "CONNECTIONS, all busy), or the database does not answer: try again",
        )
    return _problem(503, f"the database is unreachable: {exc.__class__.__name__}")


def _period(query: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """``[from, to)`` of a compliance query: this month so far by default."""
    unknown = sorted(set(query) - {"from", "to"})
    if unknown:
        raise BadRequest(f"unknown parameter: {', '.join(unknown)}; give from and to")
    try:
        local = now.astimezone(DATE_ZONE)
        month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        start = parse_instant(query["from"]) if "from" in query else month
        end = parse_instant(query["to"]) if "to" in query else now
        check_window(start, end)
    except ValueError as exc:
        raise BadRequest(f"from/to: {exc}") from None
    return start, end


def _sheet_language(request: web.Request) -> tuple[Language, str]:
    """The page's language, from ``?lang=`` or else ``Accept-Language``, and the query its
    links carry on: a language asked for in the address stays chosen page after page."""
    unknown = sorted(set(request.query) - {"lang"})
    if unknown:
        raise BadRequest(f"unknown parameter: {', '.join(unknown)}; give lang")
    asked = request.query.getall("lang", [])
    if len(asked) > 1:
        raise BadRequest("give lang once")
    if not asked:
        return choose_language(request.headers.get("Accept-Language")), ""
    for language in LANGUAGES:
        if asked[0] == language:
            return language, f"?lang={language}"
    raise BadRequest(f"lang: {asked[0]!r} is not one of {', '.join(LANGUAGES)}")


# The pages need no script and load nothing: a policy that allows neither keeps a name
# from the configuration harmless even if escaping ever missed one.
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def _html(page: str, language: Language) -> web.Response:
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Language": language,
            "Vary": "Accept-Language",
            "Content-Security-Policy": _PAGE_POLICY,
        },
    )


def _problem(status: int, detail: str) -> web.Response:
    """An RFC 9457 problem document."""
    return web.json_response(
        {"status": status, "title": HTTPStatus(status).phrase, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )
