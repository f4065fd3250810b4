"""Records printed as an aligned table, CSV, JSON or JSON Lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TextIO

Format = Literal["table", "csv", "json", "jsonl"]
Record = Mapping[str, Any]


def duration(seconds: float) -> str:
    """Seconds as a person reads a duration: 45s, 12m00s, 3h05m, 2d04h."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def cell(value: Any, column: str = "") -> str:
    """A value as a table shows it: durations (``*_s`` columns) readable, None blank."""
    if value is None:
        return ""
    if column.endswith("_s") and isinstance(value, int | float):
        return duration(value)
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 or value.is_integer() else f"{value:.3g}"
    return str(value)


def write(records: Sequence[Record], columns: Sequence[str], fmt: Format, out: TextIO) -> None:
    """Print ``records`` (their ``columns``, in that order) in ``fmt``."""
    if fmt == "json":
        json.dump(
            [{c: r.get(c) for c in columns} for r in records],
            out,
            ensure_ascii=False,
            indent=2,
            default=str,
        )
        out.write("\n")
    elif fmt == "jsonl":
        for record in records:
            line = json.dumps({c: record.get(c) for c in columns}, ensure_ascii=False, default=str)
            out.write(line + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for record in records:
            writer.writerow(["" if record.get(c) is None else record.get(c) for c in columns])
    else:
        rows = [[cell(record.get(c), c) for c in columns] for record in records]
        widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
        out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        out.write("\n")
        for row in rows:
            line = "  ".join(
                v.rjust(w) if _numeric(v) or _is_duration(v) else v.ljust(w)
                for v, w in zip(row, widths, strict=True)
            )
            out.write(line.rstrip() + "\n")


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_duration(text: str) -> bool:
    return bool(text) and text[0].isdigit() and text[-1] in "smhd"
