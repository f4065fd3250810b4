"""The HTTP port against the real PostgreSQL: readiness probes, ticket ids, a loop kept free,
the worklist, compliance, and answers held to the committed OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.config import load_versioned
from engine.daemon import port_reads_pool
from engine.events import parse_event
from engine.intake.recorder import Recorder
from engine.ops import http_port
from engine.ops.http_port import HttpPort, Parts
from engine.running import ConfigInForce, RunningConfig
from engine.settings import Settings
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from tests.daemons import SLA_ENGINE
from tests.helpers import EXAMPLE_CONFIG
from tests.integration.conftest import RunningEngine
from tests.openapi_check import DOCUMENT, model_errors
from tests.services import get_json, poll
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
RUNNING = RunningConfig(ConfigInForce(load_versioned(EXAMPLE_CONFIG), datetime.now(UTC)))
METER = RUNNING.meter()
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)


@pytest.fixture
async def port(database_url: str) -> AsyncIterator[HttpPort]:
    """The HTTP port on a free port, connected to a migrated pool, intake not consuming."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    async with pool.acquire() as connection:
        await migrate(connection)
    serving = HttpPort(Parts(RUNNING, database_url, tickets=PostgresReads(pool)), "127.0.0.1", 0)
    await serving.start()
    yield serving
    await serving.stop()
    await pool.close()


