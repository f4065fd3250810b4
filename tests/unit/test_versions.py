"""Agreements in versions: each checked, and a ticket keeps the one in force at its creation.

The example configuration has two versions of KFF's agreement: the first in force from
the beginning, the second from 1 January 2027 (midnight in Copenhagen), on another
calendar (with Saturdays) and with the contract's default targets for customer advice
(P3: response 4h, resolution 24h) where the first had its own (8h, 40h).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.business_time.calendar import to_us
from engine.config import ConfigError, Problem, load_config
from engine.events import TicketEvent, parse_event
from engine.sheet import render_department
from engine.simulate.core import simulate
from engine.sla_clock.agreements import Agreement, attach_sla
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from tests.helpers import EXAMPLE_CONFIG, EditYaml
from tests.streams import CPH, event

CONFIG = load_config(EXAMPLE_CONFIG)
METER = ClockMeter(CONFIG)
NEW_YEAR = datetime(2027, 1, 1, tzinfo=CPH)
OLD_ADVICE = {"response": 8 * 3600, "resolution": 40 * 3600}
NEW_ADVICE = {"response": 4 * 3600, "resolution": 24 * 3600}


def ev(type_: str, ticket: str, seq: int, at: datetime, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def advice(ticket: str, at: datetime, department: str = "kff") -> TicketEvent:
    return ev("ticket.created", ticket, 0, at, department=department,
              service="kunderaadgivning", priority="P3", subject="Råd", requester={})  # fmt: skip


def measure(events: list[TicketEvent], as_of: datetime, meter: ClockMeter = METER) -> TicketClocks:
    clocks = meter.measure(events, {}, as_of)
    assert clocks is not None
    return clocks


def clock(clocks: TicketClocks, key: str) -> Clock:
    (found,) = [c for c in clocks.clocks if c.key == key]
    return found


def problems_of(directory: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(directory)
    return caught.value.problems


def line_of(path: Path, needle: str, after: int = 0) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if n > after and needle in line)


class TestTheExample:
    def test_kff_has_two_versions_and_the_rest_one(self) -> None:
        first, second = CONFIG.versions_of_department("kff")
        assert (first.valid_from, second.valid_from) == (None, NEW_YEAR)
        assert CONFIG.version_starts() == (NEW_YEAR,)
        assert CONFIG.departments["kff"] is first  # the first is in force from the start
        assert len(CONFIG.versions_of_department("okf")) == 1

    def test_the_configuration_at_an_instant_has_the_version_in_force_then(self) -> None:
        before, after = CONFIG.at(NEW_YEAR - timedelta(microseconds=1)), CONFIG.at(NEW_YEAR)
        assert before.departments["kff"].calendar == "extended"
        assert after.departments["kff"].calendar == "extended-saturday"
        assert CONFIG.at(None) is CONFIG.at(datetime(1900, 1, 1, tzinfo=UTC))
        assert after.at(datetime(2000, 1, 1, tzinfo=UTC)) is after  # one version of each
        assert before.departments["okf"] is after.departments["okf"]

    def test_a_configuration_without_versions_is_its_own_at_every_instant(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        edit_yaml("departments/kff.yaml", lambda d: d["departments"].pop())
        unversioned = load_config(config_dir)
        assert unversioned.version_starts() == ()
        assert unversioned.at(NEW_YEAR) is unversioned


class TestChecks:
    def test_a_date_is_midnight_in_copenhagen_and_an_instant_keeps_its_offset(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def second(value: object) -> Any:
            def change(data: Any) -> None:
                data["departments"][1]["valid_from"] = value

            return change

        edit_yaml("departments/kff.yaml", second(date(2027, 7, 1)))
        assert load_config(config_dir).version_starts() == (datetime(2027, 7, 1, tzinfo=CPH),)
        edit_yaml("departments/kff.yaml", second("2027-07-01T06:00:00+00:00"))
        (start,) = load_config(config_dir).version_starts()
        assert start == datetime(2027, 7, 1, 8, tzinfo=CPH)

    def test_an_instant_without_an_offset_is_refused_at_its_line(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def naive(data: Any) -> None:
            data["departments"][1]["valid_from"] = datetime(2027, 1, 1)

        path = edit_yaml("departments/kff.yaml", naive)
        (problem,) = problems_of(config_dir)
        assert (problem.file, problem.key) == (str(path), "departments[1].valid_from")
        assert problem.line == line_of(path, "valid_from:")
        assert "has no offset" in problem.message

    def test_two_versions_from_the_same_instant_are_refused(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def twice(data: Any) -> None:
            data["departments"].append(dict(data["departments"][1]))

        path = edit_yaml("departments/kff.yaml", twice)
        (problem,) = problems_of(config_dir)
        assert (problem.file, problem.key) == (str(path), "departments[2].valid_from")
        second = line_of(path, "valid_from:")
        assert problem.line == line_of(path, "valid_from:", after=second)
        assert "two versions of department 'kff' are valid from the same instant" in (
            problem.message
        )
        # The first of the two is the second item: the line its entry starts on.
        first_at = int(problem.message.split(f"first at {path}:")[1].split(";")[0])
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[first_at - 1].startswith("- ") or lines[first_at - 1].startswith("  - ")
        assert first_at < second

    def test_the_first_version_of_a_department_has_no_valid_from(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def dated(data: Any) -> None:
            data["departments"][0]["valid_from"] = date(2026, 1, 1)

        path = edit_yaml("departments/kff.yaml", dated)
        (problem,) = problems_of(config_dir)
        assert (problem.file, problem.key) == (str(path), "departments[0].valid_from")
        assert "leave valid_from out of the first version" in problem.message

    def test_two_contracts_in_force_from_the_same_instant_are_refused(
        self, config_dir: Path
    ) -> None:
        text = (config_dir / "general_contract.yaml").read_text(encoding="utf-8")
        later = text.replace("general_contract:\n", "general_contract:\n  valid_from: 2028-01-01\n")
        for name in ("contract_2028.yaml", "contract_2028_again.yaml"):
            (config_dir / name).write_text(later, encoding="utf-8")
        (problem,) = problems_of(config_dir)
        again = config_dir / "contract_2028_again.yaml"
        assert problem.file == str(again)
        assert (problem.key, problem.line) == (
            "general_contract.valid_from",
            line_of(again, "2028"),
        )
        assert "two versions of the general contract are valid from the same instant" in (
            problem.message
        )

    def test_an_ola_must_underpin_every_sla_version_it_overlaps(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        # From 2027 KFF wants a P3 response to customer advice in 2h; sales' OLA promises
        # 4h (enough for every SLA in force before 2027).
        edit_yaml("departments/kff.yaml", _strict_advice_from_2027)
        olas = config_dir / "olas.yaml"
        problems = problems_of(config_dir)
        assert [(p.file, p.key) for p in problems] == [(str(olas), "olas[3].targets.P3.response")]
        (problem,) = problems
        sales = line_of(olas, "function: sales")
        assert problem.line == line_of(olas, "P3: {response: 4h", after=sales)
        assert "looser than the SLA target 2h it underpins (department 'kff'" in problem.message
        assert problem.message.endswith(
            "(with the agreements in force from 2027-01-01T00:00:00+01:00)"
        )

    def test_an_ola_version_in_force_with_the_stricter_sla_version_is_fine(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        edit_yaml("departments/kff.yaml", _strict_advice_from_2027)

        def stricter_sales_from_2027(data: Any) -> None:
            (sales,) = [ola for ola in data["olas"] if ola["function"] == "sales"]
            later = {**sales, "valid_from": date(2027, 1, 1)}
            later["targets"] = {**sales["targets"], "P3": {"response": "2h", "resolution": "20h"}}
            data["olas"].append(later)

        edit_yaml("olas.yaml", stricter_sales_from_2027)
        config = load_config(config_dir)
        assert [o.valid_from for o in config.versions_of_ola("sales")] == [None, NEW_YEAR]
        assert config.at(NEW_YEAR).olas["sales"].targets["P3"]["response"] == timedelta(hours=2)


def _strict_advice_from_2027(data: Any) -> None:
    data["departments"][1]["services"]["kunderaadgivning"] = {"targets": {"P3": {"response": "2h"}}}


class TestATicketKeepsItsVersion:
    def test_one_created_before_valid_from_keeps_the_old_targets_and_calendar(self) -> None:
        # Wednesday 30 December 2026, 10:00; resolved on the 31st, reopened on Saturday
        # 2 January 2027 (the new agreement is in force) and still open on the 4th.
        created = datetime(2026, 12, 30, 10, tzinfo=CPH)
        events = [
            advice("OLD", created),
            ev("ticket.responded", "OLD", 1, created + timedelta(hours=1)),
            ev("ticket.status_changed", "OLD", 2, datetime(2026, 12, 31, 10, tzinfo=CPH),
               status="resolved"),
            ev("ticket.status_changed", "OLD", 3, datetime(2027, 1, 2, 10, tzinfo=CPH),
               status="in_progress"),
        ]  # fmt: skip
        clocks = measure(events, datetime(2027, 1, 4, 9, tzinfo=CPH))
        resolution = clock(clocks, "resolution")
        assert dict(resolution.agreement.targets_s["P3"]) == OLD_ADVICE
        assert resolution.agreement.calendar == "extended"
        assert resolution.agreement.valid_from is None
        # 30 Dec 10:00-18:00 and 31 Dec 07:00-10:00; the Saturday is closed under the old
        # calendar (with the new one it would add 10:00-14:00); Monday 07:00-09:00.
        assert resolution.elapsed == timedelta(hours=8 + 3 + 2)

    def test_one_created_after_gets_the_new_targets_and_calendar(self) -> None:
        created = datetime(2027, 1, 2, 10, tzinfo=CPH)  # a Saturday
        clocks = measure([advice("NEW", created)], datetime(2027, 1, 4, 9, tzinfo=CPH))
        response = clock(clocks, "response")
        assert dict(response.agreement.targets_s["P3"]) == NEW_ADVICE
        assert response.agreement.calendar == "extended-saturday"
        assert response.agreement.valid_from == NEW_YEAR
        # 4h: the Saturday's 10:00-14:00 uses it up.
        assert response.due_us[-1] == to_us(created + timedelta(hours=4))
        assert response.state == "breached"

    def test_a_reclassification_attaches_the_version_in_force_at_creation(self) -> None:
        created = datetime(2026, 12, 30, 10, tzinfo=CPH)
        events = [
            advice("MOVED", created, department="okf"),
            ev("ticket.reclassified", "MOVED", 1, datetime(2027, 1, 4, 8, tzinfo=CPH),
               department="kff"),
        ]  # fmt: skip
        clocks = measure(events, datetime(2027, 1, 4, 9, tzinfo=CPH))
        response = clock(clocks, "response")
        assert response.agreement.department == "kff"
        assert dict(response.agreement.targets_s["P3"]) == OLD_ADVICE
        assert response.agreement.calendar == "extended"

    def test_a_snapshot_attached_before_a_reload_is_kept_after_it(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        # The engine ran without the 2027 version; the ticket (created after its date)
        # attached the first. A reload that adds the version leaves the ticket as it was.
        edit_yaml("departments/kff.yaml", lambda d: d["departments"].pop())
        created = datetime(2027, 1, 4, 8, tzinfo=CPH)
        before = measure([advice("KEPT", created)], created, ClockMeter(load_config(config_dir)))
        after = METER.measure([advice("KEPT", created)], before.agreements, created)
        assert after is not None
        assert dict(clock(after, "response").agreement.targets_s["P3"]) == OLD_ADVICE
        assert clock(after, "response").agreement.calendar == "extended"

    def test_the_version_is_kept_in_the_stored_snapshot(self) -> None:
        new = attach_sla(CONFIG, "kff", "kunderaadgivning", NEW_YEAR)
        stored = json.loads(json.dumps(new.to_json()))
        assert stored["valid_from"] == "2027-01-01T00:00:00+01:00"
        assert Agreement.from_json(stored) == new
        old = attach_sla(CONFIG, "kff", "kunderaadgivning", NEW_YEAR - timedelta(seconds=1))
        assert "valid_from" not in old.to_json()  # as stored before versions existed
        assert Agreement.from_json(old.to_json()) == old


@settings(max_examples=60, deadline=None)
@given(
    created_s=st.integers(min_value=-40 * 86400, max_value=40 * 86400),
    department=st.sampled_from(["kff", "okf"]),
)
def test_a_ticket_takes_the_version_in_force_at_its_creation(
    created_s: int, department: str
) -> None:
    created = NEW_YEAR + timedelta(seconds=created_s)
    clocks = measure([advice("T", created, department)], created + timedelta(days=3))
    agreement = clock(clocks, "response").agreement
    assert agreement == attach_sla(CONFIG.at(created), department, "kunderaadgivning")
    if department == "kff":
        expected = NEW_ADVICE if created >= NEW_YEAR else OLD_ADVICE
        assert dict(agreement.targets_s["P3"]) == expected
        assert agreement.valid_from == (NEW_YEAR if created >= NEW_YEAR else None)
    else:  # ØKF has one version: its tickets are the same on either side
        assert agreement == attach_sla(CONFIG, department, "kunderaadgivning")


def test_simulate_pins_every_ticket_to_the_versions_at_an_instant() -> None:
    # What KFF's 2027 agreement would have meant for tickets of December 2026.
    history = [advice(f"DEC-{day}", datetime(2026, 12, day, 9, tzinfo=CPH)) for day in (7, 8, 9)]
    until = datetime(2026, 12, 31, tzinfo=CPH)
    as_created = simulate(METER, history, until)
    as_drafted = simulate(ClockMeter(CONFIG, versions_at=NEW_YEAR), history, until)
    targets = {o.target_s for o in as_created.outcomes if o.metric == "response"}
    drafted = {o.target_s for o in as_drafted.outcomes if o.metric == "response"}
    assert (targets, drafted) == ({8 * 3600.0}, {4 * 3600.0})


class TestTheSheet:
    def test_it_shows_the_version_in_force_and_the_next_one(self) -> None:
        before = render_department(CONFIG, "kff", fmt="md", language="en", year=2026,
                                   at=datetime(2026, 6, 1, tzinfo=CPH))  # fmt: skip
        assert "A new version of the agreement applies to tickets created from " in before
        assert "Friday 1 January 2027" in before
        assert "This version" not in before
        after = render_department(CONFIG, "kff", fmt="md", language="en", year=2027,
                                  at=datetime(2027, 6, 1, tzinfo=CPH))  # fmt: skip
        assert "This version of the agreement applies to tickets created from Friday " in after
        assert "A new version" not in after
        assert "Saturday" in after
        assert "10:00" in after

    def test_a_department_with_one_version_says_nothing_of_versions(self) -> None:
        page = render_department(CONFIG, "okf", fmt="md", language="en", year=2026,
                                 at=datetime(2026, 6, 1, tzinfo=CPH))  # fmt: skip
        assert "version of the agreement" not in page
