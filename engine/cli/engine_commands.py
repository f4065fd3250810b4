"""The commands that set up and run the engine: check-config, sheet, run, reload, migrate,
publish, schema."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.cli.shared import CONFIG_DIR_ENV, EXIT_CONFIG, load_settings, tune_gc
from engine.config import AgreementConfig, ConfigError, load_config, load_versioned
from engine.settings import ENV_PREFIX

SETTINGS_HELP = (
    f"YAML settings file; environment variables {ENV_PREFIX}AMQP_URL, {ENV_PREFIX}DATABASE_URL, "
    f"{CONFIG_DIR_ENV}, ... override it"
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register check-config, sheet, run, reload, migrate, publish and schema."""
    check = commands.add_parser(
        "check-config",
        help="validate the agreement configuration and print a summary",
        description="Validate every YAML file of the configuration directory, cross-check them, "
        "and list every problem with its file, line and key.",
    )
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=Path(os.environ.get(CONFIG_DIR_ENV, "config")),
        help=f"configuration directory (env {CONFIG_DIR_ENV}; default: ./config)",
    )
    _add_sheet(commands)
    run = commands.add_parser(
        "run",
        help="start the engine: migrate the database, consume ticket events",
        description="Start the engine daemon. SIGTERM or SIGINT stops it cleanly.",
    )
    run.add_argument("--settings", type=Path, help=SETTINGS_HELP)
    reload = commands.add_parser(
        "reload",
        help="make the running engine on this host load its configuration again",
        description="Ask the engine listening on the settings' HTTP port (on this host) to "
        "load and check its configuration directory again, as SIGHUP does, and print the "
        "outcome. Exit status: 0 reloaded or unchanged, 1 refused (the engine keeps the "
        "configuration it runs; the problems are listed), 69 no engine answered.",
    )
    reload.add_argument("--settings", type=Path, help=SETTINGS_HELP)
    reload.add_argument(
        "--timeout-s", type=float, default=30.0, help="how long to wait for the outcome"
    )
    migrate = commands.add_parser("migrate", help="apply the database migrations and exit")
    migrate.add_argument("--settings", type=Path, help=SETTINGS_HELP)
    publish = commands.add_parser(
        "publish",
        help="publish ticket events from a JSON Lines file, with publisher confirms",
        description="Publish one event per line of FILE to the helpdesk.tickets exchange. "
        "Lines that are not valid events are refused with their line number.",
    )
    publish.add_argument("file", type=Path, metavar="FILE.jsonl")
    publish.add_argument(
        "--no-validate", action="store_true", help="send lines as they are, valid or not"
    )
    publish.add_argument("--settings", type=Path, help=SETTINGS_HELP)
    commands.add_parser("schema", help="print the JSON Schema of the ticket event contract")


