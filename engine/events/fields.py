"""The envelope's field types and the limits of the event contract.

pydantic's own datetime, UUID and literal types are lenient about the JSON they take (Unix
timestamps, UUIDs without hyphens, ``1.0`` for ``1``), so the envelope's fields check the
JSON value's form first. The checks are core schemas, run by pydantic-core in Rust: this is
the intake's hot path, parsed once per message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

SCHEMA_VERSION = 1
# RFC 3339 (section 5.6) date-time, its fields in range so that a mistake is reported as
# this form; "T" and "Z" may be lower case, as the RFC allows. A leap second (:60) is not
# accepted: datetime cannot hold it.
RFC3339_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
MAX_SUBJECT_CHARS = 500
MAX_BODY_BYTES = 64 * 1024
MAX_COMMENT_CHARS = 2000  # a satisfaction survey's free text: a few sentences
# The instants an event may carry. RFC 3339 allows years 1 to 9999, where converting an
# offset to UTC overflows and the calendars (local years 1900-2199) cannot measure; no
# ticket of this engine happened before 1970 or will after 2100. The engine also refuses
# an instant too far ahead of its own clock (engine.intake.admission), which no model can.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)

Channel = Literal["email", "phone", "web", "api"]
TicketStatus = Literal[
    "new", "in_progress", "pending_customer", "pending_third_party", "resolved", "closed"
]
TicketId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]


def _without_nul(text: str) -> str:
    # PostgreSQL's jsonb, where events are stored, cannot hold U+0000: refused here with
    # a reason rather than failing the batch's transaction.
    if "\x00" in text:
        raise PydanticCustomError(
            "text_nul",
            "Text must not contain the NUL character (\\u0000), which the store cannot hold",
        )
    return text


NoNul = AfterValidator(_without_nul)
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul]
ShortText = Annotated[str, StringConstraints(max_length=200), NoNul]


_RFC3339_MESSAGE = (
    "Input should be an RFC 3339 timestamp with a UTC offset, "
    "like 2026-11-23T09:15:00+01:00 or 2026-11-23T08:15:00Z"
)
_UUID_MESSAGE = (
    "Input should be a UUID in hyphenated form, like 5f0c8a1e-6b7d-4c2e-9a43-2d8e0f6b1c77"
)
_NIL_UUID_MESSAGE = "The nil UUID is not an event id; give each event a UUID of its own"
_SCHEMA_VERSION_MESSAGE = f"Input should be the integer {SCHEMA_VERSION}"


def _within_body_limit(text: str) -> str:
    _without_nul(text)
    size = len(text.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise PydanticCustomError(
            "body_too_large",
            "Body is {size} bytes encoded as UTF-8; at most {limit} are accepted",
            {"size": size, "limit": MAX_BODY_BYTES},
        )
    return text


Body = Annotated[str, AfterValidator(_within_body_limit)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SUBJECT_CHARS), NoNul]
RatingComment = Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS), NoNul]


def _text_matching(pattern: str, error_type: str, message: str) -> CoreSchema:
    """A string (never a number) matching ``pattern``, or one error that says what is wanted."""
    return core_schema.custom_error_schema(
        core_schema.str_schema(pattern=pattern, strict=True),
        error_type,
        custom_error_message=message,
    )


class _Rfc3339:
    """An aware datetime, from an RFC 3339 string with an offset only, held in UTC.

    pydantic's own datetime also takes Unix timestamps, as JSON numbers and as numeric
    strings, and ISO 8601 variants (no seconds, a space for the ``T``, ``+0100``).

    The offset only places the instant: once parsed, the instant is kept in UTC (the
    stored message keeps the offset it came with). Every event then shares one tzinfo,
    and comparing or converting two of them skips a call of each one's ``utcoffset``:
    the clocks sort and convert a ticket's instants each time they measure it.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from_text = core_schema.chain_schema(
            [
                _text_matching(RFC3339_PATTERN, "rfc3339_timestamp", _RFC3339_MESSAGE),
                core_schema.datetime_schema(tz_constraint="aware"),
            ]
        )
        return core_schema.no_info_after_validator_function(
            _in_utc,
            core_schema.json_or_python_schema(
                json_schema=from_text,
                # Python callers may also pass an aware datetime itself.
                python_schema=core_schema.union_schema(
                    [core_schema.datetime_schema(strict=True, tz_constraint="aware"), from_text],
                    custom_error_type="rfc3339_timestamp",
                    custom_error_message=f"{_RFC3339_MESSAGE}, or an aware datetime",
                ),
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}


def _in_utc(instant: datetime) -> datetime:
    try:
        utc = instant.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: far outside the range anyway
        utc = None
    if utc is None or not EARLIEST_INSTANT <= utc < LATEST_INSTANT:
        raise PydanticCustomError(
            "instant_out_of_range",
            "Instant should be from {earliest} up to (not including) {latest}",
            {"earliest": "1970-01-01T00:00:00Z", "latest": "2100-01-01T00:00:00Z"},
        )
    return utc


def _uuid_as_text(value: object) -> object:
    return str(value) if isinstance(value, UUID) else value


class _HyphenatedUuid:
    """A UUID in its hyphenated 8-4-4-4-12 form only, and never the nil UUID.

    pydantic's own UUID also takes 32 bare hex digits, ``urn:uuid:…`` and ``{…}``. The nil
    UUID is a placeholder that every frontend could send: it would collide across them.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from_text = core_schema.chain_schema(
            [
                _text_matching(UUID_PATTERN, "uuid_form", _UUID_MESSAGE),
                # Unanchored: one hex digit other than 0 anywhere makes it not the nil UUID.
                _text_matching("[1-9A-Fa-f]", "uuid_nil", _NIL_UUID_MESSAGE),
                core_schema.uuid_schema(),
            ]
        )
        return core_schema.json_or_python_schema(
            json_schema=from_text,
            # Python callers may also pass a UUID itself; it is checked as its text.
            python_schema=core_schema.no_info_before_validator_function(_uuid_as_text, from_text),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "uuid",
            "pattern": UUID_PATTERN,
            "not": {"const": NIL_UUID},
        }


class _StrictVersion:
    """The schema version as a JSON integer only: pydantic's literal also takes 1.0 and true."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.custom_error_schema(
            core_schema.chain_schema([core_schema.int_schema(strict=True), handler(source)]),
            "schema_version",
            custom_error_message=_SCHEMA_VERSION_MESSAGE,
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "integer", "const": SCHEMA_VERSION}


SchemaVersion = Annotated[Literal[1], _StrictVersion()]
EventId = Annotated[UUID, _HyphenatedUuid()]
Instant = Annotated[datetime, _Rfc3339()]
