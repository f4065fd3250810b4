"""Log lines: JSON for machines, a console format for people at a terminal."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from engine import logging as engine_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    yield None
    structlog.reset_defaults()


def logged(stream: io.StringIO, json_lines: bool | None) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", stream)
        engine_logging.configure("info", json_lines)
        structlog.get_logger("test").info("intake.dead_lettered", ticket_id="T-1")
    return stream.getvalue()


def test_json_lines_when_stderr_is_not_a_terminal() -> None:
    line = json.loads(logged(io.StringIO(), None))
    assert (line["event"], line["ticket_id"], line["level"]) == ("intake.dead_lettered", "T-1",
                                                                 "info")  # fmt: skip


def test_a_console_format_at_a_terminal() -> None:
    text = logged(Terminal(), None)
    assert "intake.dead_lettered" in text
    assert not text.lstrip().startswith("{")


def test_the_setting_overrides_the_terminal() -> None:
    assert json.loads(logged(Terminal(), True))["event"] == "intake.dead_lettered"
    assert not logged(io.StringIO(), False).startswith("{")
