"""The Prometheus configuration and alert rules: valid, unit-tested, about real metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from engine.intake import topology
from engine.metrics import STORE_GAUGES, exported_names
from tests.helpers import REPO
from tests.promql import metric_names, run_promtool, selections

PROMETHEUS_DIR = REPO / "deploy/prometheus"
RULES = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
RULE_TESTS = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
DASHBOARD = json.loads((REPO / "deploy/grafana/dashboards/sla-engine.json").read_text("utf-8"))
ALERTS: list[dict[str, Any]] = [
    rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule
]
ALERT_IDS = [rule["alert"] for rule in ALERTS]
STORE_GAUGE_NAMES = frozenset(gauge.name for gauge in STORE_GAUGES)
REQUIRED_ALERTS = {
    "SlaBreach", "SlaClocksAtRisk", "SlaEngineDown", "SlaIntakeStalled", "SlaOutboxStuck",
    "SlaNoticesFailing", "SlaDeadLetters", "SlaFiringLate", "SlaStoreGaugesStale",
    "SlaConfigReloadRefused",
}  # fmt: skip


def _promtool_ok(*args: str) -> None:
    result = run_promtool(*args)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def _alert(name: str) -> dict[str, Any]:
    (rule,) = (rule for rule in ALERTS if rule["alert"] == name)
    return rule


def test_rules_are_valid() -> None:
    _promtool_ok("check", "rules", "deploy/prometheus/alerts.yml")


def test_prometheus_config_is_valid_and_finds_its_rules() -> None:
    _promtool_ok("check", "config", "deploy/prometheus/prometheus.yml")


def test_rule_unit_tests_pass() -> None:
    _promtool_ok("test", "rules", "deploy/prometheus/alerts.test.yml")


def test_prometheus_scrapes_the_engine_every_15_seconds() -> None:
    (job,) = (job for job in CONFIG["scrape_configs"] if job["job_name"] == "sla-engine")
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    assert targets == ["engine:8321"]
    assert CONFIG["global"]["scrape_interval"] == "15s"
    assert CONFIG["rule_files"] == ["alerts.yml"]


def test_the_required_alerts_exist() -> None:
    assert set(ALERT_IDS) >= REQUIRED_ALERTS
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_alert_names_only_exported_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])
    assert names, "no metric found: the reader or the expression is wrong"
    assert names <= exported_names() | {"up"}


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_alert_aggregates_store_gauges_with_max_and_sums_counters(
    rule: dict[str, Any],
) -> None:
    for selection in selections(rule["expr"]):
        if selection.name in STORE_GAUGE_NAMES:
            assert selection.aggregation == "max", selection
        if re.search(r"_(total|bucket|count|sum)$", selection.name):
            assert selection.aggregation in (None, "sum"), selection


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_alert_has_a_severity_a_summary_and_says_what_to_check(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]
    assert re.search(r"\bcheck\b", rule["annotations"]["description"], re.IGNORECASE)


@pytest.mark.parametrize("name", ALERT_IDS)
def test_alert_has_a_unit_test_that_fires_and_one_that_stays_silent(name: str) -> None:
    cases = [
        case
        for test in RULE_TESTS["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == name
    ]
    assert any(case.get("exp_alerts") for case in cases), "no case in which it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no case in which it is silent"


def test_dead_letter_alert_points_at_the_real_queue_and_header() -> None:
    description = _alert("SlaDeadLetters")["annotations"]["description"]
    assert topology.DEAD_LETTER_QUEUE in description
    assert topology.REASON_HEADER in description


def test_intake_alert_watches_the_real_intake_queue() -> None:
    assert f'queue="{topology.QUEUE}"' in _alert("SlaIntakeStalled")["expr"]


def test_breach_alert_also_fires_on_a_series_first_seen_at_one() -> None:
    # increase() needs two samples of a series: a label set's first breach exports the
    # series already at 1, which only the "did not exist a window ago" branch sees.
    expr = _alert("SlaBreach")["expr"]
    assert re.search(r"sla_breaches_total\s+unless\s+sla_breaches_total\s+offset\s+5m", expr)


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_panels_an_alert_points_to_are_on_the_dashboard(rule: dict[str, Any]) -> None:
    titles = {panel["title"] for panel in DASHBOARD["panels"]}
    named = re.findall(r'"([^"]+)" (?:panel|row)\b', rule["annotations"]["description"])
    assert set(named) <= titles, set(named) - titles