def url(port: HttpPort, path: str) -> str:
    return f"http://127.0.0.1:{port.port}{path}"


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the readiness probe's own connections; the pool opened its own before."""
    opened = [0]
    real = asyncpg.connect

    async def counted(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        opened[0] += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", counted)
    return opened


async def test_concurrent_readiness_probes_share_one_database_check(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_port, "READY_CACHE_S", 60.0)  # no expiry during the test
    opened = count_connects(monkeypatch)
    async with aiohttp.ClientSession() as session:

        async def probe() -> tuple[int, Any]:
            async with session.get(url(port, "/readyz")) as response:
                return response.status, await response.json()

        answers = await asyncio.gather(*(probe() for _ in range(50)))
        answers += [await probe() for _ in range(10)]  # later ones: from the cache
    assert opened[0] == 1
    # Not ready (intake does not consume here), with the database found answering.
    assert {status for status, _ in answers} == {503}
    assert all(body["checks"]["database"] == "ok" for _, body in answers)


async def test_readiness_checks_the_database_again_after_a_second(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert http_port.READY_CACHE_S == 1.0
    monkeypatch.setattr(http_port, "READY_CACHE_S", 0.2)
    opened = count_connects(monkeypatch)
    await get_json(url(port, "/readyz"))
    assert opened[0] == 1

    async def checked_again() -> bool:
        await get_json(url(port, "/readyz"))
        return opened[0] == 2

    await poll(checked_again, timeout_s=10, what="a second database check")


async def test_readiness_reports_a_failed_check_and_probes_again_later(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_port, "READY_CACHE_S", 0.2)
    real = asyncpg.connect

    async def refused(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        raise ConnectionRefusedError("no database here")

    monkeypatch.setattr(asyncpg, "connect", refused)
    status, body = await get_json(url(port, "/readyz"))
    assert (status, body["checks"]["database"]) == (503, "unreachable: ConnectionRefusedError")
    monkeypatch.setattr(asyncpg, "connect", real)

    async def recovered() -> bool:
        _, body = await get_json(url(port, "/readyz"))
        return bool(body["checks"]["database"] == "ok")

    await poll(recovered, timeout_s=10, what="the database found answering again")


@pytest.mark.parametrize(
    "ticket_id", ["%00", "T-1%00", "T%0A1", "-T-1", "T%201", "%C3%A6", "T" * 65, "T%2F1"]
)
async def test_ids_the_event_contract_refuses_answer_400(port: HttpPort, ticket_id: str) -> None:
    status, problem = await get_json(url(port, f"/tickets/{ticket_id}"))
    assert status == 400
    assert problem["status"] == 400
    assert problem["detail"].startswith("not a ticket id of the event contract: ")


async def test_a_valid_unknown_id_is_still_404(port: HttpPort) -> None:
    status, problem = await get_json(url(port, "/tickets/T-2026.1:x_" + "9" * 50))
    assert (status, problem["status"]) == (404, 404)


async def test_a_ticket_is_measured_off_the_event_loop(
    port: HttpPort, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many events, as a long-lived ticket has: created, then public comments.
    created = event("ticket.created", "BIG-1", 0, MONDAY, department="okf",
                    service="opus-loen", priority="P3", subject="Løn",
                    requester={"name": "B"})  # fmt: skip
    comments = [
        event(
            "ticket.commented",
            "BIG-1",
            seq,
            MONDAY + timedelta(seconds=seq),
            visibility="public",
            body=f"kommentar {seq}",
        )
        for seq in range(1, 1500)
    ]
    connection = await asyncpg.connect(database_url)
    try:
        events = [parse_event(json.dumps(e)) for e in [created, *comments]]
        await Recorder(METER, PostgresRecordingStore(connection)).record(events, datetime.now(UTC))
    finally:
        await connection.close()

    # The measurement waits for the test's /healthz answer: on the loop it could not get
    # one, and would go on after the wait, unreleased.
    measuring, release = threading.Event(), threading.Event()
    released: list[bool] = []
    measure = ClockMeter.measure

    def held(self: ClockMeter, *args: Any, **kwargs: Any) -> Any:
        measuring.set()
        released.append(release.wait(timeout=5))
        return measure(self, *args, **kwargs)

    monkeypatch.setattr(ClockMeter, "measure", held)
    ticket = asyncio.create_task(get_json(url(port, "/tickets/BIG-1")))

    async def started() -> bool:
        return measuring.is_set()

    await poll(started, timeout_s=10, what="the ticket's measurement to start")
    assert await get_json(url(port, "/healthz")) == (200, {"status": "ok"})
    release.set()
    status, state = await asyncio.wait_for(ticket, 10)
    assert released == [True], "the measurement held the event loop"
    assert status == 200
    assert state["events"] == 1500
    assert {clock["metric"] for clock in state["clocks"]} >= {"response", "resolution"}


async def record(database_url: str, *events: dict[str, Any]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        parsed = [parse_event(json.dumps(e)) for e in events]
        await Recorder(METER, PostgresRecordingStore(connection)).record(parsed, datetime.now(UTC))
    finally:
        await connection.close()


async def worklist_tickets(database_url: str) -> None:
    """OLD: P1, ten days old, never answered (breached); NEW: P4, created now (due later);
    DONE: resolved (no open clock); SOF: another department, assigned to pc-software."""
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=10)
    await record(
        database_url,
        event("ticket.created", "OLD", 0, old, department="okf", service="opus-loen",
              priority="P1", subject="Løn", requester={"name": "B"}),
        event("ticket.created", "NEW", 0, now - timedelta(seconds=5), department="okf",
              service="opus-loen", priority="P4", subject="Løn", requester={"name": "B"}),
        event("ticket.created", "DONE", 0, old, department="okf", service="opus-loen",
              priority="P2", subject="Løn", requester={"name": "B"}),
        event("ticket.responded", "DONE", 1, old + timedelta(minutes=5)),
        event("ticket.status_changed", "DONE", 2, old + timedelta(minutes=9), status="resolved"),
        event("ticket.created", "SOF", 0, old, department="sof", service="omsorgssystem",
              priority="P2", subject="Omsorg", requester={"name": "B"}),
        event("ticket.assigned", "SOF", 1, old + timedelta(minutes=1), function="pc-software",
              team="pc-team-2"),
    )  # fmt: skip


def ids(page: dict[str, Any]) -> list[str]:
    return [item["ticket_id"] for item in page["items"]]


def page_of(answer: tuple[int, Any]) -> list[dict[str, Any]]:
    """The clocks of a GET /tickets/{id} answer that was 200."""
    status, ticket = answer
    assert status == 200, ticket
    clocks: list[dict[str, Any]] = ticket["clocks"]
    return clocks


async def test_the_worklist_answers_open_tickets_by_next_deadline(
    port: HttpPort, database_url: str
) -> None:
    await worklist_tickets(database_url)
    status, page = await get_json(url(port, "/tickets"))
    assert status == 200, page
    assert model_errors("WorklistPage", page) == []
    # The two ten-day-old open tickets breached long ago: first, by their deadlines.
    assert set(ids(page)[:2]) == {"OLD", "SOF"}
    assert ids(page)[2:] == ["NEW"]
    deadlines = [item["next_deadline"] for item in page["items"]]
    assert deadlines == sorted(deadlines)
    assert page["next_cursor"] is None
    new = page["items"][-1]
    assert {clock["key"] for clock in new["clocks"]} == {"response", "resolution"}
    assert all("steps" not in clock for item in page["items"] for clock in item["clocks"])

    # Each row is the ticket as GET /tickets/{id} measures it, without the steps (and
    # without what a measurement at another instant tells otherwise).
    def measured_alike(ticket: dict[str, Any]) -> dict[str, Any]:
        moving = {"as_of", "config_version", "next_deadline"}
        return {
            **{key: value for key, value in ticket.items() if key not in moving},
            "clocks": [
                {k: v for k, v in clock.items() if k not in {"steps", "elapsed_s", "fraction"}}
                for clock in ticket["clocks"]
            ],
        }

    for item in page["items"]:
        _, single = await get_json(url(port, f"/tickets/{item['ticket_id']}"))
        assert model_errors("TicketState", single) == []
        assert measured_alike(item) == measured_alike(single)
    _, single = await get_json(url(port, "/tickets/NEW"))
    assert new["department"] == single["department"] == "okf"
    # It names the configuration that measured it, as /readyz does, and the version of the
    # agreement each clock keeps (the example's ØKF has one, in force from the start).
    _, ready = await get_json(url(port, "/readyz"))
    assert single["config_version"] == ready["config"]["version"]
    assert {clock["agreement_valid_from"] for clock in single["clocks"]} == {None}


async def test_the_worklist_filters_and_pages(port: HttpPort, database_url: str) -> None:
    await worklist_tickets(database_url)
    _, page = await get_json(url(port, "/tickets?department=sof"))
    assert ids(page) == ["SOF"]
    _, page = await get_json(url(port, "/tickets?function=pc-software"))
    assert ids(page) == ["SOF"]
    _, page = await get_json(url(port, "/tickets?breached=false"))
    assert ids(page) == ["NEW"]
    _, page = await get_json(url(port, "/tickets?state=met&scope=all&department=okf"))
    assert ids(page) == ["DONE"]
    _, page = await get_json(url(port, "/tickets?priority=P4&metric=response"))
    assert ids(page) == ["NEW"]
    _, page = await get_json(url(port, "/tickets?service=omsorgssystem"))
    assert ids(page) == ["SOF"]
    _, page = await get_json(url(port, "/tickets?team=pc-team-2"))
    assert ids(page) == ["SOF"]
    _, page = await get_json(url(port, "/tickets?team=nobodys-team"))
    assert ids(page) == []
    _, page = await get_json(url(port, "/tickets?breached=true"))
    assert sorted(ids(page)) == ["OLD", "SOF"]
    _, page = await get_json(url(port, "/tickets?state=breached&department=okf"))
    assert ids(page) == ["OLD"]
    # NEW, created seconds ago, breaches within its targets, the others are past theirs.
    new_deadline = min(
        clock["deadline"] for clock in page_of(await get_json(url(port, "/tickets/NEW")))
        if clock["running"]
    )  # fmt: skip
    within = datetime.fromisoformat(new_deadline) - datetime.now(UTC) + timedelta(hours=1)
    span = f"{int(within.total_seconds() // 3600) + 1}h"
    _, page = await get_json(url(port, f"/tickets?breaching_within={span}"))
    assert ids(page) == ["NEW"]
    _, page = await get_json(url(port, "/tickets?breaching_within=1s"))
    assert ids(page) == []
    seen: list[str] = []
    cursor = ""
    for _ in range(4):
        status, page = await get_json(url(port, f"/tickets?limit=1{cursor}"))
        assert status == 200
        assert len(page["items"]) == 1
        seen += ids(page)
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == ["NEW", "OLD", "SOF"]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1000", "state=late", "departement=okf", "department=okf&department=sof",
     "breaching_within=1d", "cursor=abc", "breached=maybe"],
)  # fmt: skip
async def test_bad_worklist_parameters_are_400_problems(port: HttpPort, query: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url(port, f"/tickets?{query}")) as response,
    ):
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type=None)
    assert model_errors("Problem", problem) == []
    assert problem["status"] == 400
    assert problem["detail"]


