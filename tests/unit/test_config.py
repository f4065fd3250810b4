"""Agreement configuration: the example loads; each broken config names file, line and key."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.business_time import BusinessCalendar
from engine.config import ConfigError, Problem, checks, load_config
from engine.vocabulary import MEASURED_METRICS
from tests.helpers import EXAMPLE_CONFIG, EditYaml


def problems_of(directory: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_config(directory)
    return caught.value.problems


def only_problem(directory: Path) -> Problem:
    problems = problems_of(directory)
    assert len(problems) == 1, problems
    return problems[0]


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


class TestExample:
    def test_loads(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        assert len(config.departments) == 7
        assert 15 <= len(config.services) <= 25
        functions = {service.function for service in config.services.values()}
        assert functions == {"server-network", "pc-software", "helpdesk", "sales", "administration"}
        names = {dep.name for dep in config.departments.values()}
        assert "Børne- og Ungdomsforvaltningen" in names
        assert "Økonomiforvaltningen" in names

    def test_has_office_24_7_and_batch_calendars(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        office = BusinessCalendar.from_config(config.calendars["office"])
        care = BusinessCalendar.from_config(config.calendars["care-24-7"])
        week = timedelta(days=7)
        start = datetime(2026, 11, 23, tzinfo=config.calendars["office"].zone)  # a Monday
        assert care.elapsed(start, start + week) == week
        assert office.elapsed(start, start + week) == timedelta(hours=4 * 8 + 7)
        batch = office.with_batch_windows()
        assert batch.elapsed(start, start + week) > office.elapsed(start, start + week)
        assert any(service.batch for service in config.services.values())

    def test_is_immutable(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        with pytest.raises(ValidationError, match="frozen"):
            config.departments["buf"].name = "x"  # type: ignore[misc]

    def test_targets_of_ordered_service_fall_back_to_the_contract_per_target(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        kind, targets = config.targets_for("buf", "skole-it-aula")
        assert kind == "sla"
        assert targets["P1"]["resolution"] == timedelta(hours=3)  # agreed by BUF
        defaults = config.general_contract.default_targets
        assert targets["P4"]["resolution"] == defaults["P4"]["resolution"]

    def test_service_not_ordered_runs_under_the_default_targets(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        ordered = set(config.departments["buf"].services)
        not_ordered = next(s for s in config.services if s not in ordered)
        kind, targets = config.targets_for("buf", not_ordered)
        assert kind == "default"
        assert targets == config.general_contract.default_targets

    def test_policy_and_calendar_overrides(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        assert config.policy_for("sof").id == "critical-care"
        assert config.policy_for("buf").id == "standard"
        assert config.calendar_for("sof").id == "care-24-7"
        assert config.priority("high", "high") == "P1"
        assert config.priority("low", "low") == "P4"


class TestUnknownReferences:
    def test_service_ordered_by_a_department(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["services"].update({"no-such-service": {}}),
        )
        problem = only_problem(path.parent.parent)
        assert problem.file == str(path)
        assert problem.key == "departments[0].services.no-such-service"
        assert "unknown service 'no-such-service'" in problem.message
        assert problem.line == line_of(path, "no-such-service")

    def test_calendar(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/okf.yaml", lambda d: d["departments"][0].update(calendar="weekends")
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].calendar"
        known = "care-24-7, extended, extended-saturday, office"
        assert f"unknown calendar 'weekends' (known: {known})" in str(problem)

    def test_function(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml("catalog.yaml", lambda d: d["services"][0].update(function="network"))
        problem = only_problem(path.parent)
        assert problem.key == "services[0].function"
        assert "'server-network'" in problem.message
        assert "(got 'network')" in problem.message

    def test_tier(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "escalation.yaml",
            lambda d: d["escalation_policies"][0]["steps"][2].update(tier="management"),
        )
        problem = only_problem(path.parent)
        assert problem.key == "escalation_policies[0].steps[2].tier"
        assert "'operational', 'tactical' or 'strategic'" in problem.message

    def test_escalation_policy_of_a_department(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/sf.yaml", lambda d: d["departments"][0].update(escalation_policy="gentle")
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].escalation_policy"
        assert "unknown escalation policy 'gentle'" in problem.message

    def test_positive_list_entry(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"]["positive_list"].append("telefax"),
        )
        problem = only_problem(path.parent)
        assert problem.key.startswith("general_contract.positive_list[")
        assert "unknown service 'telefax'" in problem.message

    def test_customer_team(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0].update(customer_team="team-nobody"),
        )
        problem = only_problem(path.parent.parent)
        assert (problem.file, problem.key) == (str(path), "departments[0].customer_team")
        assert problem.message.startswith("unknown customer team 'team-nobody' (known: team-bif,")
        assert problem.line == line_of(path, "customer_team:")

    def test_default_calendar(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"].update(default_calendar="ofice"),
        )
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), "general_contract.default_calendar")
        known = "care-24-7, extended, extended-saturday, office"
        assert problem.message == f"unknown calendar 'ofice' (known: {known})"

    def test_default_escalation_policy(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"].update(default_escalation_policy="std"),
        )
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (
            str(path),
            "general_contract.default_escalation_policy",
        )
        assert problem.message == (
            "unknown escalation policy 'std' (known: critical-care, standard)"
        )

    def test_system_owner_of_a_service_not_ordered(self, edit_yaml: EditYaml) -> None:
        owner = {"name": "Systemejer, OPUS", "email": "opus@buf.kk.dk"}
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["contacts"]["system_owners"].update({"opus-loen": owner}),
        )
        problem = only_problem(path.parent.parent)
        assert problem.file == str(path)
        assert problem.key == "departments[0].contacts.system_owners.opus-loen"
        assert problem.message == (
            "system owner named for 'opus-loen', which the department has not ordered"
        )

    def test_service_off_the_positive_list(self, edit_yaml: EditYaml, config_dir: Path) -> None:
        edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"]["positive_list"].remove("print"),
        )
        problems = problems_of(config_dir)
        example = load_config(EXAMPLE_CONFIG)
        ordering = [  # each version of a department that orders it: KFF's two
            version
            for department_id in example.departments
            for version in example.versions_of_department(department_id)
            if "print" in version.services
        ]
        assert len(problems) == len(ordering) > 0
        assert len({p.line for p in problems if p.file.endswith("kff.yaml")}) == 2
        for problem in problems:
            assert problem.key.endswith(".services.print")
            assert "'print' is not on the general contract's positive list" in problem.message


class TestDuplicateIds:
    def test_service_listed_twice(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml("catalog.yaml", lambda d: d["services"].append(dict(d["services"][3])))
        problem = only_problem(path.parent)
        assert problem.file == str(path)
        assert "duplicate id 'opus-loen', first defined at" in problem.message
        assert f"catalog.yaml:{line_of(path, 'id: opus-loen')}" in problem.message

    def test_department_in_two_files(self, config_dir: Path) -> None:
        copy = config_dir / "departments" / "buf2.yaml"  # read after buf.yaml
        copy.write_text((config_dir / "departments" / "buf.yaml").read_text("utf-8"), "utf-8")
        problem = only_problem(config_dir)
        assert problem.file == str(copy)
        assert "duplicate id 'buf', first defined at" in problem.message
        assert "departments/buf.yaml:" in problem.message

    def test_two_olas_for_one_function(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml("olas.yaml", lambda d: d["olas"].append(dict(d["olas"][0])))
        problem = only_problem(path.parent)
        assert "a second OLA for function 'server-network', first defined at" in problem.message

    def test_duplicate_yaml_key(self, config_dir: Path) -> None:
        path = config_dir / "departments" / "kff.yaml"
        text = path.read_text("utf-8").replace("      print: {}\n", "      print: {}\n" * 2)
        path.write_text(text, "utf-8")
        problem = only_problem(config_dir)
        assert problem.key == "departments[0].services.print"
        assert "duplicate key 'print'" in problem.message
        assert problem.line == line_of(path, "print: {}") + 1

    def test_customer_team_listed_twice(self, edit_yaml: EditYaml) -> None:
        def copy_first(data: Any) -> None:
            teams = data["provider"]["customer_teams"]
            teams.append({**teams[0], "name": "Kundeteam BUF, igen"})

        path = edit_yaml("provider.yaml", copy_first)
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), "provider.customer_teams[7].id")
        assert problem.message == (
            f"duplicate id 'team-buf', first defined at {path}:{line_of(path, 'id: team-buf')}"
        )

    def test_service_on_the_positive_list_twice(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"]["positive_list"].append("print"),
        )
        last = len(load_config(EXAMPLE_CONFIG).general_contract.positive_list)
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), f"general_contract.positive_list[{last}]")
        assert problem.message == (
            f"service 'print' is listed twice, first at {path}:{line_of(path, '- print')}"
        )

    def test_contract_in_two_files(self, config_dir: Path) -> None:
        contract = (config_dir / "general_contract.yaml").read_text("utf-8")
        (config_dir / "contract-copy.yaml").write_text(contract, "utf-8")
        problem = only_problem(config_dir)
        assert "general_contract is defined twice" in problem.message


def test_ola_looser_than_the_sla_it_underpins(edit_yaml: EditYaml) -> None:
    def loosen(data: Any) -> None:
        pc = next(ola for ola in data["olas"] if ola["function"] == "pc-software")
        pc["targets"]["P1"]["resolution"] = "8h"

    path = edit_yaml("olas.yaml", loosen)
    problem = only_problem(path.parent)
    assert problem.key.endswith(".targets.P1.resolution")
    assert "OLA target 8h is looser than the SLA target 2h it underpins" in problem.message
    assert "an OLA must at least meet the SLA" in problem.message
    assert problem.line == line_of(path, "resolution: 8h")


def test_ola_looser_than_a_default_target_a_department_left_out(edit_yaml: EditYaml) -> None:
    def loosen(data: Any) -> None:
        sales = next(ola for ola in data["olas"] if ola["function"] == "sales")
        sales["targets"]["P1"] = {"resolution": "5h"}  # contract default P1 resolution: 4h

    path = edit_yaml("olas.yaml", loosen)
    problem = only_problem(path.parent)
    assert "OLA target 5h is looser than the SLA target 4h" in problem.message


class TestTargetsNoClockMeasures:
    """A target of a metric its agreement's clocks do not measure (MEASURED_METRICS)."""

    def test_an_ola_update_target_is_refused_at_its_file_line_and_key(
        self, edit_yaml: EditYaml
    ) -> None:
        def add_update(data: Any) -> None:
            ola = next(ola for ola in data["olas"] if ola["function"] == "server-network")
            ola["targets"]["P1"]["update"] = "8h"  # looser than the SLA's 1h too

        path = edit_yaml("olas.yaml", add_update)
        # One problem: an OLA target nobody measures is not compared with the SLA either.
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), "olas[0].targets.P1.update")
        assert problem.line == line_of(path, "update: 8h")
        assert problem.message == (
            "OLA clocks measure resolution and response, not 'update': no clock would ever "
            "meet or breach this target; remove it"
        )
        assert str(problem).startswith(f"{path}:{problem.line}: olas[0].targets.P1.update: ")

    def test_every_target_of_a_metric_no_clock_measures_is_refused_where_written(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Were update measured nowhere, the example's every update target would be refused.
        unmeasured = {kind: frozenset({"response", "resolution"}) for kind in MEASURED_METRICS}
        monkeypatch.setattr(checks, "MEASURED_METRICS", unmeasured)
        contract = EXAMPLE_CONFIG / "general_contract.yaml"
        sof = EXAMPLE_CONFIG / "departments" / "sof.yaml"
        assert [(p.file, p.line, p.key) for p in problems_of(EXAMPLE_CONFIG)] == [
            (str(contract), line_of(contract, "P1: {response: 30m"),
             "general_contract.default_targets.P1.update"),
            (str(contract), line_of(contract, "P2: {response: 1h,"),
             "general_contract.default_targets.P2.update"),
            (str(sof), line_of(sof, "P1: {response: 15m, resolution: 2h, update"),
             "departments[0].services.omsorgssystem.targets.P1.update"),
            (str(sof), line_of(sof, "P2: {response: 30m, resolution: 4h, update"),
             "departments[0].services.omsorgssystem.targets.P2.update"),
        ]  # fmt: skip

    def test_the_contracts_defaults_must_be_measured_under_both_agreements_they_serve(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The defaults fill in what an SLA leaves out and are the targets of services not
        # ordered: a metric measured under SLAs alone would go unmeasured for the latter.
        narrower = {**MEASURED_METRICS, "default": frozenset({"response", "resolution"})}
        monkeypatch.setattr(checks, "MEASURED_METRICS", narrower)
        problems = problems_of(EXAMPLE_CONFIG)
        assert [p.key for p in problems] == [
            "general_contract.default_targets.P1.update",
            "general_contract.default_targets.P2.update",
        ]
        assert problems[0].message.startswith(
            "clocks under the general contract's defaults measure resolution and response, "
            "not 'update'"
        )


def test_customer_team_serving_two_departments(edit_yaml: EditYaml, config_dir: Path) -> None:
    path = edit_yaml(
        "departments/okf.yaml", lambda d: d["departments"][0].update(customer_team="team-buf")
    )
    problem = only_problem(config_dir)
    buf = config_dir / "departments" / "buf.yaml"
    assert (problem.file, problem.key) == (str(path), "departments[0].customer_team")
    assert problem.message == (
        f"customer team 'team-buf' already serves department 'buf' "
        f"({buf}:{line_of(buf, 'customer_team:')}); "
        "a customer team is dedicated to one department"
    )


class TestFunctionLeads:
    def test_ola_whose_function_has_no_lead(self, edit_yaml: EditYaml, config_dir: Path) -> None:
        path = edit_yaml("provider.yaml", lambda d: d["provider"]["functions"].pop("sales"))
        problems = {problem.key: problem for problem in problems_of(config_dir)}
        olas = config_dir / "olas.yaml"
        ola = problems.pop(next(key for key in problems if key.startswith("olas[")))
        assert ola.file == str(olas)
        assert ola.message == (
            "the provider names no lead for function 'sales', "
            "so escalations of this OLA reach nobody"
        )
        assert ola.line == line_of(olas, "function: sales")
        # Its services need the lead as much: reported once, in the provider.
        assert list(problems) == ["provider.functions"]
        assert problems["provider.functions"].file == str(path)

    def test_services_whose_function_has_no_lead(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def drop_sales_ola(data: Any) -> None:
            data["olas"] = [ola for ola in data["olas"] if ola["function"] != "sales"]

        edit_yaml("olas.yaml", drop_sales_ola)
        path = edit_yaml("provider.yaml", lambda d: d["provider"]["functions"].pop("sales"))
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(path), "provider.functions")
        assert problem.message.startswith(
            "the provider names no lead for function 'sales', so escalations of its services "
            "(kunderaadgivning, "
        )
        assert problem.message.endswith(") reach nobody on the provider side")
        assert problem.line == line_of(path, "functions:")


class TestHolidayLocations:
    @pytest.mark.parametrize(
        ("change", "key", "message"),
        [
            ({"country": "XX"}, "country", "unknown holiday country 'XX' (ISO 3166 alpha-2)"),
            ({"subdivision": "99"}, "subdivision", "unknown subdivision '99' of DK"),
            (
                {"country": None, "subdivision": "84"},
                "subdivision",
                "subdivision '84' needs a country",
            ),
            (
                {"categories": ["public", "bank"]},
                "categories",
                "unknown holiday categories ['bank'] for DK (known: optional, public)",
            ),
        ],
    )
    def test_error_names_the_key(
        self, edit_yaml: EditYaml, change: dict[str, Any], key: str, message: str
    ) -> None:
        path = edit_yaml("calendars.yaml", lambda d: d["calendars"][0]["holidays"].update(change))
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), f"calendars[0].holidays.{key}")
        assert problem.message == message

    def test_unknown_country_alone_is_reported(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "calendars.yaml",
            lambda d: d["calendars"][0]["holidays"].update(
                country="XX", subdivision="84", categories=["bank"]
            ),
        )
        problem = only_problem(path.parent)
        assert problem.key == "calendars[0].holidays.country"


