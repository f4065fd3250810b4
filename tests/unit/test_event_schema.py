"""The published JSON Schema and the example events stay true to the models."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import runpy
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.config import AgreementConfig, load_config
from engine.events import EVENT_TYPES, TicketCreated, TicketRated, parse_event
from engine.events.schema import SCHEMA_FILE_NAME, json_schema, schema_text
from tests.helpers import EXAMPLE_CONFIG, REPO

SCHEMA_FILE = REPO / "docs" / "schema" / SCHEMA_FILE_NAME
EXAMPLES = REPO / "examples"
DAY_FILE = EXAMPLES / "day.jsonl"
REGENERATE_SCHEMA = f".venv/bin/python -m engine.events.schema > docs/schema/{SCHEMA_FILE_NAME}"
REGENERATE_DAY = ".venv/bin/python examples/make_day.py"


def _jsonschema_validator() -> Any:
    """A draft 2020-12 validator when the optional ``jsonschema`` package is installed."""
    if importlib.util.find_spec("jsonschema") is None:
        return None
    jsonschema = importlib.import_module("jsonschema")
    return jsonschema.Draft202012Validator(json_schema())


VALIDATOR = _jsonschema_validator()


def check_example(text: str, where: str) -> None:
    """Fail, saying where, unless the text passes the models (and the schema, if we can)."""
    try:
        parse_event(text)
    except ValidationError as exc:
        pytest.fail(f"{where} does not parse:\n{exc}")
    if VALIDATOR is not None:
        problems = [error.message for error in VALIDATOR.iter_errors(json.loads(text))]
        assert not problems, f"{where} fails the JSON Schema: {problems}"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.is_file(), f"{SCHEMA_FILE} is missing; generate it: {REGENERATE_SCHEMA}"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_FILE.relative_to(REPO)} differs from the models; regenerate it: "
        f"{REGENERATE_SCHEMA}"
    )


def test_schema_text_is_deterministic_json_ending_in_a_newline() -> None:
    text = schema_text()
    assert text == schema_text()
    assert text.endswith("}\n")
    assert json.loads(text) == json_schema()


def test_schema_declares_its_dialect_id_and_title() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/ticket-event.v1.json")
    assert schema["title"]
    assert "64" in schema["description"] or "65536" in schema["description"]


def test_schema_covers_every_event_type_and_refuses_unknown_fields() -> None:
    schema = json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert len(schema["oneOf"]) == len(EVENT_TYPES)
    for name, definition in schema["$defs"].items():
        assert definition["additionalProperties"] is False, name


def envelope_schema(field: str) -> dict[str, Any]:
    return dict(json_schema()["$defs"]["TicketResponded"]["properties"][field])


def accepted(field: str, value: object) -> bool:
    responded = {
        "schema_version": 1,
        "event_id": "5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77",
        "type": "ticket.responded",
        "ticket_id": "KS-1",
        "occurred_at": "2026-11-23T09:15:00+01:00",
        "channel": "web",
    }
    try:
        parse_event(json.dumps({**responded, field: value}))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-23T09:15:00+01:00",
        "2026-11-23t08:15:00.25z",
        "2026-11-23T09:15:00-00:00",
        "2026-11-23T09:15:00",
        "2026-11-23T09:15+01:00",
        "2026-11-23 09:15:00+01:00",
        "2026-11-23T09:15:00+0100",
        "2026-11-23T24:00:00Z",
        "2026-11-23T09:15:60Z",
        "1790000000",
    ],
)
def test_the_published_timestamp_pattern_agrees_with_the_models(stamp: str) -> None:
    schema = envelope_schema("occurred_at")
    assert schema["format"] == "date-time"
    # JSON Schema patterns are unanchored ECMA-262 regexes; this one uses nothing that
    # Python's re reads differently (given no trailing newline).
    assert (re.search(schema["pattern"], stamp) is not None) == accepted("occurred_at", stamp)


@pytest.mark.parametrize(
    "event_id",
    [
        "5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77",
        "5F0C8A1E-6B7D-4C2E-9A43-2D8E0F6B1C77",
        "5f0c8a1e6b7d4c2e9a432d8e0f6b1c77",
        "urn:uuid:5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77",
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_the_published_event_id_rules_agree_with_the_models(event_id: str) -> None:
    schema = envelope_schema("event_id")
    published = re.search(schema["pattern"], event_id) is not None
    published = published and event_id != schema["not"]["const"]
    assert published == accepted("event_id", event_id)


def test_the_schema_says_the_requester_may_be_null() -> None:
    requester = json_schema()["$defs"]["TicketCreated"]["properties"]["requester"]
    assert {"type": "null"} in requester["anyOf"]


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def example_lines() -> list[Path]:
    return sorted(EXAMPLES.glob("*.jsonl"))


def test_there_are_examples_for_every_channel() -> None:
    assert {path.stem for path in example_files()} >= {"email", "phone", "web"}
    assert DAY_FILE in example_lines()


def test_the_rating_example_rates_the_web_examples_ticket() -> None:
    rated = parse_event((EXAMPLES / "rated.json").read_text(encoding="utf-8"))
    created = parse_event((EXAMPLES / "web.json").read_text(encoding="utf-8"))
    assert isinstance(rated, TicketRated)
    assert (rated.ticket_id, 1 <= rated.score <= 5) == (created.ticket_id, True)
    assert rated.occurred_at > created.occurred_at


@pytest.mark.parametrize("path", example_files(), ids=lambda path: path.name)
def test_example_file_is_a_valid_event(path: Path) -> None:
    check_example(path.read_text(encoding="utf-8"), path.name)


@pytest.mark.parametrize("path", example_lines(), ids=lambda path: path.name)
def test_every_line_of_an_example_is_a_valid_event(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.strip() for line in lines), f"{path.name} is empty"
    for number, line in enumerate(lines, start=1):
        if line.strip():
            check_example(line, f"{path.name}, line {number}")


@pytest.mark.parametrize(
    ("path", "channel"),
    [(EXAMPLES / f"{channel}.json", channel) for channel in ("email", "phone", "web")],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_channel_example_is_a_created_event_from_its_channel(path: Path, channel: str) -> None:
    parsed = parse_event(path.read_text(encoding="utf-8"))
    assert isinstance(parsed, TicketCreated)
    assert parsed.channel == channel
    assert parsed.requester.name
    assert parsed.requester.phone if channel == "phone" else parsed.requester.email


# The example day: realistic, consistent with the example configuration, reproducible.


@pytest.fixture(scope="module")
def config() -> AgreementConfig:
    return load_config(EXAMPLE_CONFIG)


@pytest.fixture(scope="module")
def day() -> list[dict[str, Any]]:
    lines = DAY_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_make_day() -> dict[str, Any]:
    """The globals of ``examples/make_day.py``, which is a script rather than a module."""
    return runpy.run_path(str(EXAMPLES / "make_day.py"), run_name="make_day")


def test_the_day_is_what_make_day_generates(config: AgreementConfig) -> None:
    make_day = load_make_day()
    generated = make_day["render"](make_day["generate"](config))
    assert generated == DAY_FILE.read_text(encoding="utf-8"), (
        f"examples/day.jsonl is out of date; regenerate it: {REGENERATE_DAY}"
    )


def test_the_day_is_a_monday_in_office_hours_in_time_order(day: list[dict[str, Any]]) -> None:
    instants = [datetime.fromisoformat(event["occurred_at"]) for event in day]
    assert instants == sorted(instants)
    assert {instant.date() for instant in instants} == {date(2026, 11, 23)}
    assert {instant.utcoffset() for instant in instants} == {timedelta(hours=1)}
    assert all(time(7, 30) <= instant.time() <= time(16) for instant in instants)
    assert len({event["event_id"] for event in day}) == len(day)


def test_the_day_has_a_realistic_mix(day: list[dict[str, Any]]) -> None:
    created = [event for event in day if event["type"] == "ticket.created"]
    assert 120 <= len(created) <= 180
    assert {event["type"] for event in day} == set(EVENT_TYPES)
    statuses = {event["status"] for event in day if event["type"] == "ticket.status_changed"}
    assert statuses >= {"in_progress", "pending_customer", "resolved", "closed"}
    assert {event["channel"] for event in created} == {"email", "phone", "web", "api"}


def test_each_ticket_starts_with_created_and_is_told_in_order(
    day: list[dict[str, Any]],
) -> None:
    stories: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in day:
        stories[event["ticket_id"]].append(event)
    for ticket_id, events in stories.items():
        kinds = [event["type"] for event in events]
        assert kinds[0] == "ticket.created", ticket_id
        assert kinds.count("ticket.created") == 1, ticket_id


def test_the_day_uses_the_configured_ids(
    day: list[dict[str, Any]], config: AgreementConfig
) -> None:
    """Departments and services exist, and assignments go to the current service's owner."""
    service_of: dict[str, str] = {}
    for event in day:
        ticket = event["ticket_id"]
        if event.get("department") is not None:
            assert event["department"] in config.departments
        if event.get("service") is not None:
            assert event["service"] in config.services
            service_of[ticket] = event["service"]
        if event["type"] == "ticket.assigned":
            assert event["function"] == config.services[service_of[ticket]].function, ticket
            team = event.get("team")
            assert team is None or team in {t.id for t in config.provider.customer_teams}
