"""The SLA sheets on the engine's HTTP port: the same pages as the CLI's, the language chosen
by the address or the browser, refusals as problem documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from engine.config import load_config, load_versioned
from engine.ops.http_port import HttpPort, Parts
from engine.reporting.window import DATE_ZONE
from engine.running import ConfigInForce, RunningConfig
from engine.sheet import render_department
from tests.helpers import EXAMPLE_CONFIG, EditYaml
from tests.openapi_check import DOCUMENT, model_errors

pytestmark = pytest.mark.integration
CONFIG = load_config(EXAMPLE_CONFIG)
RUNNING = RunningConfig(ConfigInForce(load_versioned(EXAMPLE_CONFIG), datetime.now(UTC)))


@pytest.fixture
async def port() -> AsyncIterator[HttpPort]:
    """The port alone: the sheets read the configuration, never the database."""
    serving = HttpPort(Parts(RUNNING, "postgresql://unused"), "127.0.0.1", 0)
    await serving.start()
    yield serving
    await serving.stop()


async def fetch(
    port: HttpPort, path: str, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port.port}{path}", headers=headers) as response,
    ):
        return response, await response.text()


async def test_a_department_page_is_the_clis_page(port: HttpPort) -> None:
    response, body = await fetch(port, "/departments/okf")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Language"] == "da"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    year = datetime.now(DATE_ZONE).year
    expected = render_department(
        CONFIG, "okf", fmt="html", language="da", year=year, href=lambda d: d or "./"
    )
    assert body == expected
    assert '<a class="back" href="./">' in body


async def test_the_language_comes_from_the_address_or_the_browser(port: HttpPort) -> None:
    response, body = await fetch(port, "/departments/sof?lang=en")
    assert response.headers["Content-Language"] == "en"
    assert '<html lang="en">' in body
    assert '<a class="back" href="./?lang=en">' in body  # the choice goes on with the links
    response, body = await fetch(port, "/departments/sof", {"Accept-Language": "en-GB, da;q=0.5"})
    assert (response.headers["Content-Language"], response.headers["Vary"]) == (
        "en",
        "Accept-Language",
    )
    assert "Service level agreement (SLA) for Sundheds- og Omsorgsforvaltningen" in body
    # The address wins over the browser.
    response, body = await fetch(port, "/departments/sof?lang=da", {"Accept-Language": "en"})
    assert '<html lang="da">' in body


async def test_the_index_links_each_department(port: HttpPort) -> None:
    response, body = await fetch(port, "/departments/?lang=en")
    assert response.status == 200
    for department in CONFIG.departments:
        assert f'href="{department}?lang=en"' in body
    assert "The service catalog" in body
    # Without the slash the relative links would miss: redirected to the folder.
    response, body = await fetch(port, "/departments?lang=en")
    assert response.status == 200
    assert str(response.url).endswith("/departments/?lang=en")
    assert response.history[0].status == 308


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/departments/nope", 404),
        ("/departments/okf?lang=de", 400),
        ("/departments/okf?lang=da&lang=en", 400),
        ("/departments/okf?year=2026", 400),
        ("/departments/?format=md", 400),
    ],
)
async def test_refusals_are_problem_documents(port: HttpPort, path: str, status: int) -> None:
    response, body = await fetch(port, path)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == status
    assert model_errors("Problem", problem) == []
    documented = (
        "/departments/" if path.startswith("/departments/?") else "/departments/{department_id}"
    )
    assert str(status) in DOCUMENT["paths"][documented]["get"]["responses"]


async def test_the_compliance_route_beside_it_still_answers(port: HttpPort) -> None:
    # /departments/{id} must not swallow /departments/{id}/compliance: without a database
    # the latter answers 503, not the sheet.
    response, body = await fetch(port, "/departments/okf/compliance")
    assert response.status == 503
    assert "not connected" in body


async def test_the_pages_follow_the_configuration_put_in_force(
    config_dir: Path, edit_yaml: EditYaml
) -> None:
    running = RunningConfig(ConfigInForce(load_versioned(config_dir), datetime.now(UTC)))
    serving = HttpPort(Parts(running, "postgresql://unused"), "127.0.0.1", 0)
    await serving.start()
    try:
        _, before = await fetch(serving, "/departments/okf")
        assert "Serviceaftale (SLA) for Økonomiforvaltningen<" in before
        edit_yaml("departments/okf.yaml", lambda data: data["departments"][0].update(name="ØKF"))
        running.swap(ConfigInForce(load_versioned(config_dir), datetime.now(UTC)))
        _, after = await fetch(serving, "/departments/okf")
        assert "Serviceaftale (SLA) for ØKF<" in after
    finally:
        await serving.stop()


def test_the_pages_are_in_the_openapi_document() -> None:
    for path in ("/departments/", "/departments/{department_id}"):
        answers = DOCUMENT["paths"][path]["get"]["responses"]
        assert list(answers["200"]["content"]) == ["text/html"]
