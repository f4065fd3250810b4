"""Departments, services and provider functions by the names the configuration gives them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.config import AgreementConfig

NAMED = ("department", "service", "function")
"""The columns of a record that hold an id with a name."""


class Names:
    """Names of one configuration's ids; an id it does not know is shown as it is."""

    def __init__(self, config: AgreementConfig) -> None:
        self._of: dict[str, dict[str, str]] = {
            "department": {d.id: d.name for d in config.departments.values()},
            "service": {s.id: s.name for s in config.services.values()},
            "function": {f: team.name for f, team in config.provider.functions.items()},
        }

    def department(self, department_id: str) -> str:
        return self._of["department"].get(department_id, department_id)

    def service(self, service_id: str) -> str:
        return self._of["service"].get(service_id, service_id)

    def function(self, function: str) -> str:
        return self._of["function"].get(function, function)

    def named(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record with its department, service and function ids replaced by names."""
        return {
            key: self._of[key].get(value, value) if key in NAMED and value else value
            for key, value in record.items()
        }

    def with_names(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record with a ``<column>_name`` beside each of its ids (machines keep ids)."""
        out = dict(record)
        for key in NAMED:
            if record.get(key):
                out[f"{key}_name"] = self._of[key].get(record[key], record[key])
        return out
