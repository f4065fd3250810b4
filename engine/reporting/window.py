"""The creation window that reports and exports choose tickets by: ``[start, end)``."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

# A bare date is its midnight here: the municipality's, whatever zone a server runs in.
DATE_ZONE = ZoneInfo("Europe/Copenhagen")


def parse_instant(text: str) -> datetime:
    """A date (``YYYY-MM-DD``: its midnight in ``DATE_ZONE``) or an RFC 3339 instant with
    an offset; raises ``ValueError`` with a reason a person can act on."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), DATE_ZONE)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither YYYY-MM-DD nor an RFC 3339 instant") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no offset (add Z or +01:00)")
    return parsed


def check_window(start: datetime, end: datetime) -> None:
    """Refuse a naive or empty window; raises ``ValueError``."""
    # A naive instant would be read in whatever zone the database session runs in.
    for name, instant in (("start", start), ("end", end)):
        if instant.utcoffset() is None:
            raise ValueError(f"{name} {instant.isoformat()} has no UTC offset")
    if end <= start:
        raise ValueError(f"the window is empty: end {end.isoformat()} <= start {start.isoformat()}")
