"""The ``sla-engine`` command line: one parser; its commands live in this package's modules."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli import engine_commands, history_commands
from engine.cli.shared import EXIT_CONFIG, tune_gc

__all__ = ["EXIT_CONFIG", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sla-engine",
        description="Helpdesk SLA-timer engine: SLA clocks over business time, escalation, "
        "breach metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    engine_commands.add_commands(commands)
    history_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the return value is the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a command killed by SIGPIPE
        # would, and keep Python from failing again on flushing the closed stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return engine_commands.check_config(args.directory)
    if args.command == "sheet":
        return engine_commands.sheet(args)
    if args.command == "run":
        return engine_commands.run(args.settings)
    if args.command == "reload":
        return engine_commands.reload(args.settings, args.timeout_s)
    if args.command == "migrate":
        return engine_commands.migrate(args.settings)
    if args.command == "publish":
        return engine_commands.publish(args.file, not args.no_validate, args.settings)
    if args.command == "simulate":
        tune_gc()  # a year of parsed events is as much for the collector as the daemon's
        return history_commands.simulate_command(args)
    if args.command == "export-events":
        return history_commands.export_command(args)
    if args.command == "report":
        return history_commands.report_command(args)
    if args.command == "schema":
        return engine_commands.schema()
    raise AssertionError(f"unhandled command {args.command}")  # argparse refuses others
