"""Prometheus metrics the engine exports: bounded labels, never a ticket id.

Counters and histograms here are counted by the process that did the work, after its
transaction committed; with several engines Prometheus sums them. The gauges read from
PostgreSQL and the broker (``engine.ops.gauges``) describe the shared store, so every
engine reports the same values: aggregate those with ``max``, not ``sum``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from engine.config import AgreementConfig

# The ``_created`` series double every counter's series for a value nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

CLOCK_LABELS = ("department", "service", "priority", "metric", "agreement")

BREACHES = Counter(
    "sla_breaches",
    "Clocks that used up their target: the breach step fired.",
    CLOCK_LABELS,
)
ESCALATIONS = Counter(
    "sla_escalations",
    "Escalation steps fired (warnings, the breach, and escalations after it), by tier.",
    (*CLOCK_LABELS, "tier"),
)
WARNINGS = Counter(
    "sla_warnings",
    "Warning steps fired: a clock passed a configured fraction of its target before the breach.",
    (*CLOCK_LABELS, "tier"),
)
NOTICES = Counter(
    "sla_notices",
    "Escalation notices by channel and outcome: sent, retried, failed for good, or"
    " superseded (its step was undone before it left: nothing sent).",
    ("channel", "outcome"),
)
NOTICES_HELD = Counter(
    "sla_notices_held",
    "Escalation notices put into a digest instead of sent alone, by channel and reason:"
    " budget (over the recipient's budget) or catch_up (a step of a clock already stopped).",
    ("channel", "reason"),
)
DIGESTS = Counter(
    "sla_digests",
    "Digests of held notices by channel and outcome: sent, retried, failed for good, or"
    " superseded (every step in it was undone before it left: nothing sent).",
    ("channel", "outcome"),
)
FEED_MESSAGES = Counter(
    "sla_feed_messages",
    "SLA feed messages on helpdesk.sla by outcome: published (confirmed), or failed and"
    " to be published again when the claim lapses.",
    ("outcome",),
)

SATISFACTION_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0)  # one per score: le="3.0" is 1 to 3
SATISFACTION = Histogram(
    "sla_satisfaction_score",
    "Requesters' ratings (ticket.rated, 1-5) by the ticket's department and service, observed"
    " when a rating begins to count: the ticket's latest rating, or one held until its"
    " ticket.created came. A ticket rated again is observed again; sla-engine report counts"
    " one rating per ticket.",
    ("department", "service"),
    buckets=SATISFACTION_BUCKETS,
)

INTAKE_EVENTS = Counter(
    "sla_intake_events",
    "Ticket events recorded for the first time, by type and frontend channel.",
    ("type", "channel"),
)
INTAKE_DUPLICATES = Counter(
    "sla_intake_duplicates",
    "Events delivered again after they were recorded: acknowledged with no second effect.",
)
DEAD_LETTER_REASONS = (
    "too_large",
    "malformed",
    "invalid",
    "out_of_range",
    "unknown_reference",
    "second_creation",
    "ticket_limit",
    "internal_error",
)
INTAKE_DEAD_LETTERS = Counter(
    "sla_intake_dead_letters",
    "Messages sent to the dead-letter queue, by reason: too_large (over the size limit), "
    "malformed (not JSON), invalid (not the event contract), out_of_range (dated too far "
    "ahead of the engine's clock), unknown_reference (a department or service the "
    "configuration does not know), second_creation (a ticket.created for a ticket created "
    "by another event), ticket_limit (a ticket holding the most events allowed), "
    "internal_error.",
    ("reason",),
)
INTAKE_RETRIES = Counter(
    "sla_intake_store_retries",
    "Batches tried again because PostgreSQL was unreachable or refused for the moment.",
)
PERSONAL_DATA_PURGED = Counter(
    "sla_engine_personal_data_purged_tickets",
    "Closed tickets whose requesters' personal data was purged after the retention period.",
)
TABLES_ANALYZED = Counter(
    "sla_engine_tables_analyzed",
    "ANALYZE runs the engine made on its own tables, whose statistics had fallen behind "
    "(autovacuum off or lagging).",
    ["table"],
)
INTAKE_BATCH_SECONDS = Histogram(
    "sla_intake_batch_duration_seconds",
    "Time to record one batch of events and measure its tickets' clocks, commit included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INTAKE_LAST_PROCESSED = Gauge(
    "sla_intake_last_processed_timestamp_seconds",
    "When this engine last settled a batch: recorded, or all dead-lettered (its start, "
    "before the first).",
)
INTAKE_HELD = Gauge(
    "sla_intake_held_messages",
    "Messages this engine has received and not yet acknowledged.",
)

FIRING_LATENESS = Histogram(
    "sla_firing_lateness_seconds",
    "From a step's due instant (or, when an event gave it an instant already past, from "
    "that measurement) to the commit that fired it: the engine's own service level. Steps "
    "that fell due while no engine ran land in the top buckets.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)


@dataclass(frozen=True)
class StoreGauge:
    """A gauge read from PostgreSQL or the broker at each refresh (``engine.ops.gauges``)."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()


