"""Configuration problems, each naming the file, the line and the key path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.config.yaml_source import Loc, YamlDocument


def format_loc(loc: Loc) -> str:
    """Write a location as ``departments[0].services.esdh``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass(frozen=True)
class Origin:
    """Where an item of the configuration was written."""

    document: YamlDocument
    loc: Loc

    def problem(self, message: str, *sub: str | int) -> Problem:
        """A problem at this item, or at a key inside it."""
        loc = (*self.loc, *sub)
        return Problem(
            file=str(self.document.path),
            key=format_loc(loc),
            message=message,
            line=self.document.line_of(loc),
        )


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists everything found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        plural = "s" if count != 1 else ""
        super().__init__(f"{count} problem{plural} in the configuration:\n{lines}")
