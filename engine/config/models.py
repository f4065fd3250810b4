"""The agreement configuration as written in the YAML files of ``config/``.

Every model forbids unknown keys, so a misspelt key is reported rather than ignored.
References between files (a department's calendar, a service id) are checked afterwards,
in ``engine.config.checks``, once every file has been read.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from engine.business_time.spec import DEFAULT_TIMEZONE, CalendarSpec
from engine.config.durations import Duration
from engine.config.notices import NoticesConfig
from engine.vocabulary import (
    LEVELS,
    PRIORITIES,
    REQUIRED_METRICS,
    Level,
    Metric,
    Priority,
    ProviderFunction,
    Tier,
)

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Printable ASCII but @ on either side, with a dot in the domain; fullmatch, for `$`
# would let a trailing line feed through into the mail's headers.
_EMAIL_RE = re.compile(r"[!-?A-~]+@[!-?A-~]+\.[!-?A-~]+")
# Control characters, lone surrogates and the line and paragraph separators: in a mail
# header each makes every message to the contact fail for good.
_UNPRINTABLE = frozenset(("Cc", "Cs", "Zl", "Zp"))


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(f"{value!r} is not an id: lower-case letters, digits and '-'")
    return value


def _check_printable(value: str) -> str:
    bad = next((c for c in value if unicodedata.category(c) in _UNPRINTABLE), None)
    if bad is not None:
        raise ValueError(f"{value!r} holds the control character U+{ord(bad):04X}")
    return value


def _check_email(value: str) -> str:
    _check_printable(value)
    if not value.isascii():
        # The mail is sent without SMTPUTF8, where a non-ASCII address cannot go.
        raise ValueError(f"{value!r} is not an ASCII address: write the domain as xn--...")
    if not _EMAIL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _valid_from(value: object) -> datetime:
    """An instant with an offset; a date is its midnight in the default time zone."""
    if isinstance(value, str):
        try:
            value = (
                datetime.fromisoformat(value)
                if "T" in value or " " in value.strip()
                else (date.fromisoformat(value))
            )
        except ValueError:
            raise ValueError(
                f"{value!r} is not a date (2027-01-01) or an instant with an offset "
                "(2027-01-01T00:00:00+01:00)"
            ) from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            # An instant without an offset is a different instant in every time zone.
            raise ValueError(
                f"{value.isoformat()} has no offset: write one (+01:00), or a date alone "
                f"for its midnight in {DEFAULT_TIMEZONE}"
            )
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(0), ZoneInfo(DEFAULT_TIMEZONE))
    raise ValueError(f"valid_from is a date or an instant with an offset, not {value!r}")


Id = Annotated[str, AfterValidator(_check_id)]
ValidFrom = Annotated[datetime, BeforeValidator(_valid_from)]
"""When a version of an agreement comes into force: an instant with an offset, or a date
(its midnight in Europe/Copenhagen). A version without one is in force from the
beginning of time."""
Email = Annotated[str, AfterValidator(_check_email)]
PrintableName = Annotated[str, AfterValidator(_check_printable)]

Targets = dict[Priority, dict[Metric, Duration]]
"""Business-time targets per priority and metric."""


class Model(BaseModel):
    """Base of every config model: immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(Model):
    """A person or mailbox that receives notices, and the channels that reach it."""

    name: PrintableName = Field(description="shown in the To of its mails")
    email: Email | None = None
    webhook_url: HttpUrl | None = None
    amqp: bool = Field(default=False, description="also publish to helpdesk.escalations")
    language: Literal["da", "en"] = "da"

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if self.email is None and self.webhook_url is None and not self.amqp:
            raise ValueError("a contact needs at least one channel: email, webhook_url or amqp")
        return self


class CalendarEntry(CalendarSpec):
    """A named business calendar."""

    id: Id
    name: str | None = None


class Service(Model):
    """A service in the provider's catalog."""

    id: Id
    name: str
    function: ProviderFunction = Field(description="the provider function that owns it")
    batch: bool = Field(default=False, description="covered in the calendar's batch windows too")
    price_dkk: Decimal | None = Field(default=None, ge=0)
    description: str | None = None


Audience = Literal["provider", "department"]
"""The side that hears of an SLA clock's step: the provider's people who can still act
(the assigned function or team, the department's customer team, the helpdesk lead while
unassigned), or the department's contacts."""
AUDIENCES: tuple[Audience, ...] = ("provider", "department")
BREACH_AT = 1.0
"""The step that is the breach itself: the target used up."""