OPEN_CLOCKS = StoreGauge(
    "sla_open_clocks",
    "Clocks not stopped, by state: running, paused, or breached (past the target and not stopped).",
    ("department", "metric", "agreement", "state"),
)
AT_RISK = StoreGauge(
    "sla_clocks_at_risk",
    "Open clocks past their first warning and not yet breached.",
    ("department", "metric", "agreement"),
)
# Cumulative windows: "within 4h" includes those within 1h.
BREACH_WINDOWS = (("15m", 900), ("1h", 3600), ("4h", 14400), ("1d", 86400))
BREACHING_WITHIN = StoreGauge(
    "sla_clocks_breaching_within",
    "Running clocks whose deadline falls within the window from now (15m, 1h, 4h, 1d; "
    "cumulative): the time to breach of what is open.",
    ("department", "metric", "agreement", "within"),
)
MONTH_STOPPED = StoreGauge(
    "sla_month_stopped_clocks",
    "Clocks stopped since the start of this calendar month (in the general contract's "
    "time zone), by outcome: met or breached. Compliance is met / (met + breached).",
    ("department", "metric", "agreement", "outcome"),
)
STEPS_DUE = StoreGauge(
    "sla_steps_due",
    "Clocks with an escalation step due and not yet fired.",
)
OUTBOX_PENDING = StoreGauge(
    "sla_outbox_pending",
    "Notices in the outbox waiting to be sent (first attempt or retry), by channel.",
    ("channel",),
)
OUTBOX_OLDEST_AGE = StoreGauge(
    "sla_outbox_oldest_pending_age_seconds",
    "Age of the oldest notice still waiting to be sent, by channel.",
    ("channel",),
)
OUTBOX_FAILED = StoreGauge(
    "sla_outbox_failed",
    "Notices left failed for good (permanent error or attempts used up), by channel.",
    ("channel",),
)
QUEUE_MESSAGES = StoreGauge(
    "sla_intake_queue_messages",
    "Messages ready in the broker's queue, not yet delivered to an engine: the intake "
    "queue and the dead-letter queue.",
    ("queue",),
)
REFRESHED = StoreGauge(
    "sla_store_refresh_timestamp_seconds",
    "When this engine last read the store and queue gauges successfully.",
)
REFRESH_SECONDS = StoreGauge(
    "sla_store_refresh_duration_seconds",
    "How long the last successful reading of the store and queue gauges took.",
)
STORE_GAUGES = (
    OPEN_CLOCKS,
    AT_RISK,
    BREACHING_WITHIN,
    MONTH_STOPPED,
    STEPS_DUE,
    OUTBOX_PENDING,
    OUTBOX_OLDEST_AGE,
    OUTBOX_FAILED,
    QUEUE_MESSAGES,
    REFRESHED,
    REFRESH_SECONDS,
)

