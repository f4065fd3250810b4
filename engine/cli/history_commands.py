"""The commands about past tickets: simulate (in memory), export-events and report
(from PostgreSQL). Registered on the ``sla-engine`` parser by ``add_commands``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from engine.cli.shared import load_settings
from engine.config import AgreementConfig, ConfigError, load_config
from engine.monthly.period import Month
from engine.reporting.compliance import ClockOutcome
from engine.satisfaction import RatingCounts
from engine.settings import Settings
from engine.store.connection import Connection

FORMATS = ("table", "csv", "json", "jsonl")
REPORT_FORMATS = (*FORMATS, "html")
T = TypeVar("T")
SETTINGS_HELP = "YAML settings file (environment variables SLA_ENGINE_* override it)"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register simulate, export-events and report."""
    simulate = commands.add_parser(
        "simulate",
        help="replay events in memory under a configuration: steps fired and compliance",
        description="Apply the events of EVENTS.jsonl in virtual time (their own occurred_at) "
        "under the configuration, fire every step at its due instant as the daemon would, "
        "and print the timeline of warnings, breaches and escalations, the compliance "
        "per department, service, priority and metric, the requesters' satisfaction per "
        "department and service, and the notices each recipient "
        "gets under the budgets of notices.yaml (messages alone, digests, the busiest "
        "day). No RabbitMQ, no PostgreSQL.",
    )
    simulate.add_argument("events", type=Path, metavar="EVENTS.jsonl")
    simulate.add_argument(
        "--config",
        type=Path,
        default=Path("config"),
        help="agreement configuration (default: ./config)",
    )
    simulate.add_argument(
        "--compare",
        type=Path,
        metavar="DIR2",
        help="a second configuration: breaches, compliance and notices side by side",
    )
    simulate.add_argument(
        "--compare-at",
        type=_instant_arg,
        metavar="DATE",
        help="compare with every ticket under the agreement versions in force at DATE (of "
        "--compare's configuration, else --config's): a draft version with valid_from DATE "
        "over the same history, against the versions each ticket was created under",
    )
    simulate.add_argument("--format", choices=FORMATS, default="table")
    simulate.add_argument(
        "--until",
        type=_instant_arg,
        help="end of virtual time (default: the last event); YYYY-MM-DD or an RFC 3339 instant",
    )
    simulate.add_argument(
        "--summary-only", action="store_true", help="leave out the timeline of steps"
    )
    simulate.add_argument(
        "--no-budget",
        action="store_true",
        help="count every notice as a message of its own (the figures before budgets)",
    )
    simulate.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        help="processes sharing the tickets (default: one a core)",
    )
    export = commands.add_parser(
        "export-events",
        help="write the events of tickets created in a period, in simulate's input format",
        description="Write, one per line, every event of every ticket created in "
        "[--from, --to): whole tickets, so that a simulation sees each ticket's life.",
    )
    report = commands.add_parser(
        "report",
        help="SLA and OLA compliance and satisfaction of tickets created in a period, from "
        "PostgreSQL",
        description="Per department, service, priority and metric: tickets, met, breached, "
        "compliance, median and p90 business time used against the target; OLA compliance "
        "per provider function beside it; totals per department and service; names from "
        "the configuration; and per department and service the requesters' satisfaction "
        "(rated tickets, mean score, share of 4-5, each score; a ticket's latest rating "
        "counts). Tickets created in [--from, --to), or in --month. --format html: a "
        "department's monthly report, the document its monthly e-mail carries.",
    )
    for command in (export, report):
        command.add_argument(
            "--from",
            dest="start",
            type=_instant_arg,
            required=command is export,
            help="first day or instant (YYYY-MM-DD: midnight in Copenhagen)",
        )
        command.add_argument(
            "--to", dest="end", type=_instant_arg, help="end, exclusive (default: now)"
        )
        command.add_argument("--settings", type=Path, help=SETTINGS_HELP)
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    report.add_argument(
        "--month",
        type=_month_arg,
        help="YYYY-MM: tickets created in that month of the department's calendar "
        "(instead of --from/--to; needed by --format html)",
    )
    report.add_argument("--department", help="one department only (needed by --format html)")
    report.add_argument("--format", choices=REPORT_FORMATS, default="table")
    report.add_argument(
        "--lang",
        choices=("da", "en"),
        help="language of --format html (default: the department's strategic contact's)",
    )
    report.add_argument(
        "--config",
        type=Path,
        help="agreement configuration, for the names (default: SLA_ENGINE_CONFIG_DIR, ./config)",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _instant_arg(text: str) -> datetime:
    """A date (its midnight in Copenhagen) or an instant with an offset."""
    from engine.reporting.window import parse_instant

    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _month_arg(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config(path: Path) -> AgreementConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def simulate_command(args: argparse.Namespace) -> int:
    """Run ``simulate``; 1 when the events or a configuration are refused."""
    from engine.simulate.core import simulate
    from engine.simulate.notices import notice_volume
    from engine.simulate.render import (
        EventFileError,
        print_comparison,
        print_simulation,
        read_events,
    )
    from engine.sla_clock.meter import ClockMeter

    compared = args.compare is not None or args.compare_at is not None
    configs = [_config(args.config)] + ([_config(args.compare or args.config)] if compared else [])
    if any(config is None for config in configs):
        return 1
    # Each ticket attaches the versions in force at its creation, as the daemon does; the
    # compared run may pin every ticket to those in force at one instant instead.
    pinned = [None, args.compare_at]
    try:
        events = read_events(args.events)
    except EventFileError as exc:
        print(f"sla-engine: {len(exc.problems)} lines are not events:\n{exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sla-engine: cannot read {args.events}: {exc.strerror}", file=sys.stderr)
        return 1
    if not events and args.until is None:
        print(f"sla-engine: {args.events} holds no events", file=sys.stderr)
        return 1
    try:
        runs = [
            simulate(ClockMeter(config, versions_at=at), events, args.until, args.workers)
            for config, at in zip(configs, pinned, strict=False)
            if config
        ]
    except ValueError as exc:  # every event refused, and no --until to end at
        print(f"sla-engine: nothing to simulate in {args.events}: {exc}", file=sys.stderr)
        return 1
    for run in runs:
        if run.refused:
            print(
                f"sla-engine: {len(run.refused)} events refused, as the daemon would "
                f"dead-letter them; the first: {run.refused[0][1]}",
                file=sys.stderr,
            )
    volumes = [
        notice_volume(config, run.steps, budget=not args.no_budget)
        for config, run in zip([c for c in configs if c], runs, strict=True)
    ]
    if len(runs) == 2:
        second = str(args.compare or args.config)
        if args.compare_at is not None:
            second += f" at {args.compare_at.isoformat()}"
        names = (str(args.config), second)
        pair = (volumes[0], volumes[1])
        print_comparison(runs[0], runs[1], names, args.format, sys.stdout, pair)
    else:
        print_simulation(
            runs[0],
            args.format,
            sys.stdout,
            with_timeline=not args.summary_only,
            volume=volumes[0],
        )
    return 0


def _window(args: argparse.Namespace) -> tuple[datetime, datetime] | None:
    """The period [--from, --to), or None (reported) when it is empty."""
    from engine.reporting.window import check_window

    end = args.end or datetime.now(UTC)
    try:
        check_window(args.start, end)
    except ValueError as exc:
        print(f"sla-engine: --from/--to: {exc}", file=sys.stderr)
        return None
    return args.start, end


def export_command(args: argparse.Namespace) -> int:
    """Run ``export-events``; the count goes to standard error; 2 for an empty period."""
    from engine.reporting.export import export_events
    from engine.store.postgres.reads import PostgresReads

    window = _window(args)
    if window is None:
        return 2
    start, end = window

    try:  # before connecting: a path that cannot be written is the user's to fix
        out = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8")
    except OSError as exc:
        print(f"sla-engine: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1

    async def work(connection: Connection) -> int:
        return await export_events(PostgresReads(connection), start, end, out)

    try:
        written = _on_database(load_settings(args.settings), work)
    finally:
        if out is not sys.stdout:
            out.close()
    if written is None:
        return 1
    print(
        f"{written} events of tickets created in [{start.isoformat()}, {end.isoformat()})",
        file=sys.stderr,
    )
    return 0


def report_command(args: argparse.Namespace) -> int:
    """Run ``report``; 2 for an empty period or options that do not go together, 1 for a
    configuration refused, an unknown department or a database out of reach."""
    from engine.reporting.names import Names
    from engine.reporting.report import clock_outcomes, render_report
    from engine.reporting.satisfaction import satisfaction_of_period
    from engine.reporting.window import DATE_ZONE
    from engine.store.postgres.reads import PostgresReads

    settings = load_settings(args.settings)
    config = _config(args.config or settings.config_dir)
    if config is None:
        return 1
    if args.department is not None and args.department not in config.departments:
        known = ", ".join(sorted(config.departments))
        print(f"sla-engine: no department {args.department!r} (known: {known})", file=sys.stderr)
        return 1
    if (args.month is None) == (args.start is None) or (args.month and args.end):
        print("sla-engine: give either --month or --from (with --to)", file=sys.stderr)
        return 2
    if args.format == "html":
        if args.month is None or args.department is None:
            print("sla-engine: --format html is a department's month: give --department "
                  "and --month", file=sys.stderr)  # fmt: skip
            return 2
        return _html_report(args, settings, config)
    if args.month is not None:
        zone = config.calendar_for(args.department).zone if args.department else DATE_ZONE
        args.start, args.end = args.month.start(zone), args.month.end(zone)
    window = _window(args)
    if window is None:
        return 2
    start, end = window
    now = datetime.now(UTC)

    async def work(connection: Connection) -> tuple[list[ClockOutcome], list[RatingCounts]]:
        reads = PostgresReads(connection)
        outcomes = await clock_outcomes(reads, start, end, now, args.department)
        return outcomes, await satisfaction_of_period(reads, start, end, args.department)

    read = _on_database(settings, work)
    if read is None:
        return 1
    outcomes, satisfaction = read
    period = f"tickets created in [{start.isoformat()}, {end.isoformat()})"
    render_report(
        outcomes,
        args.format,
        sys.stdout,
        period=period,
        satisfaction=satisfaction,
        names=Names(config),
    )
    return 0


def _html_report(args: argparse.Namespace, settings: Settings, config: AgreementConfig) -> int:
    """A department's monthly report as HTML: the document its monthly e-mail carries."""
    from engine.monthly.document import MonthlyInputs, monthly_document
    from engine.monthly.job import read_inputs
    from engine.monthly.render import render_html
    from engine.monthly.satisfaction import satisfaction_source
    from engine.store.postgres.reads import PostgresReads

    department = config.departments[args.department]
    strategic = department.contacts.strategic
    language = args.lang or (strategic.language if strategic is not None else "da")
    now = datetime.now(UTC)

    async def work(connection: Connection) -> MonthlyInputs:
        reads = PostgresReads(connection)
        satisfaction = await satisfaction_source(reads, lambda: config)(department, args.month)
        return await read_inputs(reads, config, department.id, args.month, now, satisfaction)

    inputs = _on_database(settings, work)
    if inputs is None:
        return 1
    sys.stdout.write(render_html(monthly_document(inputs, language)))
    return 0


def _on_database(settings: Settings, work: Callable[[Connection], Awaitable[T]]) -> T | None:
    """``work`` on a connection to the engine's database; None (reported) when the
    database cannot be reached."""
    import asyncpg

    from engine.settings import redact_url
    from engine.store.errors import is_transient

    url = settings.database_url.get_secret_value()

    async def main() -> T:
        connection = await asyncpg.connect(url)
        try:
            return await work(connection)
        finally:
            await connection.close()

    try:
        return asyncio.run(main())
    except asyncpg.PostgresError as exc:
        # A database that is there but refuses: no such database or role, or not
        # migrated yet (undefined table).
        hint = " (run `sla-engine migrate` first)" if exc.sqlstate == "42P01" else ""
        print(
            f"sla-engine: the database at {redact_url(url)} refused: {exc.sqlstate} {exc}{hint}",
            file=sys.stderr,
        )
        return None
    except Exception as exc:
        if not is_transient(exc):
            raise
        print(
            f"sla-engine: the database at {redact_url(url)} cannot be reached: {exc!r}",
            file=sys.stderr,
        )
        return None
