"""Just enough PromQL reading for the deployment tests: names selected, aggregations.

Not a parser: it handles the expressions this repository writes (dashboard panels and
alert rules), and its own tests in ``tests/unit/test_dashboard.py`` pin what it sees.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.helpers import REPO

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# Grafana's variables: $name, ${name}, ${name:format}, [[name]].
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# Not preceded by a word character or a dot: the "m" of "5m" and the "e3" of "1e3" are
# parts of numbers and durations, not names.
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
     "and", "or", "unless", "atan2", "inf", "nan"}
)  # fmt: skip
AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
     "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """A metric name as it occurs in an expression, and the aggregation nearest around it."""

    name: str
    aggregation: str | None


def _bare(expr: str) -> str:
    # Strings first: they may hold braces, brackets or parentheses of their own.
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return _GROUPING.sub(" ", text)


def _is_call(text: str, end: int) -> bool:
    return text[end:].lstrip().startswith("(")


def selections(expr: str) -> list[Selection]:
    """Every metric name the expression selects, in order, with its nearest aggregation."""
    text = _bare(expr)
    found = []
    for match in _NAME.finditer(text):
        name = match.group()
        if name.lower() in _KEYWORDS or _is_call(text, match.end()):
            continue
        found.append(Selection(name, _enclosing_aggregation(text, match.start())))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    return {selection.name for selection in selections(expr)}


def _enclosing_aggregation(text: str, position: int) -> str | None:
    # Walk out through the unmatched opening parentheses before the name; the first one
    # that opens an aggregation's argument is the one that combines this name's series.
    depth = 0
    for index in range(position - 1, -1, -1):
        char = text[index]
        if char == ")":
            depth += 1
        elif char == "(" and depth > 0:
            depth -= 1
        elif char == "(":
            caller = re.search(r"([A-Za-z_:][\w:]*)\s*$", text[:index])
            if caller is not None and caller.group(1) in AGGREGATIONS:
                return caller.group(1)
    return None


def selectors(expr: str, name: str) -> list[str]:
    """The label matchers of each selector of ``name`` in the expression ('' when none)."""
    pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])\s*(\{{[^{{}}]*\}})?")
    return [match.group(1) or "" for match in pattern.finditer(expr)]


def promtool() -> str:
    """The path of promtool; a failure, not a skip, where it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: `make test` installs Debian's prometheus package, "
            "which provides it (or: apt-get install prometheus)"
        )
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in the repository's root, its output captured."""
    return subprocess.run(
        [promtool(), *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
