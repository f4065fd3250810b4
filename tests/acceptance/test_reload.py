"""Reloading the configuration of the engine as a process: SIGHUP and ``sla-engine reload``.

A changed target applies to tickets created after the reload and not to those before;
an invalid file is refused with check-config's file:line problems, in the log and in the
command's output, and the engine runs on as it was; reloads in the middle of a stream
lose and double no event; the command's exit status tells each outcome apart.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest

from engine.config import load_versioned
from engine.intake.publish import publish_events
from engine.ops.reload_client import EXIT_REFUSED, EXIT_UNAVAILABLE
from tests.acceptance.conftest import start
from tests.acceptance.test_daemon import all_recorded, events_in
from tests.acceptance.test_operations import scrape, value
from tests.daemons import SLA_ENGINE, Daemon
from tests.helpers import REPO, EditYaml
from tests.services import AMQP_URL, get_json, poll
from tests.streams import FUTURE_MONDAY, event, lines, stream

pytestmark = pytest.mark.acceptance


@pytest.fixture
def reload_env(daemon_env: dict[str, str], config_dir: Path) -> dict[str, str]:
    """An engine on a copy of the example configuration, which the test edits."""
    return {**daemon_env, "SLA_ENGINE_CONFIG_DIR": str(config_dir)}


def payroll_response(target: str) -> Callable[[Any], None]:
    """OKF's payroll service (Opus Løn) gets a P1 response target of ``target``."""

    def change(data: Any) -> None:
        data["departments"][0]["services"]["opus-loen"]["targets"]["P1"]["response"] = target

    return change


def payroll_ticket(ticket: str, minutes: int = 0) -> dict[str, Any]:
    at = FUTURE_MONDAY + timedelta(minutes=minutes)
    return event("ticket.created", ticket, 0, at, department="okf", service="opus-loen",
                 priority="P1", subject="Løn", requester={"name": "Lønkonsulent"})  # fmt: skip


async def readyz_version(engine: Daemon) -> str:
    _, ready = await get_json(f"{engine.url}/readyz")
    version: str = ready["config"]["version"]
    return version


async def response_target_s(engine: Daemon, ticket: str) -> float | None:
    """The ticket's response target as the engine measures it; None before it is recorded."""
    status, state = await get_json(f"{engine.url}/tickets/{ticket}")
    if status != 200 or not state["clocks"]:
        return None
    (clock,) = [clock for clock in state["clocks"] if clock["key"] == "response"]
    target: float = clock["target_s"]
    return target


async def targets_are(engine: Daemon, expected: dict[str, float]) -> None:
    async def measured() -> bool:
        return {t: await response_target_s(engine, t) for t in expected} == expected

    await poll(measured, what=f"response targets {expected}")


def logged_all(engine: Daemon, name: str) -> list[dict[str, Any]]:
    return [e for e in engine.events() if e["event"] == name]


async def reloads_logged(engine: Daemon, name: str, count: int) -> dict[str, Any]:
    """Wait for the ``count``-th log line ``name``; return it."""

    async def there() -> bool:
        return len(logged_all(engine, name)) >= count

    await poll(there, what=f"{count} log lines {name}")
    return logged_all(engine, name)[count - 1]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


