"""The ``sla-engine`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from engine import __version__
from engine.config import AgreementConfig, ConfigError, load_config

CONFIG_DIR_ENV = "SLA_ENGINE_CONFIG_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-engine",
        description="Helpdesk SLA-timer engine: SLA clocks over business time, escalation, "
        "breach metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    return parser


def _summary(directory: Path, config: AgreementConfig) -> str:
    ordered = sum(len(dep.services) for dep in config.departments.values())
    return (
        f"{directory}: configuration is valid\n"
        f"  {len(config.departments)} departments with {ordered} ordered services, "
        f"{len(config.services)} catalog services, {len(config.calendars)} calendars,\n"
        f"  {len(config.olas)} OLAs, {len(config.escalation_policies)} escalation policies"
    )


def check_config(directory: Path) -> int:
    """Validate the configuration; 0 when valid, 1 with every problem on stderr when not."""
    try:
        config = load_config(directory)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(_summary(directory, config))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the return value is the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.directory)
    raise AssertionError(f"unhandled command {args.command}")  # argparse refuses others


if __name__ == "__main__":
    sys.exit(main())
