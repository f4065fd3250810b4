"""The v1 ticket event contract: what it accepts, what it refuses, and how it says why."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.events import (
    EVENT_TYPES,
    MAX_BODY_BYTES,
    MAX_SUBJECT_CHARS,
    SCHEMA_VERSION,
    TicketCreated,
    event_adapter,
    parse_event,
)
from engine.intake.publish import INVALID_ROUTING_KEY, envelope_of, refusal_of
from engine.sla_clock.timeline import read_timeline
from tests.poison import Poison, poison_classes

EVENT_ID = "5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
RFC3339_WANTED = (
    "Input should be an RFC 3339 timestamp with a UTC offset, "
    "like 2026-11-23T09:15:00+01:00 or 2026-11-23T08:15:00Z"
)
ENVELOPE: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "event_id": EVENT_ID,
    "ticket_id": "KS-48113",
    "occurred_at": "2026-11-23T09:15:00+01:00",
    "channel": "web",
}
# The smallest valid event of each type, beyond the envelope.
FIELDS: dict[str, dict[str, Any]] = {
    "ticket.created": {
        "department": "buf",
        "service": "skole-it-aula",
        "priority": "P2",
        "subject": "Kan ikke logge på Aula",
    },
    "ticket.responded": {},
    "ticket.status_changed": {"status": "in_progress"},
    "ticket.priority_changed": {"priority": "P1"},
    "ticket.assigned": {"function": "pc-software"},
    "ticket.commented": {"visibility": "public", "body": "Vi kigger på det."},
    "ticket.reclassified": {"service": "pc-arbejdsplads"},
    "ticket.rated": {"score": 4},
}


def event(kind: str, **changes: Any) -> dict[str, Any]:
    """A valid event of ``kind`` as JSON data; a change to ``None`` removes the field."""
    data = {**ENVELOPE, "type": kind, **FIELDS[kind], **changes}
    return {key: value for key, value in data.items() if value is not None}


def parse(data: dict[str, Any]) -> Any:
    return parse_event(json.dumps(data))


def errors_of(data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    """The (location, message) of each error; the location starts with the event type."""
    with pytest.raises(ValidationError) as caught:
        parse(data)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_the_examples_cover_every_type() -> None:
    assert set(FIELDS) == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_each_type_parses_into_its_model(kind: str) -> None:
    parsed = parse(event(kind))
    assert parsed.type == kind
    assert str(parsed.event_id) == EVENT_ID
    # The instant its offset placed, held in UTC.
    assert parsed.occurred_at.tzinfo is UTC
    assert parsed.occurred_at == datetime.fromisoformat(event(kind)["occurred_at"])


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_each_type_survives_a_round_trip_through_json(kind: str) -> None:
    parsed = parse(event(kind))
    assert parse_event(event_adapter.dump_json(parsed)) == parsed


def test_bytes_and_text_parse_alike() -> None:
    text = json.dumps(event("ticket.created"))
    assert parse_event(text) == parse_event(text.encode("utf-8"))


def test_a_null_requester_is_taken_as_left_out() -> None:
    left_out = parse(event("ticket.created"))
    null = parse({**event("ticket.created"), "requester": None})
    assert null == left_out
    assert null.requester.name is None


def test_a_requester_that_is_not_an_object_is_refused() -> None:
    [(loc, _)] = errors_of(event("ticket.created", requester="Lone"))
    assert loc == ("ticket.created", "requester")


def test_a_full_created_event_parses() -> None:
    parsed = parse(
        event(
            "ticket.created",
            priority=None,
            impact="high",
            urgency="medium",
            requester={"name": "Lone Mortensen", "email": "lone.mortensen@buf.kk.dk"},
            body="Hej Servicedesk",
        )
    )
    assert isinstance(parsed, TicketCreated)
    assert (parsed.impact, parsed.urgency, parsed.priority) == ("high", "medium", None)
    assert parsed.requester.email == "lone.mortensen@buf.kk.dk"


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_unknown_fields_are_refused(kind: str) -> None:
    assert errors_of(event(kind, colour="blue")) == [
        ((kind, "colour"), "Extra inputs are not permitted")
    ]


def test_unknown_fields_of_the_requester_are_refused() -> None:
    data = event("ticket.created", requester={"name": "Lone", "fax": "+45 33 66 00 00"})
    assert errors_of(data) == [
        (("ticket.created", "requester", "fax"), "Extra inputs are not permitted")
    ]


@pytest.mark.parametrize("stamp", ["2026-11-23T09:15:00", "2026-11-23 09:15"])
def test_a_naive_timestamp_is_refused(stamp: str) -> None:
    assert errors_of(event("ticket.responded", occurred_at=stamp)) == [
        (("ticket.responded", "occurred_at"), RFC3339_WANTED)
    ]


@pytest.mark.parametrize(
    "stamp",
    [1790000000, 1790000000.5, -1, 0, "1790000000", "1790000000.5", "-1", "1e9"],
    ids=repr,
)
def test_a_unix_timestamp_is_refused_as_number_or_string(stamp: object) -> None:
    assert errors_of(event("ticket.responded", occurred_at=stamp)) == [
        (("ticket.responded", "occurred_at"), RFC3339_WANTED)
    ]


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-23T09:15+01:00",  # no seconds
        "2026-11-23 09:15:00+01:00",  # a space for the T
        "2026-11-23_09:15:00+01:00",
        "2026-11-23T09:15:00+0100",  # offset without a colon
        "2026-11-23T09:15:00+01",
        "2026-11-23T09:15:00 +01:00",
        "2026-11-23T09:15:00,5+01:00",  # decimal comma
        "2026-11-23T09:15:00.+01:00",
        "20261123T091500Z",  # ISO 8601 basic format
        "2026-W48-1T09:15:00Z",
        "2026-11-23T09:15:00Z\n",
        " 2026-11-23T09:15:00Z",
        "2026-11-23T09:15:00UTC",
        "2026-11-23T09:15:00+01:00[Europe/Copenhagen]",
        "",
        True,
        ["2026-11-23T09:15:00Z"],
    ],
    ids=repr,
)
def test_only_the_rfc_3339_form_is_accepted(stamp: object) -> None:
    assert errors_of(event("ticket.responded", occurred_at=stamp)) == [
        (("ticket.responded", "occurred_at"), RFC3339_WANTED)
    ]


@pytest.mark.parametrize(
    ("stamp", "instant"),
    [
        ("2026-11-23T08:15:00Z", datetime(2026, 11, 23, 8, 15, tzinfo=UTC)),
        ("2026-11-23t08:15:00z", datetime(2026, 11, 23, 8, 15, tzinfo=UTC)),
        ("2026-11-23T08:15:00-00:00", datetime(2026, 11, 23, 8, 15, tzinfo=UTC)),
        ("2026-11-23T09:15:00.5+01:00", datetime(2026, 11, 23, 8, 15, 0, 500000, tzinfo=UTC)),
        (
            "2026-11-23T09:15:00.123456789+01:00",
            datetime(2026, 11, 23, 8, 15, 0, 123456, tzinfo=UTC),
        ),
        ("2026-11-24T07:44:59+23:29", datetime(2026, 11, 23, 8, 15, 59, tzinfo=UTC)),
    ],
)
def test_rfc_3339_variants_are_accepted_as_aware_datetimes(stamp: str, instant: datetime) -> None:
    parsed = parse(event("ticket.responded", occurred_at=stamp)).occurred_at
    assert parsed.tzinfo is not None
    assert parsed == instant


@pytest.mark.parametrize(
    "stamp", ["2026-11-23T08:15:00Z", "2026-11-23T09:15:00+01:00", "2026-11-23T03:15:00-05:00"]
)
def test_any_offset_is_accepted_and_names_the_same_instant(stamp: str) -> None:
    reference = parse(event("ticket.responded")).occurred_at
    assert parse(event("ticket.responded", occurred_at=stamp)).occurred_at == reference


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-23",
        "yesterday",
        "2026-11-23T25:00:00+01:00",
        "2026-11-23T24:00:00Z",
        "2026-13-01T09:15:00Z",
        "2026-11-31T09:15:00Z",
        "2026-02-29T09:15:00Z",
        "2026-11-23T09:60:00Z",
        "2026-11-23T09:15:60Z",  # a leap second: datetime cannot hold it
        "2026-11-23T09:15:00+24:00",
        "2026-11-23T09:15:00+01:60",
    ],
)
def test_a_timestamp_that_is_not_one_is_refused(stamp: str) -> None:
    [(loc, _)] = errors_of(event("ticket.responded", occurred_at=stamp))
    assert loc == ("ticket.responded", "occurred_at")


OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30), timezones=OFFSETS
    )
)
def test_every_aware_instant_in_rfc_3339_is_accepted_but_not_as_unix_time(
    instant: datetime,
) -> None:
    assert parse(event("ticket.responded", occurred_at=instant.isoformat())).occurred_at == instant
    for unix in (instant.timestamp(), str(int(instant.timestamp()))):
        [(loc, _)] = errors_of(event("ticket.responded", occurred_at=unix))
        assert loc == ("ticket.responded", "occurred_at")


@given(
    st.one_of(
        st.datetimes(max_value=datetime(1969, 12, 30), timezones=OFFSETS),
        st.datetimes(min_value=datetime(2100, 1, 2), timezones=OFFSETS),
    )
)
def test_an_instant_before_1970_or_from_2100_is_refused_as_out_of_range(instant: datetime) -> None:
    # Years 1 and 9999 with an offset overflow when converted to UTC: still this refusal.
    with pytest.raises(ValidationError) as caught:
        parse(event("ticket.responded", occurred_at=instant.isoformat()))
    [error] = caught.value.errors()
    assert (error["loc"], error["type"]) == (
        ("ticket.responded", "occurred_at"),
        "instant_out_of_range",
    )


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-23:59", "1969-12-31T23:59:59Z",
             "2100-01-01T00:00:00Z", "2300-06-01T12:00:00+02:00"]
)  # fmt: skip
def test_the_edges_of_rfc_3339_are_refused_with_the_range_they_miss(text: str) -> None:
    [(loc, message)] = errors_of(event("ticket.status_changed", occurred_at=text))
    assert loc == ("ticket.status_changed", "occurred_at")
    assert "1970-01-01T00:00:00Z" in message
    assert "2100-01-01T00:00:00Z" in message


@pytest.mark.parametrize(
    ("kind", "field"),
    [("ticket.created", "subject"), ("ticket.created", "body"), ("ticket.created", "department"),
     ("ticket.created", "service"), ("ticket.commented", "body"), ("ticket.commented", "author"),
     ("ticket.responded", "agent"), ("ticket.assigned", "team"),
     ("ticket.reclassified", "service")],
)  # fmt: skip
def test_a_nul_character_in_any_text_is_refused_with_its_reason(kind: str, field: str) -> None:
    [(loc, message)] = errors_of(event(kind, **{field: "before\x00after"}))
    assert loc == (kind, field)
    assert "NUL" in message


@pytest.mark.parametrize("field", ["name", "email", "phone"])
def test_a_nul_character_in_the_requester_is_refused(field: str) -> None:
    [(loc, message)] = errors_of(event("ticket.created", requester={field: "\x00"}))
    assert loc == ("ticket.created", "requester", field)
    assert "NUL" in message


def test_python_callers_may_pass_an_aware_datetime_but_not_a_naive_one() -> None:
    aware = datetime(2026, 11, 23, 8, 15, tzinfo=UTC)
    data = {**event("ticket.responded"), "occurred_at": aware}
    assert event_adapter.validate_python(data).occurred_at == aware
    for wrong in (aware.replace(tzinfo=None), 1790000000):
        with pytest.raises(ValidationError) as caught:
            event_adapter.validate_python({**data, "occurred_at": wrong})
        [error] = caught.value.errors()
        assert error["loc"] == ("ticket.responded", "occurred_at")
        assert error["msg"].startswith(RFC3339_WANTED)


def test_subject_of_the_limit_is_accepted_and_one_more_refused() -> None:
    parse(event("ticket.created", subject="å" * MAX_SUBJECT_CHARS))
    [(loc, message)] = errors_of(event("ticket.created", subject="å" * (MAX_SUBJECT_CHARS + 1)))
    assert loc == ("ticket.created", "subject")
    assert str(MAX_SUBJECT_CHARS) in message


def test_an_empty_subject_is_refused() -> None:
    [(loc, _)] = errors_of(event("ticket.created", subject=""))
    assert loc == ("ticket.created", "subject")


@pytest.mark.parametrize("kind", ["ticket.created", "ticket.commented"])
def test_body_limit_counts_utf8_bytes_not_characters(kind: str) -> None:
    # "ø" is two bytes: half the limit in characters is the whole limit in bytes.
    parse(event(kind, body="ø" * (MAX_BODY_BYTES // 2)))
    parse(event(kind, body="a" * MAX_BODY_BYTES))
    over = "ø" * (MAX_BODY_BYTES // 2) + "a"
    assert len(over) < MAX_BODY_BYTES
    [(loc, message)] = errors_of(event(kind, body=over))
    assert loc == (kind, "body")
    assert f"{MAX_BODY_BYTES + 1} bytes" in message


def test_body_limit_with_four_byte_characters() -> None:
    parse(event("ticket.commented", body="🙂" * (MAX_BODY_BYTES // 4)))
    [(loc, _)] = errors_of(event("ticket.commented", body="🙂" * (MAX_BODY_BYTES // 4 + 1)))
    assert loc == ("ticket.commented", "body")


# Any text UTF-8 can encode but NUL, which is refused for its own reason.
_STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")


@given(st.text(_STORABLE, max_size=40).map(lambda unit: unit * 2000))
def test_body_is_accepted_exactly_when_it_fits_in_the_limit(body: str) -> None:
    fits = len(body.encode("utf-8")) <= MAX_BODY_BYTES
    try:
        parse(event("ticket.commented", body=body))
    except ValidationError:
        assert not fits
    else:
        assert fits


@pytest.mark.parametrize("kind", ["ticket.created", "ticket.priority_changed"])
@pytest.mark.parametrize(
    "given_fields",
    [{}, {"impact": "high"}, {"urgency": "low"}],
    ids=["neither", "impact only", "urgency only"],
)
def test_priority_or_both_impact_and_urgency_are_needed(
    kind: str, given_fields: dict[str, str]
) -> None:
    [(loc, message)] = errors_of(event(kind, priority=None, **given_fields))
    assert loc == (kind,)
    assert "priority" in message
    assert "impact and urgency" in message


@pytest.mark.parametrize("kind", ["ticket.created", "ticket.priority_changed"])
def test_impact_and_urgency_stand_in_for_priority(kind: str) -> None:
    parsed = parse(event(kind, priority=None, impact="low", urgency="high"))
    assert parsed.priority is None


def test_given_both_priority_wins_over_impact_and_urgency() -> None:
    """As documented on the models and in docs/EVENTS.md: impact and urgency are kept, unused."""
    created = parse(event("ticket.created", priority="P4", impact="high", urgency="high"))
    assert (created.priority, created.impact, created.urgency) == ("P4", "high", "high")
    changed = parse(
        event(
            "ticket.priority_changed",
            occurred_at="2026-11-23T10:15:00+01:00",
            event_id="6f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77",
            priority="P3",
            impact="high",
            urgency="high",
        )
    )
    timeline = read_timeline([created, changed], priority_of=lambda impact, urgency: "P1")
    assert timeline is not None
    assert [priority for _, priority in timeline.priorities] == ["P4", "P3"]
    for model in (TicketCreated, type(changed)):
        assert "priority wins" in (model.__doc__ or "")


def test_unknown_priority_and_levels_are_refused() -> None:
    assert [loc for loc, _ in errors_of(event("ticket.created", priority="P5"))] == [
        ("ticket.created", "priority")
    ]
    data = event("ticket.priority_changed", priority=None, impact="huge", urgency="low")
    assert [loc for loc, _ in errors_of(data)] == [("ticket.priority_changed", "impact")]


def test_reclassified_needs_a_department_or_a_service() -> None:
    [(loc, message)] = errors_of(event("ticket.reclassified", service=None))
    assert loc == ("ticket.reclassified",)
    assert "department" in message
    assert "service" in message
    parse(event("ticket.reclassified", service=None, department="sof"))
    parse(event("ticket.reclassified", department="sof"))


@pytest.mark.parametrize(
    "event_id", ["not-a-uuid", "5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c7", "", 12345]
)
def test_a_bad_event_id_is_refused(event_id: object) -> None:
    [(loc, _)] = errors_of(event("ticket.responded", event_id=event_id))
    assert loc == ("ticket.responded", "event_id")


@pytest.mark.parametrize(
    "event_id",
    [
        EVENT_ID.replace("-", ""),
        f"urn:uuid:{EVENT_ID}",
        f"{{{EVENT_ID}}}",
        f" {EVENT_ID}",
        f"{EVENT_ID}\n",
        "5f0c8a1e6b7d-4c2e-9a43-2d8e-0f6b1c77",  # hyphens in the wrong places
        int(UUID(EVENT_ID)),
    ],
    ids=repr,
)
def test_an_event_id_in_another_form_than_hyphenated_is_refused(event_id: object) -> None:
    assert errors_of(event("ticket.responded", event_id=event_id)) == [
        (
            ("ticket.responded", "event_id"),
            "Input should be a UUID in hyphenated form, like 5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77",
        )
    ]


def test_the_nil_uuid_is_refused_as_event_id() -> None:
    [(loc, message)] = errors_of(event("ticket.responded", event_id=NIL_UUID))
    assert loc == ("ticket.responded", "event_id")
    assert "nil UUID" in message
    with pytest.raises(ValidationError, match="nil UUID"):
        event_adapter.validate_python({**event("ticket.responded"), "event_id": UUID(int=0)})


@pytest.mark.parametrize(
    "event_id",
    [
        EVENT_ID.upper(),
        "00000000-0000-0000-0000-000000000001",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ],
)
def test_any_hyphenated_uuid_but_the_nil_one_is_accepted(event_id: str) -> None:
    assert parse(event("ticket.responded", event_id=event_id)).event_id == UUID(event_id)


def test_python_callers_may_pass_a_uuid() -> None:
    data = {**event("ticket.responded"), "event_id": UUID(EVENT_ID)}
    assert str(event_adapter.validate_python(data).event_id) == EVENT_ID


@pytest.mark.parametrize("version", [0, 2, "1", "v1", 1.0, True, None, [1]], ids=repr)
def test_another_schema_version_is_refused(version: object) -> None:
    data = {**event("ticket.responded"), "schema_version": version}
    assert errors_of(data) == [
        (("ticket.responded", "schema_version"), f"Input should be the integer {SCHEMA_VERSION}")
    ]


def test_a_missing_schema_version_is_refused() -> None:
    data = event("ticket.responded")
    del data["schema_version"]
    assert errors_of(data) == [(("ticket.responded", "schema_version"), "Field required")]


def test_an_unknown_type_is_refused_naming_the_known_ones() -> None:
    [(loc, message)] = errors_of({**ENVELOPE, "type": "ticket.deleted"})
    assert loc == ()
    assert "ticket.deleted" in message
    assert all(kind in message for kind in EVENT_TYPES)


def test_a_missing_type_is_refused() -> None:
    [(_, message)] = errors_of(dict(ENVELOPE))
    assert "type" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ticket_id", ""),
        ("ticket_id", "-starts-with-a-dash"),
        ("ticket_id", "has space"),
        ("ticket_id", "K" * 65),
        ("channel", "fax"),
    ],
)
def test_envelope_values_are_bounded(field: str, value: str) -> None:
    [(loc, _)] = errors_of(event("ticket.responded", **{field: value}))
    assert loc == ("ticket.responded", field)


def test_an_unknown_status_is_refused() -> None:
    [(loc, message)] = errors_of(event("ticket.status_changed", status="reopened"))
    assert loc == ("ticket.status_changed", "status")
    assert "in_progress" in message


def test_assignment_is_to_a_known_provider_function() -> None:
    [(loc, _)] = errors_of(event("ticket.assigned", function="catering"))
    assert loc == ("ticket.assigned", "function")
    assert parse(event("ticket.assigned", team="team-buf")).team == "team-buf"


def test_a_comment_needs_a_visibility() -> None:
    [(loc, _)] = errors_of(event("ticket.commented", visibility="secret"))
    assert loc == ("ticket.commented", "visibility")


def test_several_problems_are_reported_together() -> None:
    data = event("ticket.created", subject="", channel="fax", colour="blue")
    locs = {loc for loc, _ in errors_of(data)}
    assert locs == {
        ("ticket.created", "subject"),
        ("ticket.created", "channel"),
        ("ticket.created", "colour"),
    }


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"colour": "blue"}, "ticket.created.colour: Extra inputs are not permitted"),
        ({"priority": None}, "ticket.created: Give priority, or both impact and urgency"),
    ],
)
def test_errors_name_the_event_type_then_the_field_and_the_union_by_its_name(
    changes: dict[str, Any], reason: str
) -> None:
    """The intake's dead-letter reason joins a location with dots: keep it readable."""
    with pytest.raises(ValidationError) as caught:
        parse(event("ticket.created", **changes))
    [error] = caught.value.errors()
    assert f"{'.'.join(map(str, error['loc']))}: {error['msg']}" == reason
    assert caught.value.title == "TicketEvent"
    assert not re.search("tagged-union|function-after", str(caught.value))


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("ticket.created", {"priority": None}, "Give priority, or both impact and urgency"),
        (
            "ticket.priority_changed",
            {"priority": None},
            "Give priority, or both impact and urgency",
        ),
        ("ticket.reclassified", {"service": None}, "Give department, service or both"),
    ],
)
def test_either_or_errors_sit_at_the_event_type_without_a_value_error_prefix(
    kind: str, changes: dict[str, Any], message: str
) -> None:
    assert errors_of(event(kind, **changes)) == [((kind,), message)]


