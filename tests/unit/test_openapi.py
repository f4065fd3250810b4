"""The HTTP port's OpenAPI document: committed as generated, its examples valid."""

from __future__ import annotations

from typing import Any

import pytest

from engine.ops.openapi import openapi_text
from tests.helpers import REPO
from tests.openapi_check import DOCUMENT, errors, model_errors


def test_the_committed_document_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "docs/openapi.json drifted: .venv/bin/python -m engine.ops.openapi > docs/openapi.json"
    )


def examples() -> list[tuple[str, dict[str, Any], Any]]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for status, response in item["get"]["responses"].items():
            for media, content in response["content"].items():
                if "example" in content:
                    found.append(
                        (f"{path} {status} {media}", content["schema"], content["example"])
                    )
    return found


def test_every_json_answer_has_an_example() -> None:
    described = [
        (path, status)
        for path, item in DOCUMENT["paths"].items()
        for status, response in item["get"]["responses"].items()
        if "$ref" in response["content"].get("application/json", {}).get("schema", {})
        or "application/problem+json" in response["content"]
    ]
    assert len(described) == len(examples()) > 15


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