async def test_compliance_of_a_department_and_a_function(port: HttpPort, database_url: str) -> None:
    await worklist_tickets(database_url)
    window = "from=2000-01-01&to=2100-01-01"
    status, okf = await get_json(url(port, f"/departments/okf/compliance?{window}"))
    assert status == 200, okf
    assert model_errors("Compliance", okf) == []
    assert {row["department"] for row in okf["sla"]} == {"okf"}
    response = [row for row in okf["sla"] if row["metric"] == "response"]
    # OLD breached its response, DONE met it, NEW's is open.
    assert sum(row["breached"] for row in response) == 1
    assert sum(row["met"] for row in response) == 1
    assert sum(row["open"] for row in response) == 1
    status, function = await get_json(url(port, f"/functions/pc-software/compliance?{window}"))
    assert status == 200
    assert model_errors("Compliance", function) == []
    assert function["sla"] == []
    assert {row["function"] for row in function["ola"]} == {"pc-software"}
    # This month by default: the ten-day-old tickets may or may not be in it; it answers.
    status, default = await get_json(url(port, "/departments/okf/compliance"))
    assert status == 200
    assert default["period"].startswith("tickets created in [")


async def test_a_departments_compliance_is_what_the_report_command_prints(
    port: HttpPort, database_url: str
) -> None:
    await worklist_tickets(database_url)
    done = datetime.now(UTC) - timedelta(days=9)
    await record(database_url, event("ticket.rated", "DONE", 3, done, score=4))
    window = ("2000-01-01", "2100-01-01")
    status, answered = await get_json(
        url(port, f"/departments/okf/compliance?from={window[0]}&to={window[1]}")
    )
    assert status == 200, answered
    assert model_errors("Compliance", answered) == []
    printed = subprocess.run(
        [SLA_ENGINE, "report", "--department", "okf", "--from", window[0], "--to", window[1],
         "--format", "json", "--config", str(EXAMPLE_CONFIG)],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "SLA_ENGINE_DATABASE_URL": database_url},
    )  # fmt: skip
    assert answered == json.loads(printed.stdout)
    # Not two empty documents: the rating, names and totals are there.
    assert [row["ratings"] for row in answered["satisfaction"]] == [1]
    assert {row["department_name"] for row in answered["sla"]} == {"Økonomiforvaltningen"}
    assert [row["tickets"] for row in answered["totals"] if row["service"] is None] == [3]
    status, function = await get_json(
        url(port, f"/functions/pc-software/compliance?from={window[0]}&to={window[1]}")
    )
    assert status == 200
    assert model_errors("Compliance", function) == []
    assert (function["sla"], function["totals"], "satisfaction" in function) == ([], [], False)
    assert {row["function_name"] for row in function["ola"]} == {"PC og Software"}