BUILD = Info("sla_engine_build", "The engine's version and the Python running it.")

# The agreement configuration: which version each engine runs, and whether its last
# reload was refused (the files on disk are then not what it runs, and a restart of it
# would fail). Set by ``engine.ops.reload``.
CONFIG_VERSION = Info(
    "sla_engine_config", "The agreement configuration in force: its version, a hash of its files."
)
CONFIG_LOADED = Gauge(
    "sla_engine_config_last_reload_timestamp_seconds",
    "When the configuration was last loaded and found valid: at start or by a reload.",
)
CONFIG_RELOAD_OK = Gauge(
    "sla_engine_config_last_reload_successful",
    "1 when the last load (start or reload) was valid; 0 when a reload was refused and the"
    " configuration in force kept.",
)
CONFIG_RELOADS_REFUSED = Counter(
    "sla_engine_config_reloads_refused",
    "Reloads refused because the files did not pass the checks of check-config.",
)


def set_build_info() -> None:
    """Fill ``sla_engine_build_info`` with this installation's version."""
    try:
        engine_version = version("sla-engine")
    except PackageNotFoundError:  # run from a source tree that was never installed
        engine_version = "unknown"
    BUILD.info({"version": engine_version, "python": platform.python_version()})


# Business time used is observed when a clock stops. Its buckets are the configured
# targets, so that "share of resolutions within the 8-hour target" is one bucket's
# ratio; they are known only once the configuration is loaded.
_business_time: dict[tuple[float, ...], Histogram] = {}  # the one registered, by buckets


def target_buckets(config: AgreementConfig) -> tuple[float, ...]:
    """Every business-time target the configuration sets, in seconds, ascending."""
    tables = [contract.default_targets for contract in config.versions_of_contract()]
    tables += [
        ola.targets
        for function in dict.fromkeys([*config.olas, *config.ola_versions])
        for ola in config.versions_of_ola(function)
    ]
    tables += [
        ordered.targets
        for department_id in config.departments
        for department in config.versions_of_department(department_id)
        for ordered in department.services.values()
    ]
    return tuple(
        sorted(
            {
                duration.total_seconds()
                for table in tables
                for per_metric in table.values()
                for duration in per_metric.values()
            }
        )
    )


def business_time_histogram(
    buckets: Iterable[float], registry: CollectorRegistry = REGISTRY
) -> Histogram:
    """``sla_business_time_used_seconds`` with these buckets (registered once per set)."""
    wanted = tuple(sorted(set(buckets))) or (3600.0,)
    if wanted not in _business_time:
        for other in _business_time.values():  # a configuration with other targets
            registry.unregister(other)
        _business_time.clear()
        _business_time[wanted] = Histogram(
            "sla_business_time_used_seconds",
            "Business time a clock had used when it stopped (met or breached), by metric; "
            "the buckets are the configured targets. Observed at each stop: a reopened "
            "clock that stops again is observed again.",
            ("metric", "agreement"),
            buckets=wanted,
            registry=registry,
        )
    return _business_time[wanted]


def exported_names() -> frozenset[str]:
    """Every sample name the engine exports (``_total``, ``_bucket``, ... included).

    What a dashboard panel or an alert rule may name, besides Prometheus' own ``up``.
    """
    names = {gauge.name for gauge in STORE_GAUGES}
    names |= {"sla_business_time_used_seconds" + s for s in ("_bucket", "_sum", "_count")}
    for metric in REGISTRY.collect():
        names |= {sample.name for sample in metric.samples}
        if metric.type == "counter":
            names |= {metric.name + "_total"}
        elif metric.type == "histogram":
            names |= {metric.name + s for s in ("_bucket", "_sum", "_count")}
        elif metric.type == "info":
            names |= {metric.name + "_info"}
    return frozenset(names)