class TestEscalationSteps:
    @pytest.mark.parametrize("value", [float("inf"), float("nan")])
    def test_step_that_is_not_finite(self, edit_yaml: EditYaml, value: float) -> None:
        path = edit_yaml(
            "escalation.yaml",
            lambda d: d["escalation_policies"][0]["steps"].append(
                {"at": value, "tier": "strategic"}
            ),
        )
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), "escalation_policies[0].steps[6].at")
        assert problem.message == f"Input should be a finite number (got {value!r})"

    def test_steps_that_do_not_increase(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "escalation.yaml", lambda d: d["escalation_policies"][0]["steps"][2].update(at=0.7)
        )
        problem = only_problem(path.parent)
        assert problem.key == "escalation_policies[0].steps[2].at"
        assert problem.message == "steps must increase: 0.7 follows 0.75"

    def test_policy_without_a_breach_step(self, edit_yaml: EditYaml) -> None:
        def drop_breach(data: Any) -> None:
            steps = data["escalation_policies"][0]["steps"]
            steps[:] = [step for step in steps if step["at"] != 1.0]

        path = edit_yaml("escalation.yaml", drop_breach)
        problem = only_problem(path.parent)
        assert "no step at 1.0" in problem.message

    def test_step_at_zero(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "escalation.yaml", lambda d: d["escalation_policies"][0]["steps"][0].update(at=0)
        )
        problem = only_problem(path.parent)
        assert problem.key == "escalation_policies[0].steps[0].at"
        assert "greater than 0" in problem.message