@pytest.mark.parametrize(
    ("path", "status"),
    [("/departments/nobody/compliance", 404), ("/functions/nobody/compliance", 404),
     ("/departments/okf/compliance?from=yesterday", 400),
     ("/departments/okf/compliance?from=2026-12-01&to=2026-11-01", 400),
     ("/departments/okf/compliance?department=okf", 400)],
)  # fmt: skip
async def test_compliance_refusals_are_problems(port: HttpPort, path: str, status: int) -> None:
    answered, problem = await get_json(url(port, path))
    assert (answered, problem["status"]) == (status, status)
    assert model_errors("Problem", problem) == []


async def test_the_port_serves_its_committed_openapi_document(port: HttpPort) -> None:
    status, document = await get_json(url(port, "/openapi.json"))
    assert (status, document) == (200, DOCUMENT)
    assert document["openapi"] == "3.1.0"
    _, ready = await get_json(url(port, "/readyz"))
    assert model_errors("Readiness", ready) == []
    _, health = await get_json(url(port, "/healthz"))
    assert model_errors("Health", health) == []


async def test_the_ports_own_pool_reads_only_and_cuts_slow_statements(database_url: str) -> None:
    pool = await port_reads_pool(Settings(database_url=database_url, http_statement_timeout_s=0.2))
    try:
        async with pool.acquire() as connection:
            assert await connection.fetchval("SHOW default_transaction_read_only") == "on"
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await connection.execute("CREATE TABLE written_by_the_port (x int)")
            with pytest.raises(asyncpg.QueryCanceledError):
                await connection.execute("SELECT pg_sleep(5)")
            name = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            assert await connection.fetchval(name) == "sla-engine http"
    finally:
        await pool.close()


async def test_the_running_engine_reads_for_the_port_on_connections_of_its_own(
    engine: RunningEngine, settings: Settings, database_url: str
) -> None:
    await worklist_tickets(database_url)
    connection = await asyncpg.connect(database_url)
    port_backends = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'sla-engine http'"
    )
    try:
        # Another test's closed pool may linger in the list: only a new one counts.
        before = {row[0] for row in await connection.fetch(port_backends)}
        status, page = await get_json(f"http://127.0.0.1:{settings.http_port}/tickets")
        assert status == 200, page
        assert ids(page)
        after = {row[0] for row in await connection.fetch(port_backends)}
    finally:
        await connection.close()
    # The port's pool opens its connections when asked (min_size 0): this request's.
    assert after - before


class SlowReads(PostgresReads):
    """Reads whose every statement PostgreSQL cancelled at the statement timeout."""

    async def worklist(self, query: Any) -> Any:
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    async def ticket(self, ticket_id: str) -> Any:
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")


