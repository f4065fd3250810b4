"""The pure escalation policy, its recipients, and the notices it composes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from engine.config import AgreementConfig, load_config
from engine.escalation import FiredStep, due_steps, next_due, recipients, reinstated, superseded
from engine.notify.compose import Composer, notice_id
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


def test_tactical_tier_goes_to_the_system_owner_of_the_service_where_one_is_named() -> None:
    owner = recipients(config(), agreement_kind="sla", department="okf", service="opus-loen",
                       function="server-network", tier="tactical")  # fmt: skip
    assert [c.email for c in owner] == ["systemejer-opus@okf.kk.dk"]
    team = recipients(config(), agreement_kind="sla", department="okf", service="esdh",
                      function="pc-software", tier="tactical")  # fmt: skip
    assert [c.email for c in team] == ["oekonomisystemer@okf.kk.dk"]
    strategic = recipients(config(), agreement_kind="default", department="okf", service="print",
                           function="pc-software", tier="strategic")  # fmt: skip
    assert [c.email for c in strategic] == ["it-ansvarlig@okf.kk.dk"]


def test_an_ola_clock_tells_the_function_lead_and_at_the_strategic_tier_the_it_chief() -> None:
    lead = recipients(config(), agreement_kind="ola", department="okf", service="opus-loen",
                      function="server-network", tier="operational")  # fmt: skip
    assert [c.email for c in lead] == ["server-netvaerk@koncernservice.kk.dk"]
    top = recipients(config(), agreement_kind="ola", department="okf", service="opus-loen",
                     function="server-network", tier="strategic")  # fmt: skip
    assert [c.email for c in top] == [
        "server-netvaerk@koncernservice.kk.dk", "it-chef@koncernservice.kk.dk"
    ]  # fmt: skip


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


def test_a_breach_notice_says_ticket_agreement_target_use_deadline_and_tier_in_danish() -> None:
    [mail] = Composer(config()).notices(fired_step())
    assert mail.channel == "email"
    assert mail.recipient == "systemejer-opus@okf.kk.dk"
    assert mail.subject == "[SLA overskredet] Sag KS-1: løsningstid, 100 % af målet brugt"
    for text in ("KS-1", "SLA for Økonomiforvaltningen", "KMD Opus Løn", "2 t forretningstid",
                 "100 % af målet", "2026-11-23 12:00 CET", "taktisk niveau", "P1",
                 str(mail.notice_id)):  # fmt: skip
        assert text in mail.body, text
    assert mail.payload["ticket_id"] == "KS-1"
    assert mail.payload["state"] == "breach"


def test_english_is_chosen_per_contact() -> None:
    [mail] = Composer(config()).notices(fired_step(service="datavarehus", step=0.75))
    assert mail.recipient == "systemejer-ledelsesinfo@okf.kk.dk"
    assert mail.subject.startswith("[SLA warning] Ticket KS-1: resolution time, 75 % ")


def test_each_channel_of_a_contact_gets_a_notice_and_the_bus_one_per_step() -> None:
    notices = Composer(config()).notices(
        fired_step(department="sof", service="omsorgssystem", calendar="care-24-7",
                   tier="operational", step=0.25)
    )  # fmt: skip
    assert sorted((n.channel, n.recipient) for n in notices) == [
        ("amqp", "escalation.operational.sof"),
        ("email", "it-vagt@sof.kk.dk"),
        ("webhook", "https://hooks.sof.kk.example/it-vagt"),
    ]


def test_notice_ids_are_stable_and_distinct_per_step_channel_and_recipient() -> None:
    step = fired_step()
    again = Composer(config()).notices(step)
    assert [n.notice_id for n in again] == [n.notice_id for n in Composer(config()).notices(step)]
    ids = {
        notice_id(step, "email", "a@x.dk"), notice_id(step, "email", "b@x.dk"),
        notice_id(step, "webhook", "a@x.dk"), notice_id(fired_step(step=1.5), "email", "a@x.dk"),
    }  # fmt: skip
    assert len(ids) == 4
    assert all(isinstance(i, UUID) for i in ids)


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
