"""The HTTP port's OpenAPI document: committed as generated, its examples valid."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.config import load_versioned
from engine.ops.http_port import HttpPort, Parts
from engine.ops.openapi import openapi_text
from engine.running import ConfigInForce, RunningConfig
from tests.helpers import EXAMPLE_CONFIG, REPO
from tests.openapi_check import DOCUMENT, errors, model_errors

NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)


def test_the_committed_document_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "docs/openapi.json drifted: .venv/bin/python -m engine.ops.openapi > docs/openapi.json"
    )


def responses() -> list[tuple[str, str, dict[str, Any]]]:
    """Each answer the document describes: ``(path and method, status, response)``."""
    return [
        (f"{method.upper()} {path}", status, response)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
    ]


def examples() -> list[tuple[str, dict[str, Any], Any]]:
    found = []
    for where, status, response in responses():
        for media, content in response.get("content", {}).items():
            if "example" in content:
                found.append((f"{where} {status} {media}", content["schema"], content["example"]))
    return found


def test_every_json_answer_has_an_example() -> None:
    described = [
        (where, status)
        for where, status, response in responses()
        if "$ref" in response.get("content", {}).get("application/json", {}).get("schema", {})
        or "application/problem+json" in response.get("content", {})
    ]
    assert len(described) == len(examples()) > 15


def test_every_route_of_the_port_is_described() -> None:
    # The whole port, the one write and the redirect included: a route added to the
    # port and not to the document fails here.
    running = RunningConfig(ConfigInForce(load_versioned(EXAMPLE_CONFIG), NOW))
    port = HttpPort(Parts(running, ""), "127.0.0.1", 0)
    routes = {
        f"{route.method} {route.resource.canonical}"
        for route in port.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    described = {where for where, _, _ in responses()}
    assert routes == described
    assert "POST /reload" in described


@pytest.mark.parametrize(("where", "schema", "example"), examples(), ids=lambda v: str(v)[:40])
def test_each_example_meets_its_schema(where: str, schema: dict[str, Any], example: Any) -> None:
    assert errors(schema, example) == [], where


def test_the_schemas_refuse_what_the_port_never_answers() -> None:
    # The check can fail: a clock without its state, an unknown state, a stray field.
    page = DOCUMENT["paths"]["/tickets"]["get"]["responses"]["200"]["content"]
    example = page["application/json"]["example"]
    clock = dict(example["items"][0]["clocks"][0])
    assert model_errors("ClockSummary", clock) == []
    assert model_errors("ClockSummary", {**clock, "state": "late"}) != []
    assert model_errors("ClockSummary", {**clock, "steps": []}) != []
    del clock["state"]
    assert model_errors("ClockSummary", clock) != []