class EscalationStep(Model):
    """At this fraction of a clock's target, tell this tier, on these sides."""

    at: float = Field(
        gt=0,
        allow_inf_nan=False,  # a step at .inf would never fire, and nan compares with nothing
        description="fraction of the target: 0.5, 0.9, 1.0 (breach), 1.5",
    )
    tier: Tier
    audiences: tuple[Audience, ...] | None = Field(
        default=None,
        description="who hears of an SLA clock's step; default: warnings (before 1.0) the "
        "provider side, the breach and later steps both sides",
    )

    @field_validator("audiences")
    @classmethod
    def _once_each(cls, value: tuple[Audience, ...] | None) -> tuple[Audience, ...] | None:
        # (Checked here rather than with min_length, which pydantic also reports, wrongly,
        # beside an audience it does not know.)
        if value is not None and not value:
            raise ValueError("name at least one audience, or leave the key out for the default")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each audience at most once")
        return value

    @property
    def heard_by(self) -> tuple[Audience, ...]:
        """The sides told of this step: as written, else the default for its fraction."""
        return self.audiences if self.audiences is not None else default_audiences(self.at)


def default_audiences(at: float) -> tuple[Audience, ...]:
    """The sides told of a step whose policy names none: by its fraction of the target."""
    # A warning is for those who can still prevent the breach; the breach itself, and what
    # follows, is the department's business too.
    return ("provider",) if at < BREACH_AT else AUDIENCES


class EscalationPolicy(Model):
    """Increasing steps: warnings before 1.0, the breach at 1.0, escalation after it."""

    id: Id
    name: str | None = None
    steps: tuple[EscalationStep, ...] = Field(min_length=1)


class OrderedService(Model):
    """A catalog service a department has ordered; targets left out come from the contract."""

    targets: Targets = Field(default_factory=dict)


class DepartmentContacts(Model):
    """The department's people per tier; system owners per service for the tactical tier."""

    strategic: Contact | None = None
    tactical: Contact | None = None
    operational: Contact | None = None
    system_owners: dict[str, Contact] = Field(default_factory=dict)

    def for_tier(self, tier: Tier) -> Contact | None:
        """The department-wide contact of a tier."""
        contact: Contact | None = getattr(self, tier)
        return contact


class Department(Model):
    """A department (forvaltning) and its SLA."""

    id: Id
    name: str
    calendar: str | None = Field(default=None, description="default: the contract's calendar")
    customer_team: str | None = None
    contacts: DepartmentContacts
    services: dict[str, OrderedService] = Field(min_length=1)
    escalation_policy: str | None = Field(default=None, description="overrides the default")
    valid_from: ValidFrom | None = Field(
        default=None, description="this version in force from then on; none: from the start"
    )


class Ola(Model):
    """An operational level agreement of one provider function."""

    function: ProviderFunction
    name: str | None = None
    targets: Targets = Field(min_length=1)
    valid_from: ValidFrom | None = Field(
        default=None, description="this version in force from then on; none: from the start"
    )


class FunctionTeam(Model):
    """A provider function and its lead, who hears of its OLA escalations."""

    name: str
    lead: Contact


class CustomerTeam(Model):
    """A provider team dedicated to one department."""

    id: Id
    name: str
    contact: Contact | None = None


class Provider(Model):
    """The IT service unit (Koncernservice): its leads per tier and its teams."""

    name: str
    it_chief: Contact = Field(description="provider side, strategic tier")
    helpdesk_lead: Contact = Field(description="provider side, operational tier")
    functions: dict[ProviderFunction, FunctionTeam]
    customer_teams: tuple[CustomerTeam, ...] = ()


PriorityMatrix = dict[Level, dict[Level, Priority]]
"""Priority by impact (outer key) and urgency (inner key)."""


class GeneralContract(Model):
    """The municipality-wide contract: defaults for every department and the positive list."""

    default_calendar: str
    default_escalation_policy: str
    default_targets: Targets
    positive_list: tuple[str, ...] = Field(
        min_length=1, description="catalog services departments may order"
    )
    priority_matrix: PriorityMatrix
    valid_from: ValidFrom | None = Field(
        default=None, description="this version in force from then on; none: from the start"
    )

    @model_validator(mode="after")
    def _complete(self) -> GeneralContract:
        missing = [
            f"{p}.{m}"
            for p in PRIORITIES
            for m in REQUIRED_METRICS
            if m not in self.default_targets.get(p, {})
        ]
        if missing:
            raise ValueError(f"default_targets lacks {', '.join(missing)}")
        holes = [
            f"impact {i} x urgency {u}"
            for i in LEVELS
            for u in LEVELS
            if u not in self.priority_matrix.get(i, {})
        ]
        if holes:
            raise ValueError(f"priority_matrix lacks {', '.join(holes)}")
        return self


class ConfigFile(Model):
    """One YAML file of ``config/``: any of these sections, each at most once per file."""

    calendars: tuple[CalendarEntry, ...] = ()
    services: tuple[Service, ...] = ()
    escalation_policies: tuple[EscalationPolicy, ...] = ()
    olas: tuple[Ola, ...] = ()
    departments: tuple[Department, ...] = ()
    general_contract: GeneralContract | None = None
    provider: Provider | None = None
    notices: NoticesConfig | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, value: object) -> object:
        # YAML reads a section left blank (`provider:`) as null: a slip, not an absence.
        if value is None:
            raise ValueError("the section is empty: fill it in or remove the key")
        return value
