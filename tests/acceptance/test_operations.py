"""What operations see of a running engine: its HTTP port, its logs, and a real
Prometheus scraping it (Debian's package, as `make test` installs it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engine.cli import EXIT_CONFIG
from engine.intake import topology
from engine.intake.publish import publish_events
from tests.acceptance.conftest import short_sof_response, start
from tests.daemons import SLA_ENGINE, Daemon
from tests.helpers import REPO, EditYaml
from tests.services import AMQP_URL, free_port, get_json, get_text, poll
from tests.streams import CPH, event, lines

pytestmark = pytest.mark.acceptance
TARGET_S = 20  # SOF mobile phones, P1 response, in this test's configuration
LAST_STEP = 1.5  # the critical-care policy's last step
DASHBOARD = REPO / "deploy/grafana/dashboards/sla-engine.json"
ALERTS = REPO / "deploy/prometheus/alerts.yml"
# Grafana's own variables, as Grafana would fill them in for a query
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                     "$department": ".*"}  # fmt: skip


@pytest.fixture
def ops_env(daemon_env: dict[str, str], config_dir: Path, edit_yaml: EditYaml) -> dict[str, str]:
    """A 20-second P1 response at SOF, and gauges refreshed twice a second."""
    short_sof_response(edit_yaml, TARGET_S, 15)
    return {**daemon_env, "SLA_ENGINE_CONFIG_DIR": str(config_dir),
            "SLA_ENGINE_GAUGES_REFRESH_S": "0.5"}  # fmt: skip


def phone_ticket(ticket: str, at: datetime, seq: int = 0) -> dict[str, Any]:
    """A P1 ticket on SOF's carers' phones, created at ``at`` (the 24/7 calendar)."""
    return event("ticket.created", ticket, seq, at.astimezone(CPH), department="sof",
                 service="mobiltelefoni", priority="P1", subject="Telefonen virker ikke",
                 requester={"name": "Hjemmeplejer"})  # fmt: skip


def every_step_past() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=TARGET_S * LAST_STEP + 2)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape(daemon: Daemon) -> Samples:
    return parse_metrics(await get_text(f"{daemon.url}/metrics"))


async def test_the_http_port_serves_health_metrics_and_ticket_state(
    daemons: list[Daemon],
    ops_env: dict[str, str],
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    engine = await start(daemons, ops_env, tmp_path)
    assert await get_json(f"{engine.url}/healthz") == (200, {"status": "ok"})
    status, ready = await get_json(f"{engine.url}/readyz")
    assert (status, ready["checks"]) == (200, {"database": "ok", "broker": "ok", "intake": "ok"})

    created = every_step_past()
    # Responded at 3 s, before its first step (a quarter of 20 s) fell due.
    responded = event("ticket.responded", "OPS-1", 1, created + timedelta(seconds=3))
    await publish_events(lines([phone_ticket("OPS-1", created), responded]), AMQP_URL)
    await publish_events([b"{not json", json.dumps({"ticket_id": "X"}).encode()], AMQP_URL)

    last: Samples = {}

    async def counted() -> bool:
        samples = await scrape(engine)
        last.update(samples)  # shown if the wait times out
        # The counters move after the commit, the gauges at a refresh: wait for both.
        return (value(samples, "sla_intake_dead_letters_total", reason="invalid") == 1
                and value(samples, "sla_intake_events_total", type="ticket.responded",
                          channel="web") == 1
                and value(samples, "sla_intake_queue_messages", queue=topology.DEAD_LETTER_QUEUE)
                == 2
                and value(samples, "sla_open_clocks", department="sof", metric="resolution",
                          agreement="sla", state="running") == 1)  # fmt: skip

    try:
        await poll(counted, what="intake counted and the gauges refreshed")
    except AssertionError:
        print({k: v for k, v in last.items() if k[0].startswith("sla_")})
        raise
    samples = await scrape(engine)
    assert value(samples, "sla_intake_events_total", type="ticket.created", channel="web") == 1
    assert value(samples, "sla_intake_events_total", type="ticket.responded", channel="web") == 1
    assert value(samples, "sla_intake_dead_letters_total", reason="malformed") == 1
    # The response stopped at 3 of its 20 seconds: one observation, in the 20 s bucket.
    response = {"metric": "response", "agreement": "sla"}
    assert value(samples, "sla_business_time_used_seconds_count", **response) == 1
    assert value(samples, "sla_business_time_used_seconds_sum", **response) == 3
    assert value(samples, "sla_business_time_used_seconds_bucket", **response, le="20.0") == 1
    assert value(samples, "sla_month_stopped_clocks", department="sof", metric="response",
                 agreement="sla", outcome="met") == 1  # fmt: skip
    assert value(samples, "sla_intake_queue_messages", queue=topology.QUEUE) == 0
    assert 0 < (value(samples, "sla_store_refresh_duration_seconds") or 0) < 5
    build = [key for key in samples if key[0] == "sla_engine_build_info"]
    assert len(build) == 1
    assert dict(build[0][1])["version"]
    assert not any("OPS-1" in str(labels) for _, labels in samples)  # never a ticket id

    status, state = await get_json(f"{engine.url}/tickets/OPS-1")
    assert status == 200
    clocks = {clock["metric"]: clock for clock in state["clocks"]}
    assert (clocks["response"]["state"], clocks["response"]["elapsed_s"]) == ("met", 3)
    assert clocks["resolution"]["state"] == "running"
    assert clocks["resolution"]["deadline"] is not None
    # No step of the response stands: it was met before the first fell due. The two
    # events may be recorded in one batch (every step pending) or in two, when the
    # scheduler can fire a step on the creation alone before the response arrives
    # and supersedes it (seen once in `make test`): either way none stands fired.
    statuses = {step["status"] for step in clocks["response"]["steps"]}
    assert statuses
    assert statuses <= {"pending", "superseded"}
    status, problem = await get_json(f"{engine.url}/tickets/NO-SUCH-TICKET")
    assert (status, problem["status"]) == (404, 404)


async def test_not_ready_while_the_database_is_unreachable(
    daemons: list[Daemon], daemon_env: dict[str, str], tmp_path: Path
) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/sla_engine"
    engine = Daemon({**daemon_env, "SLA_ENGINE_DATABASE_URL": nowhere}, tmp_path / "engine.log")
    daemons.append(engine)

    async def waiting() -> bool:
        assert engine.process.poll() is None, engine.log_path.read_text()
        return engine.logged("store.unavailable") is not None

    await poll(waiting, what="the engine to wait for its database")
    assert await get_json(f"{engine.url}/healthz") == (200, {"status": "ok"})
    status, ready = await get_json(f"{engine.url}/readyz")
    assert status == 503
    assert ready["checks"]["database"] == "not connected yet"
    assert ready["status"] == "not ready"
    assert await engine.terminate() == 0


def test_an_http_port_in_use_is_a_clear_error(daemon_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**daemon_env, "SLA_ENGINE_HTTP_PORT": str(port)}
        result = subprocess.run([SLA_ENGINE, "run"], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == EXIT_CONFIG  # not restarted by systemd: it would not help
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "SLA_ENGINE_HTTP_PORT" in result.stderr


async def test_logs_are_json_lines_with_ticket_ids_and_no_secrets(
    daemons: list[Daemon],
    daemon_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    # PostgreSQL trusts local connections, so a password in the URL is accepted and unused.
    secrets = {"db": "pg-hemmeligt-1", "smtp": "smtp-hemmeligt-2", "hook": "hook-hemmeligt-3"}
    with_password = database_url.replace("postgres@", f"postgres:{secrets['db']}@")
    env = {**daemon_env, "SLA_ENGINE_DATABASE_URL": with_password,
           "SLA_ENGINE_SMTP_HOST": "127.0.0.1", "SLA_ENGINE_SMTP_PORT": str(free_port()),
           "SLA_ENGINE_SMTP_USERNAME": "sla", "SLA_ENGINE_SMTP_PASSWORD": secrets["smtp"],
           # A relay on this machine: a login without TLS is allowed for it, explicitly.
           "SLA_ENGINE_SMTP_ALLOW_PLAIN_AUTH": "true",
           "SLA_ENGINE_WEBHOOK_SECRET": secrets["hook"]}  # fmt: skip
    assert secrets["db"] in env["SLA_ENGINE_DATABASE_URL"]
    engine = await start(daemons, env, tmp_path)
    unknown = event("ticket.created", "LOG-1", 0, datetime.now(CPH), department="nowhere",
                    service="esdh", priority="P1", subject="x")  # fmt: skip
    await publish_events(lines([unknown]), AMQP_URL)

    async def refused() -> bool:
        return engine.logged("intake.dead_lettered") is not None

    await poll(refused, what="the unknown department dead-lettered")
    line = engine.logged("intake.dead_lettered")
    assert line is not None
    assert (line["ticket_id"], line["event_id"]) == ("LOG-1", unknown["event_id"])
    assert line["kind"] == "unknown_reference"
    assert await engine.terminate() == 0
    text = engine.log_path.read_text()
    assert all(line.startswith("{") for line in text.splitlines()), "not JSON lines"
    for secret in secrets.values():
        assert secret not in text
    assert "guest:guest" not in text  # the broker's password in its URL


class Prometheus:
    """A real Prometheus server scraping the engine every second, with the alert rules."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "no prometheus binary: `make test` installs Debian's prometheus package"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": "sla-engine", "static_configs": [{"targets": [target]}]}
            ],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "prometheus.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def api(self, path: str) -> Any:
        status, body = await get_json(f"{self.url}/api/v1/{path}")
        assert self.process.poll() is None, self.log_path.read_text()
        return body if status == 200 else None

    async def query(self, expr: str) -> list[dict[str, Any]] | None:
        body = await self.api(f"query?query={quote(expr)}")
        return None if body is None else body["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def prometheus_of(tmp_path: Path) -> Iterator[list[Prometheus]]:
    servers: list[Prometheus] = []
    yield servers
    for server in servers:
        server.stop()


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = []
    for panel in panels:
        for inner in [panel, *panel.get("panels", [])]:
            queries += [target["expr"] for target in inner.get("targets", []) if "expr" in target]
    return queries


def alert_queries() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def grafana_filled(expr: str) -> str:
    for variable, replacement in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, replacement)
    return expr