async def run_cli(env: dict[str, str], *args: str) -> Ran:
    process = await asyncio.create_subprocess_exec(
        SLA_ENGINE, *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


async def test_sighup_puts_a_new_target_in_force_for_tickets_created_after_it(
    daemons: list[Daemon],
    reload_env: dict[str, str],
    config_dir: Path,
    edit_yaml: EditYaml,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    engine = await start(daemons, reload_env, tmp_path)
    first = load_versioned(config_dir).version
    assert await readyz_version(engine) == first
    started = engine.logged("engine.started")
    assert started is not None
    assert started["config_version"] == first
    await publish_events(lines([payroll_ticket("BEFORE")]), AMQP_URL)
    await targets_are(engine, {"BEFORE": 900})  # 15 minutes

    edit_yaml("departments/okf.yaml", payroll_response("30m"))
    second = load_versioned(config_dir).version
    engine.process.send_signal(signal.SIGHUP)
    reloaded = await reloads_logged(engine, "config.reloaded", 1)
    assert (reloaded["version"], reloaded["previous"]) == (second, first)
    assert await readyz_version(engine) == second
    samples = await scrape(engine)
    assert value(samples, "sla_engine_config_info", version=second) == 1
    assert value(samples, "sla_engine_config_info", version=first) is None

    # A new ticket, and a new event of the old one, which measures it again.
    assigned = event("ticket.assigned", "BEFORE", 1, FUTURE_MONDAY + timedelta(minutes=1),
                     function="server-network")  # fmt: skip
    await publish_events(lines([payroll_ticket("AFTER", 2), assigned]), AMQP_URL)
    await targets_are(engine, {"BEFORE": 900, "AFTER": 1800})

    async def assigned_recorded() -> bool:
        _, state = await get_json(f"{engine.url}/tickets/BEFORE")
        return bool(state["events"] == 2)

    await poll(assigned_recorded, what="the old ticket's second event")
    assert await response_target_s(engine, "BEFORE") == 900
    assert await engine.terminate() == 0


async def test_an_invalid_file_is_refused_and_the_engine_runs_on_as_it_was(
    daemons: list[Daemon],
    reload_env: dict[str, str],
    config_dir: Path,
    edit_yaml: EditYaml,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    engine = await start(daemons, reload_env, tmp_path)
    cli_env = {**reload_env, "SLA_ENGINE_HTTP_PORT": str(engine.port)}
    version = load_versioned(config_dir).version
    await publish_events(lines([payroll_ticket("RUNNING")]), AMQP_URL)
    await targets_are(engine, {"RUNNING": 900})

    good = (config_dir / "departments/okf.yaml").read_bytes()
    path = edit_yaml("departments/okf.yaml", payroll_response("soon"))
    checked = await run_cli(reload_env, "check-config", str(config_dir))
    assert checked.code == 1
    problems = [line.strip() for line in checked.stderr.splitlines()[1:]]
    assert problems
    assert any(problem.startswith(f"{path}:") for problem in problems), problems

    refused = await run_cli(cli_env, "reload")
    assert refused.code == EXIT_REFUSED, refused
    assert f"refused: the engine keeps configuration version {version}" in refused.stderr
    assert [line.strip() for line in refused.stderr.splitlines()[1:]] == problems
    logged = await reloads_logged(engine, "config.reload_refused", 1)
    assert (logged["problems"], logged["version"], logged["trigger"]) == (problems, version, "http")

    engine.process.send_signal(signal.SIGHUP)
    by_signal = await reloads_logged(engine, "config.reload_refused", 2)
    assert (by_signal["problems"], by_signal["trigger"]) == (problems, "SIGHUP")

    # The old configuration stays in force: for the running clock and a new ticket.
    assert await readyz_version(engine) == version
    await publish_events(lines([payroll_ticket("NEW", 1)]), AMQP_URL)
    await targets_are(engine, {"RUNNING": 900, "NEW": 900})
    samples = await scrape(engine)
    assert value(samples, "sla_engine_config_reloads_refused_total") == 2
    assert value(samples, "sla_engine_config_last_reload_successful") == 0
    assert value(samples, "sla_engine_config_info", version=version) == 1

    # The file put back as it was: the version in force is on disk again.
    path.write_bytes(good)
    unchanged = await run_cli(cli_env, "reload")
    assert unchanged.code == 0, unchanged
    assert unchanged.stdout.strip() == (
        f"unchanged: the engine already runs configuration version {version}"
    )
    samples = await scrape(engine)
    assert value(samples, "sla_engine_config_last_reload_successful") == 1

    edit_yaml("departments/okf.yaml", payroll_response("30m"))
    reloaded = await run_cli(cli_env, "reload")
    new = load_versioned(config_dir).version
    assert (reloaded.code, reloaded.stdout.strip()) == (
        0,
        f"reloaded: configuration version {version} -> {new}",
    ), reloaded

    assert await engine.terminate() == 0
    gone = await run_cli(cli_env, "reload")
    assert gone.code == EXIT_UNAVAILABLE, gone
    assert f"no engine answered at http://127.0.0.1:{engine.port}/reload" in gone.stderr


async def test_reloads_during_a_stream_lose_and_double_no_event(
    daemons: list[Daemon],
    reload_env: dict[str, str],
    config_dir: Path,
    edit_yaml: EditYaml,
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    events = stream(800, seed=19)
    engine = await start(daemons, reload_env, tmp_path)
    publisher = asyncio.create_task(publish_events(lines(events), AMQP_URL))

    async def some() -> bool:
        return await events_in(database_url) >= 300

    await poll(some, what="the first events to be recorded")
    # Each reload a real swap: the target changes back and forth.
    at_reloads = []
    for n, target in enumerate(["30m", "15m", "45m", "15m", "20m"], start=1):
        edit_yaml("departments/okf.yaml", payroll_response(target))
        engine.process.send_signal(signal.SIGHUP)
        await reloads_logged(engine, "config.reloaded", n)
        at_reloads.append(await events_in(database_url))
    await publisher
    assert at_reloads[0] < len(events), "the stream was recorded before the first reload"
    await all_recorded(database_url, len(events), timeout_s=120)
    connection = await asyncpg.connect(database_url)
    try:
        distinct = await connection.fetchval("SELECT count(DISTINCT event_id) FROM events")
        tickets = await connection.fetchval("SELECT count(DISTINCT ticket_id) FROM clocks")
    finally:
        await connection.close()
    assert (distinct, tickets) == (len(events), 800)
    assert logged_all(engine, "config.reload_refused") == []
    samples = await scrape(engine)
    assert value(samples, "sla_intake_duplicates_total") in (None, 0)
    assert not [name for (name, _), _ in samples.items() if name.startswith("sla_intake_dead")]
    assert await readyz_version(engine) == load_versioned(config_dir).version
    assert await engine.terminate() == 0