class TestCalendarWithoutOpenTime:
    def test_every_weekday_closed(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml("calendars.yaml", lambda d: d["calendars"][1].update(week={"mon": []}))
        problem = only_problem(path.parent)
        assert problem.key == "calendars[1].week"
        assert "no open time in any year" in problem.message

    def test_a_whole_year_of_closure_days(self, edit_yaml: EditYaml) -> None:
        year = [date(2027, 1, 1) + timedelta(days=n) for n in range(365)]
        path = edit_yaml(
            "calendars.yaml", lambda d: d["calendars"][1]["holidays"].update(dates=year)
        )
        problem = only_problem(path.parent)
        assert problem.key == "calendars[1].holidays.dates"
        assert "no open time in 2027" in problem.message


class TestTierWithoutContact:
    def test_strategic_contact_missing(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml", lambda d: d["departments"][0]["contacts"].pop("strategic")
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].contacts"
        policy = path.parent.parent / "escalation.yaml"
        assert problem.message == (
            "escalation policy 'standard' tells the department side at the strategic tier "
            f"(step 1.5, {policy}:{line_of(policy, '{at: 1.5, tier: strategic}')}), "
            "but the department has no strategic contact"
        )

    def test_tactical_tier_served_by_system_owners_of_every_service(
        self, edit_yaml: EditYaml
    ) -> None:
        owner = {"name": "Systemejer", "email": "ejer@buf.kk.dk"}

        def owners_only(data: Any) -> None:
            dep = data["departments"][0]
            dep["contacts"].pop("tactical")
            dep["contacts"]["system_owners"] = dict.fromkeys(dep["services"], owner)

        path = edit_yaml("departments/buf.yaml", owners_only)
        load_config(path.parent.parent)

    def test_tactical_contact_missing(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml", lambda d: d["departments"][0]["contacts"].pop("tactical")
        )
        problem = only_problem(path.parent.parent)
        assert "no tactical contact" in problem.message

    def test_tier_the_policy_never_uses_needs_no_contact(self, edit_yaml: EditYaml) -> None:
        def operational_only(data: Any) -> None:
            data["departments"][0]["contacts"].pop("strategic")
            data["departments"][0]["escalation_policy"] = "quiet"

        path = edit_yaml("departments/buf.yaml", operational_only)
        (path.parent.parent / "quiet.yaml").write_text(
            "escalation_policies:\n"
            "  - id: quiet\n"
            "    steps: [{at: 1.0, tier: operational}, {at: 2.0, tier: tactical}]\n",
            "utf-8",
        )
        load_config(path.parent.parent)

    def test_contact_without_any_channel(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["contacts"]["operational"].update(email=None, amqp=False),
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].contacts.operational"
        assert "at least one channel" in problem.message

    @pytest.mark.parametrize(
        ("name", "code"),
        [("IT-support\r\nBcc: x@evil.example", "000D"), ("IT-support\n", "000A"),
         ("IT\x00support", "0000"), ("IT\tsupport", "0009"), ("IT\u2028support", "2028"),
         ("IT\x1bsupport", "001B")],
    )  # fmt: skip
    def test_contact_name_with_a_control_character(
        self, config_dir: Path, name: str, code: str
    ) -> None:
        path, line = self.write_operational(config_dir, "name: IT-support, BUF", "name", name)
        problem = only_problem(config_dir)
        assert str(problem) == (
            f"{path}:{line}: departments[0].contacts.operational.name: "
            f"{name!r} holds the control character U+{code}"
        )

    def test_contact_name_with_danish_letters_and_punctuation_is_fine(
        self, edit_yaml: EditYaml
    ) -> None:
        name = 'Åse Ærø-Østergård, "IT" (BUF) \u200d'
        path = edit_yaml("departments/buf.yaml", lambda d: d["departments"][0]["contacts"]
                         ["operational"].update(name=name))  # fmt: skip
        contact = load_config(path.parent.parent).departments["buf"].contacts.operational
        assert contact is not None
        assert contact.name == name

    @pytest.mark.parametrize(
        ("email", "message"),
        [("it@buf.kk.dk\n", "holds the control character U+000A"),
         ("it@buf.kk.dk\r\nBcc: x@evil.example", "holds the control character U+000D"),
         ("it\x00@buf.kk.dk", "holds the control character U+0000"),
         ("it@buf.kk.dk\x7f", "holds the control character U+007F"),
         ("åse@buf.kk.dk", "is not an ASCII address: write the domain as xn--..."),
         ("it@københavn.dk", "is not an ASCII address: write the domain as xn--..."),
         ("it support@buf.kk.dk", "is not an e-mail address")],
    )  # fmt: skip
    def test_contact_email_that_cannot_be_mailed(
        self, config_dir: Path, email: str, message: str
    ) -> None:
        old = "email: it-support@buf.kk.dk"
        path, line = self.write_operational(config_dir, old, "email", email)
        problem = only_problem(config_dir)
        assert str(problem) == (
            f"{path}:{line}: departments[0].contacts.operational.email: {email!r} {message}"
        )

    @staticmethod
    def write_operational(config_dir: Path, old: str, key: str, value: str) -> tuple[Path, int]:
        """Write BUF's operational contact's ``key`` as a double-quoted YAML escape."""
        path = config_dir / "departments" / "buf.yaml"
        line = line_of(path, old)
        # A JSON string is a YAML double-quoted scalar: \r, \n, \u0000 and all.
        text = path.read_text("utf-8").replace(old, f"{key}: {json.dumps(value)}", 1)
        path.write_text(text, "utf-8")
        return path, line


class TestAudiences:
    """Each side a policy step tells must reach someone, for every department using it."""

    def test_the_example_names_audiences_and_defaults_the_rest(self) -> None:
        config = load_config(EXAMPLE_CONFIG)
        care = config.escalation_policies["critical-care"].steps
        assert [(s.at, s.heard_by) for s in care[1:4]] == [
            (0.5, ("provider",)),
            (0.75, ("provider", "department")),
            (1.0, ("provider", "department")),
        ]

    @pytest.mark.parametrize(
        ("audiences", "key", "message"),
        [
            ([], "audiences", "name at least one audience, or leave the key out for the default"),
            (["provider", "provider"], "audiences", "each audience at most once"),
            (
                ["customer"],
                "audiences[0]",
                "Input should be 'provider' or 'department' (got 'customer')",
            ),
        ],
    )
    def test_audiences_that_are_not_sides(
        self, edit_yaml: EditYaml, audiences: list[str], key: str, message: str
    ) -> None:
        path = edit_yaml(
            "escalation.yaml",
            lambda d: d["escalation_policies"][0]["steps"][1].update(audiences=audiences),
        )
        problem = only_problem(path.parent)
        assert (problem.file, problem.key) == (str(path), f"escalation_policies[0].steps[1].{key}")
        assert problem.message == message
        written = "- customer" if audiences == ["customer"] else "audiences:"
        assert problem.line == line_of(path, written)

    def test_a_warning_told_to_a_department_without_a_contact_for_its_tier(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        # Warnings go to the provider side: BUF needs no operational contact for them...
        dep = edit_yaml(
            "departments/buf.yaml", lambda d: d["departments"][0]["contacts"].pop("operational")
        )
        load_config(config_dir)
        # ...until the policy tells the department side of one.
        policy = edit_yaml(
            "escalation.yaml",
            lambda d: d["escalation_policies"][0]["steps"][1].update(
                audiences=["provider", "department"]
            ),
        )
        problem = only_problem(config_dir)
        assert (problem.file, problem.key) == (str(dep), "departments[0].contacts")
        assert problem.line == line_of(dep, "contacts:")
        assert problem.message == (
            "escalation policy 'standard' tells the department side at the operational tier "
            f"(step 0.75, {policy}:{line_of(policy, 'at: 0.75')}), "
            "but the department has no operational contact"
        )

    def test_a_breach_told_to_the_provider_side_alone_needs_no_department_contact(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        def provider_only_when_strategic(data: Any) -> None:
            for step in data["escalation_policies"][0]["steps"]:
                if step["tier"] == "strategic":
                    step["audiences"] = ["provider"]

        edit_yaml("escalation.yaml", provider_only_when_strategic)
        edit_yaml(
            "departments/buf.yaml", lambda d: d["departments"][0]["contacts"].pop("strategic")
        )
        assert "strategic" not in {
            s.tier
            for s in load_config(config_dir).escalation_policies["standard"].steps
            if "department" in s.heard_by
        }

    def test_the_provider_side_of_a_department_without_a_customer_team_contact(
        self, edit_yaml: EditYaml, config_dir: Path
    ) -> None:
        # With a customer team contact every assigned ticket reaches someone; without
        # one, a ticket assigned to a function without a lead reaches nobody.
        edit_yaml("provider.yaml", lambda d: d["provider"]["customer_teams"][0].pop("contact"))
        load_config(config_dir)  # every function has its lead
        edit_yaml("provider.yaml", lambda d: d["provider"]["functions"].pop("sales"))
        dep = config_dir / "departments" / "buf.yaml"
        policy = config_dir / "escalation.yaml"
        problems = {(p.file, p.key): p for p in problems_of(config_dir)}
        problem = problems[(str(dep), "departments[0].customer_team")]
        assert problem.line == line_of(dep, "customer_team: team-buf")
        assert problem.message == (
            "escalation policy 'standard' tells the provider side "
            f"(step 0.5, {policy}:{line_of(policy, '{at: 0.5, tier: operational}')}), "
            "but a ticket assigned to sales reaches nobody there: the provider names no lead "
            "for it, and the department customer team 'team-buf' has no contact"
        )
        # Only BUF: every other department's customer team has a contact.
        assert [key for key in problems if key[1].endswith("customer_team")] == [
            (str(dep), "departments[0].customer_team")
        ]


class TestFileLevelProblems:
    def test_unknown_key_points_at_its_line(self, config_dir: Path) -> None:
        path = config_dir / "departments" / "tmf.yaml"
        text = path.read_text("utf-8").replace(
            "    customer_team:", "    costumer:  x\n    customer_team:", 1
        )
        path.write_text(text, "utf-8")
        problem = only_problem(config_dir)
        assert str(problem) == (
            f"{path}:{line_of(path, 'costumer:')}: departments[0].costumer: unknown key"
        )

    def test_bad_duration(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["services"]["skole-it-aula"]["targets"]["P1"].update(
                response="2d"
            ),
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].services.skole-it-aula.targets.P1.response"
        assert "business days differ per calendar" in problem.message

    def test_bad_priority_key(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "departments/buf.yaml",
            lambda d: d["departments"][0]["services"]["skole-it-aula"]["targets"].update(
                P5={"response": "1h"}
            ),
        )
        problem = only_problem(path.parent.parent)
        assert problem.key == "departments[0].services.skole-it-aula.targets.P5"
        assert "'P1', 'P2', 'P3' or 'P4'" in problem.message

    def test_not_yaml(self, config_dir: Path) -> None:
        path = config_dir / "olas.yaml"
        path.write_text("olas:\n  - function: sales\n    targets: {P1: [\n", "utf-8")
        problem = only_problem(config_dir)
        assert problem.file == str(path)
        assert "not valid YAML" in problem.message
        assert problem.line is not None

    def test_missing_section(self, config_dir: Path) -> None:
        (config_dir / "provider.yaml").unlink()
        problem = only_problem(config_dir)
        assert problem.key == "provider"
        assert "no file defines this section" in problem.message

    def test_missing_directory(self, tmp_path: Path) -> None:
        problem = only_problem(tmp_path / "nowhere")
        assert "no such configuration directory" in problem.message

    def test_incomplete_priority_matrix(self, edit_yaml: EditYaml) -> None:
        path = edit_yaml(
            "general_contract.yaml",
            lambda d: d["general_contract"]["priority_matrix"]["low"].pop("low"),
        )
        problem = only_problem(path.parent)
        assert "priority_matrix lacks impact low x urgency low" in problem.message


def test_every_problem_is_listed(edit_yaml: EditYaml, config_dir: Path) -> None:
    edit_yaml("departments/okf.yaml", lambda d: d["departments"][0].update(calendar="nope"))
    edit_yaml("departments/bif.yaml", lambda d: d["departments"][0]["contacts"].pop("strategic"))
    edit_yaml("escalation.yaml", lambda d: d["escalation_policies"][1]["steps"][1].update(at=0.1))
    problems = problems_of(config_dir)
    messages = "\n".join(map(str, problems))
    assert len(problems) == 3, messages
    assert "unknown calendar 'nope'" in messages
    assert "no strategic contact" in messages
    assert "steps must increase" in messages
    with pytest.raises(ConfigError, match="3 problems in the configuration"):
        load_config(config_dir)