async def test_prometheus_scrapes_a_breach_and_raises_its_alert(
    daemons: list[Daemon],
    ops_env: dict[str, str],
    tmp_path: Path,
    prometheus_of: list[Prometheus],
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    engine = await start(daemons, ops_env, tmp_path)
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{engine.port}")
    prometheus_of.append(prometheus)

    async def scraping() -> bool:
        up = await prometheus.query('up{job="sla-engine"}') or []
        return bool(up) and up[0]["value"][1] == "1"

    await poll(scraping, 60, what="Prometheus to scrape the engine")
    await publish_events(lines([phone_ticket("PROM-1", every_step_past())]), AMQP_URL)

    async def breach_seen() -> bool:
        return bool(await prometheus.query("sla_breaches_total"))

    await poll(breach_seen, 60, what="the breach in Prometheus")
    [breach] = await prometheus.query("sla_breaches_total") or []
    labels = {k: v for k, v in breach["metric"].items() if k not in ("instance", "job")}
    assert labels == {"__name__": "sla_breaches_total", "department": "sof",
                      "service": "mobiltelefoni", "priority": "P1", "metric": "response",
                      "agreement": "sla"}  # fmt: skip
    assert breach["value"][1] == "1"

    async def alerted() -> bool:
        body = await prometheus.api("alerts")
        names = {a["labels"]["alertname"] for a in body["data"]["alerts"]} if body else set()
        return "SlaBreach" in names

    await poll(alerted, 60, what="the SlaBreach alert")
    # Every dashboard panel's and alert rule's query is valid PromQL to a real server.
    for expr in [*dashboard_queries(), *alert_queries()]:
        assert await prometheus.query(grafana_filled(expr)) is not None, expr