def run(settings_file: Path | None) -> int:
    """Start the daemon; EXIT_CONFIG when its settings or configuration are refused."""
    from engine import logging as engine_logging
    from engine.daemon import StartupError, serve

    settings = load_settings(settings_file, EXIT_CONFIG)
    engine_logging.configure(settings.log_level, settings.log_json)
    # SIGHUP's default action ends the process: until the engine's loop takes it over
    # (``serve``), a reload asked for while starting is ignored, since the files are
    # read now anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = load_versioned(settings.config_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    tune_gc(settings.prefetch)
    try:
        asyncio.run(serve(settings, config))
    except StartupError as exc:
        print(f"sla-engine: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def reload(settings_file: Path | None, timeout_s: float) -> int:
    """Ask the running engine to reload; 0 done, 1 refused, 69 no engine answered."""
    from engine.ops.reload_client import reload_command, reload_url

    settings = load_settings(settings_file)
    return reload_command(reload_url(settings.http_host, settings.http_port), timeout_s)


def migrate(settings_file: Path | None) -> int:
    """Apply pending migrations and list them."""
    import asyncpg

    from engine.store.migrate import migrate as apply

    settings = load_settings(settings_file)

    async def main() -> int:
        connection = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            applied = await apply(connection)
        finally:
            await connection.close()
        for migration in applied:
            print(f"applied {migration.version:03d}_{migration.name}")
        print("database is up to date" if not applied else f"{len(applied)} migrations applied")
        return 0

    return asyncio.run(main())


def publish(path: Path, validate: bool, settings_file: Path | None) -> int:
    """Publish a JSON Lines file; 1 when a line was refused."""
    from engine.intake.publish import publish_file

    settings = load_settings(settings_file)
    if not path.is_file():
        print(f"sla-engine: no such file: {path}", file=sys.stderr)
        return 1
    report = asyncio.run(
        publish_file(path, settings.amqp_url.get_secret_value(), validate=validate)
    )
    for line, reason in report.refused:
        print(f"{path}:{line}: refused: {reason}", file=sys.stderr)
    print(f"published {report.published} events from {path}")
    return 1 if report.refused else 0


def _summary(directory: Path, config: AgreementConfig) -> str:
    ordered = sum(len(dep.services) for dep in config.departments.values())
    return (
        f"{directory}: configuration is valid\n"
        f"  {len(config.departments)} departments with {ordered} ordered services, "
        f"{len(config.services)} catalog services, {len(config.calendars)} calendars,\n"
        f"  {len(config.olas)} OLAs, {len(config.escalation_policies)} escalation policies"
        + _versions_line(config)
    )


def _versions_line(config: AgreementConfig) -> str:
    """The agreements that come in versions, and when each later one comes into force."""
    starts = config.version_starts()
    if not starts:
        return ""
    when = ", ".join(start.isoformat() for start in starts)
    return f",\n  agreement versions come into force at {when}"


def check_config(directory: Path) -> int:
    """Validate the configuration; 0 when valid, 1 with every problem on stderr when not."""
    try:
        loaded = load_versioned(directory)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(_summary(directory, loaded.config))
    # The version a running engine shows in /readyz once it runs these files.
    print(f"  version {loaded.version}")
    return 0


def _add_sheet(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from engine.sheet import DEFAULT_LANGUAGE, FORMATS, LANGUAGES

    sheet = commands.add_parser(
        "sheet",
        help="write each department's SLA in plain words (HTML or Markdown)",
        description="Write one page per department from the configuration: ordered services "
        "and their targets in words, opening hours, holidays, batch windows, escalation, "
        "contacts, the priority matrix, the contract's defaults and prices; and an index of "
        "the departments and the service catalog.",
    )
    sheet.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get(CONFIG_DIR_ENV, "config")),
        help=f"configuration directory (env {CONFIG_DIR_ENV}; default: ./config)",
    )
    sheet.add_argument("--department", metavar="ID", help="only this department's page")
    sheet.add_argument("--format", choices=FORMATS, default="html", help="default: html")
    sheet.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANGUAGE, help="default: da")
    sheet.add_argument(
        "--year", type=int, help="the year whose holidays are listed (default: this year)"
    )
    sheet.add_argument("--out", type=Path, required=True, metavar="DIR", help="written here")


def sheet(args: argparse.Namespace) -> int:
    """Write the SLA sheets; 1 with the reason on stderr when the configuration is refused,
    the department unknown or the directory unwritable."""
    from engine.sheet import UnknownDepartment, render_department, render_index

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    # The holidays listed are this year's where the departments are, unless asked; the
    # version shown is the one in force now.
    now = datetime.now(ZoneInfo("Europe/Copenhagen"))
    year = args.year or now.year
    ids = [args.department] if args.department else list(config.departments)
    pages: dict[str, str] = {}
    try:
        for department_id in ids:
            pages[f"{department_id}.{args.format}"] = render_department(
                config, department_id, fmt=args.format, language=args.lang, year=year, at=now
            )
    except UnknownDepartment as exc:
        print(f"sla-engine: {exc.args[0]}", file=sys.stderr)
        return 1
    if not args.department:
        pages[f"index.{args.format}"] = render_index(
            config, fmt=args.format, language=args.lang, at=now
        )
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in pages.items():
            (args.out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"sla-engine: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for name in pages:
        print(args.out / name)
    return 0


def schema() -> int:
    """Print the JSON Schema of the ticket event contract."""
    from engine.events.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