class EndlessPeriod(PostgresReads):
    """A period whose clocks never come (a cursor's fetches, each within the statement
    timeout, that never end); and a worklist read while the port's pool closes."""

    async def clocks_of_period(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.get_running_loop().create_future()  # never done
        yield  # an async generator, as the store's is

    async def worklist(self, query: Any) -> Any:
        raise asyncpg.InterfaceError("cannot call Pool.acquire(): pool is closing")


async def test_a_compliance_read_is_cut_at_the_timeout_of_the_whole(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    parts = Parts(RUNNING, database_url, tickets=EndlessPeriod(pool), read_timeout_s=0.3)
    serving = HttpPort(parts, "127.0.0.1", 0)
    await serving.start()
    try:
        status, problem = await get_json(url(serving, "/departments/okf/compliance"))
        assert (status, problem["status"]) == (503, 503)
        assert "SLA_ENGINE_HTTP_STATEMENT_TIMEOUT_S" in problem["detail"]
        # As the engine stops: a 503 problem, not a 500.
        status, problem = await get_json(url(serving, "/tickets"))
        assert (status, problem["status"]) == (503, 503)
        assert model_errors("Problem", problem) == []
    finally:
        await serving.stop()
        await pool.close()


async def test_a_statement_cut_at_the_timeout_is_a_503_problem(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    serving = HttpPort(Parts(RUNNING, database_url, tickets=SlowReads(pool)), "127.0.0.1", 0)
    await serving.start()
    try:
        for path in ("/tickets", "/tickets/T-1"):
            status, problem = await get_json(url(serving, path))
            assert (status, problem["status"]) == (503, 503), path
            assert model_errors("Problem", problem) == []
            assert "SLA_ENGINE_HTTP_STATEMENT_TIMEOUT_S" in problem["detail"]
    finally:
        await serving.stop()
        await pool.close()


@pytest.mark.parametrize(
    ("path", "held_name"),
    [("/tickets?limit=200", "worklist_page"),
     ("/departments/okf/compliance?from=2000-01-01&to=2100-01-01", "report_json")],
)  # fmt: skip
async def test_a_page_and_the_compliance_are_made_off_the_event_loop(
    port: HttpPort,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    held_name: str,
) -> None:
    await worklist_tickets(database_url)
    # The work waits for the test's /healthz answer, which the loop gives only if the
    # work is not on it.
    working, release = threading.Event(), threading.Event()
    released: list[bool] = []
    work = getattr(http_port, held_name)

    def held(*args: Any, **kwargs: Any) -> Any:
        working.set()
        released.append(release.wait(timeout=5))
        return work(*args, **kwargs)

    monkeypatch.setattr(http_port, held_name, held)
    answer = asyncio.create_task(get_json(url(port, path)))

    async def started() -> bool:
        return working.is_set()

    await poll(started, timeout_s=10, what=f"{held_name} to start")
    assert await get_json(url(port, "/healthz")) == (200, {"status": "ok"})
    release.set()
    status, body = await asyncio.wait_for(answer, 10)
    assert released == [True], f"{held_name} held the event loop"
    assert status == 200, body


async def test_a_cursor_holds_across_tickets_added_between_pages(
    port: HttpPort, database_url: str
) -> None:
    await worklist_tickets(database_url)
    _, first = await get_json(url(port, "/tickets?limit=1"))
    assert len(ids(first)) == 1
    assert first["next_cursor"] is not None
    # Added meanwhile: one overdue since long before (it sorts before the cursor) and one
    # created now with a later deadline than every other (after it).
    long_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    await record(
        database_url,
        event("ticket.created", "BEFORE", 0, long_ago, department="okf", service="opus-loen",
              priority="P1", subject="Løn", requester={"name": "B"}),
        event("ticket.created", "AFTER", 0, datetime.now(UTC) - timedelta(seconds=1),
              department="okf", service="opus-loen", priority="P4", subject="Løn",
              requester={"name": "B"}),
    )  # fmt: skip
    seen, cursor = ids(first), first["next_cursor"]
    while cursor is not None:
        status, page = await get_json(url(port, f"/tickets?limit=1&cursor={cursor}"))
        assert status == 200, page
        seen += ids(page)
        cursor = page["next_cursor"]
    assert "BEFORE" not in seen  # behind the cursor: shown again from the first page
    assert len(seen) == len(set(seen))  # nothing repeated
    assert sorted(seen) == ["AFTER", "NEW", "OLD", "SOF"]
    _, again = await get_json(url(port, "/tickets?limit=1"))
    assert ids(again) == ["BEFORE"]
