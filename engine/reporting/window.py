"""The creation window that reports and exports choose tickets by: ``[start, end)``."""

from __future__ import annotations

from datetime import datetime


def check_window(start: datetime, end: datetime) -> None:
    """Refuse a naive or empty window; raises ``ValueError``."""
    # A naive instant would be read in whatever zone the database session runs in.
    for name, instant in (("start", start), ("end", end)):
        if instant.utcoffset() is None:
            raise ValueError(f"{name} {instant.isoformat()} has no UTC offset")
    if end <= start:
        raise ValueError(f"the window is empty: end {end.isoformat()} <= start {start.isoformat()}")
