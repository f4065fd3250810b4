"""Events as a JSON Lines file holds them, one a line: what publish and simulate read."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails


def numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each non-blank line with its number (from 1), a UTF-8 byte-order mark removed."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            raw = line.strip()
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw:
                yield number, raw


def described(error: ValidationError) -> str:
    """Why a line is not an event of the contract, naming each bad field."""
    return "; ".join(_described(detail) for detail in error.errors(include_url=False))


def _described(error: ErrorDetails) -> str:
    # The location starts with the union's tag (the event type); the field path follows.
    field_path = ".".join(str(part) for part in error["loc"][1:])
    return f"{field_path}: {error['msg']}" if field_path else error["msg"]