def test_events_are_immutable() -> None:
    parsed = parse(event("ticket.responded"))
    with pytest.raises(ValidationError):
        parsed.agent = "someone else"


# What the publisher makes of raw lines: its refusal reasons name the field.


def test_refusal_reason_names_the_field_without_the_type_prefix() -> None:
    raw = json.dumps(event("ticket.created", subject="x" * (MAX_SUBJECT_CHARS + 1))).encode()
    reason = refusal_of(raw)
    assert reason is not None
    assert reason.startswith("subject: ")
    assert refusal_of(json.dumps(event("ticket.created")).encode()) is None


def test_refusal_reasons_join_several_problems() -> None:
    raw = json.dumps(event("ticket.responded", colour="blue", channel="fax")).encode()
    reason = refusal_of(raw)
    assert reason is not None
    assert "colour: Extra inputs are not permitted" in reason
    assert "channel: " in reason


def test_refusal_of_malformed_json() -> None:
    reason = refusal_of(b"{not json")
    assert reason is not None
    assert reason.startswith("Invalid JSON")


@pytest.mark.parametrize("poison", poison_classes(0), ids=lambda p: p.name)
def test_the_publisher_checks_poison_without_raising(poison: Poison) -> None:
    # Those the contract cannot see (an unknown department, dated ahead of the engine's
    # clock) pass the publisher's check and are refused by the engine.
    reason = refusal_of(poison.body)
    if poison.kind in ("unknown_reference", "out_of_range"):
        assert reason is None
    else:
        assert reason is not None
    envelope_of(poison.body)  # no exception, nested or not


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps(event("ticket.assigned")).encode(), ("ticket.assigned", EVENT_ID)),
        (json.dumps({"type": "ticket.deleted"}).encode(), ("ticket.deleted", None)),
        (json.dumps({"type": "sales.order", "event_id": 1}).encode(), (INVALID_ROUTING_KEY, None)),
        (json.dumps({"event_id": EVENT_ID.upper()}).encode(), (INVALID_ROUTING_KEY, EVENT_ID)),
        (b"[1, 2]", (INVALID_ROUTING_KEY, None)),
        (b"\xff\xfe", (INVALID_ROUTING_KEY, None)),
        (b"", (INVALID_ROUTING_KEY, None)),
        (b"[" * 5000 + b"]" * 5000, (INVALID_ROUTING_KEY, None)),
    ],
    ids=[
        "valid",
        "unknown ticket type",
        "foreign type",
        "no type",
        "array",
        "binary",
        "empty",
        "nested too deep",
    ],
)
def test_envelope_of_raw_messages(raw: bytes, expected: tuple[str, str | None]) -> None:
    assert envelope_of(raw) == expected
