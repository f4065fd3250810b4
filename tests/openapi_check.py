"""Answers held to the committed OpenAPI document (docs/openapi.json), schema by schema."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.helpers import REPO

DOCUMENT: dict[str, Any] = json.loads((REPO / "docs" / "openapi.json").read_text())
# The document as a resource of its own: a schema's "#/components/..." resolves in it.
_ROOT = "urn:sla-engine:openapi"
_REGISTRY: Registry[Any] = Registry().with_resource(_ROOT, DRAFT202012.create_resource(DOCUMENT))


def errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not meet ``schema``, a schema of the document."""
    if "$ref" in schema:
        schema = {**schema, "$ref": _ROOT + schema["$ref"]}
    validator = Draft202012Validator(schema, registry=_REGISTRY)
    return [
        f"/{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(value)
    ]


def model_errors(model: str, value: Any) -> list[str]:
    """Why ``value`` is not a ``model`` of the document's components."""
    return errors({"$ref": f"#/components/schemas/{model}"}, value)
