"""The Grafana dashboard: well-formed panels that query only what the engine exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from engine.metrics import SATISFACTION_BUCKETS, STORE_GAUGES, exported_names
from tests.helpers import REPO
from tests.promql import Selection, metric_names, run_promtool, selections, selectors

DASHBOARD_PATH = REPO / "deploy/grafana/dashboards/sla-engine.json"
DATASOURCES_PATH = REPO / "deploy/grafana/provisioning/datasources/prometheus.yaml"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
DATASOURCE_UID = "prometheus"
# Series of Prometheus' own that a panel may name besides the engine's.
PROMETHEUS_OWN = frozenset({"up"})
STORE_GAUGE_NAMES = frozenset(gauge.name for gauge in STORE_GAUGES)
# Metrics with a department label: a panel on them follows the $department selector.
DEPARTMENT_METRICS = (
    "sla_breaches_total", "sla_escalations_total", "sla_warnings_total",
    "sla_open_clocks", "sla_clocks_at_risk", "sla_month_stopped_clocks",
    "sla_satisfaction_score_sum", "sla_satisfaction_score_count",
    "sla_satisfaction_score_bucket",
)  # fmt: skip
# What operations asked the dashboard to show, each by the metrics that show it.
SUBJECTS = {
    "breaches": {"sla_breaches_total"},
    "open clocks": {"sla_open_clocks"},
    "at-risk clocks": {"sla_clocks_at_risk"},
    "compliance this month": {"sla_month_stopped_clocks"},
    "escalations by tier": {"sla_escalations_total"},
    "warnings": {"sla_warnings_total"},
    "intake rate": {"sla_intake_events_total"},
    "duplicates": {"sla_intake_duplicates_total"},
    "dead letters": {"sla_intake_dead_letters_total"},
    "batch duration": {"sla_intake_batch_duration_seconds_bucket"},
    "queue depth": {"sla_intake_queue_messages"},
    "held messages": {"sla_intake_held_messages"},
    "since the last batch": {"sla_intake_last_processed_timestamp_seconds"},
    "firing lateness": {"sla_firing_lateness_seconds_bucket"},
    "steps due": {"sla_steps_due"},
    "outbox backlog": {"sla_outbox_pending"},
    "oldest pending notice": {"sla_outbox_oldest_pending_age_seconds"},
    "failed notices": {"sla_outbox_failed"},
    "notices by channel and outcome": {"sla_notices_total"},
    "business time used at stop": {"sla_business_time_used_seconds_bucket"},
    "satisfaction": {
        "sla_satisfaction_score_sum",
        "sla_satisfaction_score_count",
        "sla_satisfaction_score_bucket",
    },
    "build": {"sla_engine_build_info"},
    "engines up": {"up"},
}


def _all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        # A collapsed row keeps its panels inside it.
        yield from _all_panels(panel.get("panels", []))


PANELS = list(_all_panels(DASHBOARD["panels"]))
QUERY_PANELS = [panel for panel in PANELS if panel["type"] != "row"]
EXPRESSIONS = [
    (f"{panel['id']} {panel['title']} {target['refId']}", target["expr"])
    for panel in QUERY_PANELS
    for target in panel["targets"]
]
EXPRESSION_IDS = [name for name, _ in EXPRESSIONS]


def _panel_id(panel: dict[str, Any]) -> str:
    return f"{panel.get('id')} {panel.get('title')}"


def _exprs_naming(metric: str) -> list[str]:
    return [expr for _, expr in EXPRESSIONS if metric in metric_names(expr)]


# --- the PromQL reader itself: the checks below are only as good as it is -----------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (department, service) (increase(sla_breaches_total{department=~"$department"}'
            "[$__rate_interval]))",
            {"sla_breaches_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(sla_firing_lateness_seconds_bucket[15m])))"
            " > 1",
            {"sla_firing_lateness_seconds_bucket"},
        ),
        ("sla_breaches_total unless sla_breaches_total offset 5m", {"sla_breaches_total"}),
        (
            "time() - max(sla_store_refresh_timestamp_seconds) > 300 or on () vector(1)",
            {"sla_store_refresh_timestamp_seconds"},
        ),
        ("a / on (instance) group_left (version) b > bool 1e3 * 0x1F + Inf", {"a", "b"}),
        ('label_replace(up, "dst", "$1 (x) {y}", "src", "(.*)")', {"up"}),
        (
            "max_over_time(sla_open_clocks{state='breached'}[10m:1m]) and ignoring(job) c",
            {"sla_open_clocks", "c"},
        ),
        ("sum(recorded:rule_name) by (state)", {"recorded:rule_name"}),
        ("rate(x_total[${window}]) * nan", {"x_total"}),
        ("vector(0) + time() - 1.5e-3", set()),
    ],
)
def test_reader_finds_the_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("expr", "found"),
    [
        (
            "sum by (state) (max by (department, state) (sla_open_clocks))",
            [Selection("sla_open_clocks", "max")],
        ),
        ("sum(sla_open_clocks)", [Selection("sla_open_clocks", "sum")]),
        ("sla_open_clocks / 2", [Selection("sla_open_clocks", None)]),
        ('max(sla_open_clocks{a="("}) by (state)', [Selection("sla_open_clocks", "max")]),
        ("max without (instance) (sla_steps_due)", [Selection("sla_steps_due", "max")]),
        (
            "sum(rate(sla_breaches_total[5m])) / on () max(sla_open_clocks)",
            [Selection("sla_breaches_total", "sum"), Selection("sla_open_clocks", "max")],
        ),
        (
            "histogram_quantile(0.5, sum by (le) (rate(x_bucket[5m])))",
            [Selection("x_bucket", "sum")],
        ),
    ],
)
def test_reader_finds_the_aggregation_around_each_name(expr: str, found: list[Selection]) -> None:
    assert selections(expr) == found


def test_reader_finds_each_selector_of_a_name() -> None:
    expr = 'sum(a{x="1"}) / sum(ab) / sum(a) + a {y=~"$y"}'
    assert selectors(expr, "a") == ['{x="1"}', "", '{y=~"$y"}']


# --- the dashboard -----------------------------------------------------------------


def test_dashboard_identity() -> None:
    assert DASHBOARD["uid"] == "sla-engine"
    assert DASHBOARD["title"]
    assert DASHBOARD["schemaVersion"] == 39


@pytest.mark.parametrize("panel", PANELS, ids=_panel_id)
def test_every_panel_has_a_title_and_a_place(panel: dict[str, Any]) -> None:
    assert panel.get("title"), "a panel without a title"
    position = panel.get("gridPos")
    assert position is not None, "no gridPos"
    assert {key: type(position.get(key)) for key in ("h", "w", "x", "y")} == dict.fromkeys(
        ("h", "w", "x", "y"), int
    )
    assert position["x"] >= 0
    assert position["x"] + position["w"] <= 24


@pytest.mark.parametrize("panel", QUERY_PANELS, ids=_panel_id)
def test_every_panel_queries_the_provisioned_prometheus(panel: dict[str, Any]) -> None:
    assert panel.get("datasource") == {"type": "prometheus", "uid": DATASOURCE_UID}
    assert panel.get("targets"), "a panel without a query"
    for target in panel["targets"]:
        assert target.get("expr"), f"target {target.get('refId')} has no expression"
        assert target.get("datasource", panel["datasource"]) == panel["datasource"]
    assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])


def test_the_datasource_uid_is_the_provisioned_one() -> None:
    provisioned = yaml.safe_load(DATASOURCES_PATH.read_text(encoding="utf-8"))
    uids = [source["uid"] for source in provisioned["datasources"]]
    assert uids == [DATASOURCE_UID]


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids))


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        position = panel["gridPos"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} covers {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("panel", "expr"), EXPRESSIONS, ids=EXPRESSION_IDS)
def test_expressions_name_only_exported_metrics(panel: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, "no metric found: the reader or the expression is wrong"
    assert names <= exported_names() | PROMETHEUS_OWN


@pytest.mark.parametrize(("panel", "expr"), EXPRESSIONS, ids=EXPRESSION_IDS)
def test_store_gauges_are_taken_with_max_never_summed_over_engines(panel: str, expr: str) -> None:
    # Every engine reads the same store: a sum would count each value once per replica.
    for selection in selections(expr):
        if selection.name in STORE_GAUGE_NAMES:
            assert selection.aggregation == "max", selection


@pytest.mark.parametrize(("panel", "expr"), EXPRESSIONS, ids=EXPRESSION_IDS)
def test_counters_and_histograms_are_summed_over_engines(panel: str, expr: str) -> None:
    # Each engine counts its own work: max or avg would show one engine's share.
    for selection in selections(expr):
        if re.search(r"_(total|bucket|count|sum)$", selection.name):
            assert selection.aggregation in (None, "sum"), selection


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_subject_has_a_panel(subject: str) -> None:
    used = set().union(*(metric_names(expr) for _, expr in EXPRESSIONS))
    assert SUBJECTS[subject] <= used


@pytest.mark.parametrize("metric", DEPARTMENT_METRICS)
def test_department_panels_follow_the_department_selector(metric: str) -> None:
    exprs = _exprs_naming(metric)
    assert exprs, f"no panel shows {metric}"
    for expr in exprs:
        for matchers in selectors(expr, metric):
            assert 'department=~"$department"' in matchers, expr


def _compliance_expr() -> str:
    panels = [
        panel
        for panel in QUERY_PANELS
        if panel["type"] == "bargauge"
        and any("sla_month_stopped_clocks" in metric_names(t["expr"]) for t in panel["targets"])
    ]
    assert panels, "no bar gauge on sla_month_stopped_clocks"
    assert panels[0]["fieldConfig"]["defaults"]["unit"] == "percent"
    return str(panels[0]["targets"][0]["expr"])


def _month_stopped(instance: str, department: str, outcome: str, clocks: int) -> dict[str, str]:
    labels = (
        f'instance="{instance}", department="{department}", metric="resolution", '
        f'agreement="sla", outcome="{outcome}"'
    )
    return {"series": f"sla_month_stopped_clocks{{{labels}}}", "values": f"{clocks}x5"}


def test_compliance_is_met_over_met_and_breached_counted_once_per_clock(tmp_path: Path) -> None:
    # Two replicas report bif's 9 met and 1 breached; sf has only breaches, so no "met"
    # series at all: it must show 0 %, not vanish from the panel.
    series = [
        _month_stopped(instance, "bif", outcome, clocks)
        for instance in ("engine-a", "engine-b")
        for outcome, clocks in (("met", 9), ("breached", 1))
    ] + [_month_stopped("engine-a", "sf", "breached", 3)]
    expected = [
        {"labels": '{department="bif"}', "value": 90},
        {"labels": '{department="sf"}', "value": 0},
    ]
    case = {"expr": _as_prometheus_sees_it(_compliance_expr()), "eval_time": "5m",
            "exp_samples": expected}  # fmt: skip
    tests = {"interval": "1m", "input_series": series, "promql_expr_test": [case]}
    path = tmp_path / "compliance.test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": [tests]}))
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("bucket", "quantiles"),
    [
        ("sla_firing_lateness_seconds_bucket", {"0.5", "0.99", "1"}),
        ("sla_intake_batch_duration_seconds_bucket", {"0.5", "0.99"}),
    ],
)
def test_latency_panels_show_the_asked_quantiles(bucket: str, quantiles: set[str]) -> None:
    shown = {
        match
        for expr in _exprs_naming(bucket)
        for match in re.findall(r"histogram_quantile\(\s*([0-9.]+)", expr)
    }
    assert quantiles <= shown


def test_department_variable_lists_departments_with_open_clocks() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    department = variables["department"]
    assert department["definition"] == "label_values(sla_open_clocks, department)"
    assert department["query"]["query"] == department["definition"]
    assert department["multi"] is True
    assert department["includeAll"] is True
    assert department["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize(
    "variable", DASHBOARD["templating"]["list"], ids=lambda variable: variable["name"]
)
def test_every_variable_queries_an_exported_label_and_is_used(variable: dict[str, Any]) -> None:
    match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
    assert match is not None, variable["definition"]
    assert match.group(1) in exported_names()
    uses = re.compile(rf"\$(?:{variable['name']}|\{{{variable['name']}\}})\b")
    used_in_queries = any(uses.search(expr) for _, expr in EXPRESSIONS)
    repeated = any(panel.get("repeat") == variable["name"] for panel in PANELS)
    assert used_in_queries or repeated


def _as_prometheus_sees_it(expr: str) -> str:
    # What Grafana sends: its interval variables become durations, the others values.
    expr = re.sub(r"\$__(?:rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_every_expression_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{index}", "expr": _as_prometheus_sees_it(expr)}
        for index, (_, expr) in enumerate(EXPRESSIONS)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_share_of_4_and_5_is_what_the_histogram_counts_above_3(tmp_path: Path) -> None:
    # The bucket the expression takes is the one the client library exports for 3.
    registry = CollectorRegistry()
    histogram = Histogram("sla_satisfaction_score", "s", ["department", "service"],
                          buckets=SATISFACTION_BUCKETS, registry=registry)  # fmt: skip
    histogram.labels("okf", "esdh").observe(3)
    assert 'le="3.0"' in generate_latest(registry).decode()
    [panel] = [p for p in QUERY_PANELS if p["title"].startswith("Satisfaction by department")]
    [share] = [t["expr"] for t in panel["targets"] if t["expr"].startswith("100 * (1 - ")]
    assert 'le="3.0"' in share
    # Two engines; one rates 4 a minute (1 of them 3 or less), the other 2 a minute.
    series = []
    for instance, per_minute, low in (("engine-a", 4, 1), ("engine-b", 2, 0)):
        labels = f'instance="{instance}", department="okf", service="esdh"'
        series += [
            {"series": f"sla_satisfaction_score_count{{{labels}}}", "values": f"0+{per_minute}x10"},
            {"series": f'sla_satisfaction_score_bucket{{{labels}, le="3.0"}}',
             "values": f"0+{low}x10"},
        ]  # fmt: skip
    case = {"expr": _as_prometheus_sees_it(share), "eval_time": "10m",
            "exp_samples": [{"labels": '{department="okf", service="esdh"}',
                             "value": 100 * (1 - 1 / 6)}]}  # fmt: skip
    tests = {"interval": "1m", "input_series": series, "promql_expr_test": [case]}
    path = tmp_path / "satisfaction.test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": [tests]}))
    result = run_promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
