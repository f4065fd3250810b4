"""The pure escalation policy, its recipients, and the notices it composes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from uuid import UUID, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.config import AgreementConfig, load_config
from engine.config.models import EscalationStep, default_audiences
from engine.escalation import (
    FiredStep,
    Recipients,
    due_steps,
    next_due,
    recipients,
    reinstated,
    superseded,
)
from engine.escalation.recipients import audiences_of, department_side, ola_side
from engine.notify.compose import NOTICE_NAMESPACE, Composer, notice_id, routing_key, thread_id
from engine.vocabulary import Tier
from tests.helpers import EXAMPLE_CONFIG

T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)
STEPS = [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]
TIERS: list[Tier] = ["operational", "operational", "tactical", "tactical", "strategic", "strategic"]


@cache
def config() -> AgreementConfig:
    return load_config(EXAMPLE_CONFIG)


def minutes(*values: float | None) -> list[datetime | None]:
    return [None if v is None else T0 + timedelta(minutes=v) for v in values]


def test_due_steps_are_those_come_and_not_fired_in_order() -> None:
    due_at = minutes(30, 45, 54, 60, 90, 120)
    due = due_steps(STEPS, TIERS, due_at, {0.5}, T0 + timedelta(minutes=60))
    assert [(s.step, s.tier) for s in due] == [
        (0.75, "operational"), (0.9, "tactical"), (1.0, "tactical")
    ]  # fmt: skip
    assert due[-1].is_breach
    assert next_due(STEPS, due_at, {0.5, 0.75, 0.9, 1.0}) == T0 + timedelta(minutes=90)
    assert next_due(STEPS, due_at, set(STEPS)) is None


def test_a_paused_clock_has_no_instant_for_the_steps_it_has_not_reached() -> None:
    due_at = minutes(30, None, None, None, None, None)
    assert [s.step for s in due_steps(STEPS, TIERS, due_at, set(), T0 + timedelta(days=9))] == [0.5]
    assert next_due(STEPS, due_at, {0.5}) is None


def test_a_retargeted_clock_fires_passed_steps_at_once_and_fired_steps_never() -> None:
    # Fired 0.5 and 0.75 under a 4-hour target; now P1 with one hour: 0.5..1.0 have passed.
    fired = {0.5, 0.75}
    retargeted = minutes(30, 45, 54, 60, 90, 120)
    due = due_steps(STEPS, TIERS, retargeted, fired, T0 + timedelta(minutes=70))
    assert [s.step for s in due] == [0.9, 1.0]


@given(
    st.lists(st.one_of(st.none(), st.integers(0, 300)), min_size=6, max_size=6),
    st.lists(st.integers(0, 400), min_size=1, max_size=12),
)
def test_every_step_fires_at_most_once_whatever_the_looks(
    due_minutes: list[int | None], looks: list[int]
) -> None:
    due_at = minutes(*due_minutes)
    fired: list[float] = []
    for look in sorted(looks):
        now = T0 + timedelta(minutes=look)
        for step in due_steps(STEPS, TIERS, due_at, set(fired), now):
            assert step.due_at <= now
            fired.append(step.step)
        upcoming = next_due(STEPS, due_at, set(fired))
        assert upcoming is None or upcoming > now
    assert len(fired) == len(set(fired))
    last = T0 + timedelta(minutes=max(looks))
    assert set(fired) == {s for s, at in zip(STEPS, due_at, strict=True) if at and at <= last}


def test_a_late_event_before_the_firing_supersedes_a_step_the_clock_never_reached() -> None:
    fired_at = {0.5: T0 + timedelta(minutes=31)}
    now_due = minutes(None, None, None, None, None, None)  # stopped before 0.5
    assert superseded(fired_at, STEPS, now_due, [T0 + timedelta(minutes=20)]) == [0.5]
    # An event that occurred after the firing changes nothing that was right then.
    assert superseded(fired_at, STEPS, now_due, [T0 + timedelta(minutes=40)]) == []
    # Still reached before it fired: it stands.
    assert superseded(fired_at, STEPS, minutes(31, None, None, None, None, None),
                      [T0 + timedelta(minutes=20)]) == []  # fmt: skip


def fired_step(**changes: object) -> FiredStep:
    values: dict[str, object] = {
        "ticket_id": "KS-1", "clock_key": "resolution", "metric": "resolution",
        "agreement_kind": "sla", "department": "okf", "service": "opus-loen",
        "function": "server-network", "priority": "P1", "calendar": "office",
        "target_s": 7200.0, "step": 1.0, "tier": "tactical",
        "due_at": T0 + timedelta(hours=2), "fired_at": T0 + timedelta(hours=2, seconds=1),
        "deadline": T0 + timedelta(hours=2),
    }  # fmt: skip
    values.update(changes)
    return FiredStep(**values)  # type: ignore[arg-type]


def told(**changes: object) -> tuple[list[str | None], list[str | None]]:
    """The e-mail addresses told of a step: the provider side's, the department side's."""
    heard = recipients(config(), fired_step(**changes))
    return [c.email for c in heard.provider], [c.email for c in heard.department]


HELPDESK_LEAD = "servicedesk-leder@koncernservice.kk.dk"
TEAM_OKF = "team-okf@koncernservice.kk.dk"
SERVER_LEAD = "server-netvaerk@koncernservice.kk.dk"
IT_CHIEF = "it-chef@koncernservice.kk.dk"


def test_the_department_side_is_the_tier_contact_or_the_system_owner_of_the_service() -> None:
    owner = department_side(config(), department="okf", service="opus-loen", tier="tactical")
    assert [c.email for c in owner] == ["systemejer-opus@okf.kk.dk"]
    team = department_side(config(), department="okf", service="esdh", tier="tactical")
    assert [c.email for c in team] == ["oekonomisystemer@okf.kk.dk"]
    strategic = department_side(config(), department="okf", service="print", tier="strategic")
    assert [c.email for c in strategic] == ["it-ansvarlig@okf.kk.dk"]
    assert department_side(config(), department="gone", service="print", tier="strategic") == []


def test_a_warning_goes_to_the_provider_side_only_and_the_breach_and_later_to_both() -> None:
    # The standard policy names no audiences: its defaults by fraction.
    assert told(step=0.5, tier="operational") == ([HELPDESK_LEAD, TEAM_OKF], [])
    assert told(step=0.9, tier="tactical") == ([HELPDESK_LEAD, TEAM_OKF], [])
    assert told(step=1.0, tier="tactical") == (
        [HELPDESK_LEAD, TEAM_OKF], ["systemejer-opus@okf.kk.dk"]
    )  # fmt: skip
    assert told(step=2.0, tier="strategic") == (
        [HELPDESK_LEAD, TEAM_OKF, IT_CHIEF], ["it-ansvarlig@okf.kk.dk"]
    )  # fmt: skip
    assert [default_audiences(at) for at in (0.25, 0.99, 1.0, 1.5)] == [
        ("provider",), ("provider",), ("provider", "department"), ("provider", "department")
    ]  # fmt: skip


def test_a_policy_step_names_its_audiences_and_a_step_it_lacks_gets_the_default() -> None:
    # critical-care (SOF) tells the department of its 0.75 warning as well.
    sof = {"department": "sof", "service": "omsorgssystem", "calendar": "care-24-7"}
    assert told(**sof, step=0.75, tier="tactical") == (
        [HELPDESK_LEAD, "team-sof@koncernservice.kk.dk"], ["systemejer-cura@sof.kk.dk"]
    )  # fmt: skip
    assert audiences_of(config(), "sof", 0.5) == ("provider",)
    assert audiences_of(config(), "sof", 0.75) == ("provider", "department")
    assert audiences_of(config(), "sof", 0.6) == ("provider",)  # not in the policy (any more)
    assert audiences_of(config(), "sof", 3.0) == ("provider", "department")
    breach_only = EscalationStep(at=1.0, tier="tactical", audiences=("department",))
    assert breach_only.heard_by == ("department",)
    with pytest.raises(ValidationError, match="at most once"):
        EscalationStep(at=0.5, tier="tactical", audiences=("provider", "provider"))
    with pytest.raises(ValidationError, match="at least one audience"):
        EscalationStep(at=0.5, tier="tactical", audiences=())


def test_the_provider_side_follows_the_assignment() -> None:
    # Unassigned: the helpdesk lead; assigned: the function's lead instead.
    assert told(step=0.5, tier="operational", assigned_function="server-network") == (
        [SERVER_LEAD, TEAM_OKF], []
    )  # fmt: skip
    # Assigned to a customer team with a contact: its contact instead of the lead.
    assert told(step=0.5, tier="operational", assigned_function="server-network",
                assigned_team="team-buf") == (
        ["team-buf@koncernservice.kk.dk", TEAM_OKF], []
    )  # fmt: skip
    # The department's own customer team: named once.
    assert told(step=0.5, tier="operational", assigned_function="pc-software",
                assigned_team="team-okf") == ([TEAM_OKF], [])  # fmt: skip
    # A team that is no customer team (a function's own group): the function's lead.
    assert told(step=0.5, tier="operational", assigned_function="server-network",
                assigned_team="drift-nat") == ([SERVER_LEAD, TEAM_OKF], [])  # fmt: skip
    # The strategic tier adds the IT chief.
    assert told(step=1.5, tier="strategic", assigned_function="server-network") == (
        [SERVER_LEAD, TEAM_OKF, IT_CHIEF], ["it-ansvarlig@okf.kk.dk"]
    )  # fmt: skip


def test_the_provider_side_without_a_customer_team_contact_or_a_function_lead() -> None:
    base = config()
    teams = tuple(
        t.model_copy(update={"contact": None}) if t.id == "team-okf" else t
        for t in base.provider.customer_teams
    )
    functions = {f: t for f, t in base.provider.functions.items() if f != "sales"}
    provider = base.provider.model_copy(update={"customer_teams": teams, "functions": functions})
    changed = base.model_copy(update={"provider": provider})
    heard = recipients(changed, fired_step(step=0.5, tier="operational",
                                           assigned_function="server-network"))  # fmt: skip
    assert [c.email for c in heard.provider] == [SERVER_LEAD]
    nobody = recipients(changed, fired_step(step=0.5, tier="operational",
                                            assigned_function="sales"))  # fmt: skip
    assert nobody == Recipients()


def test_an_ola_clock_tells_the_function_lead_and_at_the_strategic_tier_the_it_chief() -> None:
    ola = {"agreement_kind": "ola", "clock_key": "ola:1:server-network",
           "assigned_function": "pc-software", "assigned_team": "team-buf"}  # fmt: skip
    # Whatever the step, the policy's audiences and the ticket's assignment.
    assert told(**ola, step=0.5, tier="operational") == ([SERVER_LEAD], [])
    assert told(**ola, step=1.0, tier="tactical") == ([SERVER_LEAD], [])
    assert told(**ola, step=2.0, tier="strategic") == ([SERVER_LEAD, IT_CHIEF], [])
    assert ola_side(config(), "server-network", "operational") == [
        config().provider.functions["server-network"].lead
    ]


def test_a_contact_on_both_sides_is_told_once_on_the_provider_side() -> None:
    base = config()
    okf = base.departments["okf"]
    team_okf = next(t for t in base.provider.customer_teams if t.id == "team-okf")
    assert team_okf.contact is not None
    contacts = okf.contacts.model_copy(update={"system_owners": {"opus-loen": team_okf.contact}})
    departments = {**base.departments, "okf": okf.model_copy(update={"contacts": contacts})}
    changed = base.model_copy(update={"departments": departments})
    heard = recipients(changed, fired_step())
    assert ([c.email for c in heard.provider], heard.department) == ([HELPDESK_LEAD, TEAM_OKF], ())
    notices = Composer(changed).notices(fired_step())
    assert [(n.channel, n.recipient) for n in notices if n.recipient == TEAM_OKF] == [
        ("email", TEAM_OKF)
    ]
    assert {n.payload["audience"] for n in notices if n.recipient == TEAM_OKF} == {"provider"}


def test_an_address_two_contacts_share_gets_one_notice_of_a_step() -> None:
    # ØKF's system owner of Opus Løn reads the customer team's mailbox, under own name.
    base = config()
    okf = base.departments["okf"]
    shared = okf.contacts.system_owners["opus-loen"].model_copy(update={"email": TEAM_OKF})
    contacts = okf.contacts.model_copy(update={"system_owners": {"opus-loen": shared}})
    departments = {**base.departments, "okf": okf.model_copy(update={"contacts": contacts})}
    changed = base.model_copy(update={"departments": departments})
    heard = recipients(changed, fired_step())
    assert heard.department == (shared,)  # another contact...
    mails = [n for n in Composer(changed).notices(fired_step()) if n.channel == "email"]
    # ...but one mailbox: one notice, the provider side's.
    assert sorted((n.recipient, n.payload["audience"]) for n in mails) == [
        (HELPDESK_LEAD, "provider"), (TEAM_OKF, "provider")
    ]  # fmt: skip


def test_a_breach_notice_to_the_department_says_ticket_agreement_target_use_and_tier() -> None:
    [mail] = [
        n for n in Composer(config()).notices(fired_step()) if n.recipient.endswith("okf.kk.dk")
    ]
    assert mail.channel == "email"
    assert mail.recipient == "systemejer-opus@okf.kk.dk"
    assert mail.subject == "[SLA] Sag KS-1: løsningstid"
    assert mail.body.startswith("SLA overskredet: 100 % af målet er brugt.\nMålet er overskredet.")
    for text in ("KS-1", "SLA for Økonomiforvaltningen", "KMD Opus Løn", "2 t forretningstid",
                 "100 % af målet", "2026-11-23 12:00 CET", "taktisk niveau", "P1",
                 str(mail.notice_id)):  # fmt: skip
        assert text in mail.body, text
    assert mail.payload["ticket_id"] == "KS-1"
    assert (mail.payload["state"], mail.payload["audience"]) == ("breach", "department")
    assert "Handl nu" not in mail.body  # the provider side's wording


def test_a_warning_to_the_provider_side_says_act_now_the_deadline_and_the_department() -> None:
    step = fired_step(step=0.75, tier="operational", assigned_function="server-network")
    by_recipient = {n.recipient: n for n in Composer(config()).notices(step)}
    mail = by_recipient[SERVER_LEAD]
    assert mail.subject == "[SLA] Sag KS-1: løsningstid"
    assert mail.body.startswith(
        "SLA advarsel: 75 % af målet er brugt.\n"
        "Handl nu: målet kan stadig nås. Deadline er 2026-11-23 12:00 CET, og "
        "Økonomiforvaltningen regner med, at den holder.\n"
    )
    for text in ("Forvaltning:       Økonomiforvaltningen (kunden",
                 "Sagen ligger hos:  Server og Netværk", "Deadline:          2026-11-23 12:00 CET",
                 "operationelt niveau",
                 str(mail.notice_id)):  # fmt: skip
        assert text in mail.body, text
    assert mail.payload["audience"] == "provider"
    assert (mail.payload["assigned_function"], mail.payload["assigned_team"]) == (
        "server-network", None
    )  # fmt: skip
    unassigned = Composer(config()).notices(fired_step(step=0.75, tier="operational"))
    lead = next(n for n in unassigned if n.recipient == HELPDESK_LEAD)
    assert "Sagen ligger hos:  ikke tildelt endnu" in lead.body


def test_provider_texts_in_english_and_the_ola_clock_in_the_subject() -> None:
    # The administration function's lead reads English.
    step = fired_step(agreement_kind="ola", clock_key="ola:1:administration",
                      function="administration", service="fakturering", step=0.5,
                      tier="operational", assigned_function="administration")  # fmt: skip
    [mail] = Composer(config()).notices(step)
    assert mail.recipient == "administration@koncernservice.kk.dk"
    assert mail.subject == "[SLA] Ticket KS-1: resolution time, OLA of Administration og Økonomi"
    assert mail.body.startswith(
        "SLA warning: 50 % of the target is used.\nAct now: the target can still be met. "
        "The deadline is 2026-11-23 12:00 CET, and Økonomiforvaltningen counts on it.\n"
    )
    assert "Assigned to:       Administration og Økonomi" in mail.body
    assert mail.payload["audience"] == "provider"
    breach = fired_step(assigned_function="administration")
    _, body = Composer(config()).render(breach, "en", notice_id(breach, "email", "x"), "provider")
    assert (
        "The target has been breached. Act now to keep the breach towards "
        "Økonomiforvaltningen as short as possible."
    ) in body


def test_english_is_chosen_per_contact() -> None:
    notices = Composer(config()).notices(fired_step(service="datavarehus", step=1.0))
    [mail] = [n for n in notices if n.recipient == "systemejer-ledelsesinfo@okf.kk.dk"]
    assert mail.subject == "[SLA] Ticket KS-1: resolution time"
    assert mail.body.startswith("SLA breached: 100 % of the target is used.\n")


def test_every_step_and_side_of_a_clock_has_one_subject_and_one_thread() -> None:
    composer = Composer(config())
    steps = [fired_step(step=s, tier=t) for s, t in zip(STEPS, TIERS, strict=True)]
    notices = [n for step in steps for n in composer.notices(step)]
    assert {n.payload["audience"] for n in notices} == {"provider", "department"}
    assert {n.payload["thread"] for n in notices} == {str(thread_id("KS-1", "resolution"))}
    for language in ("da", "en"):
        subjects = {
            composer.render(step, language, notice_id(step, "email", "x"), audience)[0]
            for step in steps
            for audience in ("provider", "department")
        }
        assert len(subjects) == 1, subjects
        assert "%" not in subjects.pop()
    other = composer.notices(fired_step(clock_key="response", metric="response", step=0.5))
    assert {n.subject for n in other} == {"[SLA] Sag KS-1: responstid"}
    assert {n.payload["thread"] for n in other} == {str(thread_id("KS-1", "response"))}
    assert thread_id("KS-1", "response") != thread_id("KS-2", "response")


def test_each_channel_of_a_contact_gets_a_notice_and_the_bus_one_per_step_and_side() -> None:
    notices = Composer(config()).notices(
        fired_step(department="sof", service="omsorgssystem", calendar="care-24-7",
                   tier="operational", step=1.0, assigned_function="helpdesk")
    )  # fmt: skip
    assert sorted((n.channel, n.recipient, n.payload["audience"]) for n in notices) == [
        ("amqp", "escalation.operational.sof", "department"),
        ("amqp", "escalation.operational.sof.provider", "provider"),
        ("email", "it-vagt@sof.kk.dk", "department"),
        ("email", "servicedesk@koncernservice.kk.dk", "provider"),
        ("email", "team-sof@koncernservice.kk.dk", "provider"),
        ("webhook", "https://hooks.sof.kk.example/it-vagt", "department"),
    ]
    bus = {n.recipient: n for n in notices if n.channel == "amqp"}
    assert bus["escalation.operational.sof.provider"].recipient_name == (
        "Teamleder, Servicedesk, Kundeteam SOF"
    )
    assert bus["escalation.operational.sof"].recipient_name == "Vagthavende IT-koordinator, SOF"
    assert routing_key("strategic", "okf") == "escalation.strategic.okf"
    assert routing_key("strategic", "okf", "provider") == "escalation.strategic.okf.provider"


def test_notice_ids_are_stable_and_distinct_per_step_channel_recipient_and_side() -> None:
    step = fired_step()
    again = Composer(config()).notices(step)
    assert [n.notice_id for n in again] == [n.notice_id for n in Composer(config()).notices(step)]
    ids = {
        notice_id(step, "email", "a@x.dk"), notice_id(step, "email", "b@x.dk"),
        notice_id(step, "webhook", "a@x.dk"), notice_id(fired_step(step=1.5), "email", "a@x.dk"),
        notice_id(step, "email", "a@x.dk", "provider"),
    }  # fmt: skip
    assert len(ids) == 5
    assert all(isinstance(i, UUID) for i in ids)
    # The department side's ids are derived as they were before there were sides.
    key = "KS-1/resolution/1.0/email/a@x.dk"
    assert notice_id(step, "email", "a@x.dk") == uuid5(NOTICE_NAMESPACE, key)
    assert len({n.notice_id for n in again}) == len(again)


def test_lateness_counts_from_when_the_step_could_be_known_due() -> None:
    on_time = fired_step(known_at=T0)  # measured long before its instant
    assert on_time.late_s == 1.0
    # A retarget measured at 05:00 gave the breach an instant hours past: the engine
    # was late by what it took after that measurement, not by those hours.
    retargeted = fired_step(due_at=T0, known_at=T0 + timedelta(hours=5),
                            fired_at=T0 + timedelta(hours=5, seconds=0.25))  # fmt: skip
    assert retargeted.late_s == 0.25
    assert fired_step().late_s == 1.0  # no measurement instant: from the due instant


def test_a_superseded_step_stands_again_when_a_later_measurement_reached_it_in_time() -> None:
    fired_at = {0.5: T0 + timedelta(minutes=31)}
    # The resume arrived too: reached at 30, before it fired at 31.
    assert reinstated(fired_at, STEPS, minutes(30, None, None, None, None, None)) == [0.5]
    # Reached only at 40, after it fired: it fired too early, and stays superseded.
    assert reinstated(fired_at, STEPS, minutes(40, None, None, None, None, None)) == []
    assert reinstated(fired_at, STEPS, minutes(None, None, None, None, None, None)) == []
