"""Map spans of local wall time to spans of real (UTC) time across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)


def naive_utc_to_us(naive_utc: datetime) -> int:
    """Microseconds since the epoch of a naive datetime read as UTC."""
    return (naive_utc.replace(tzinfo=UTC) - EPOCH) // MICROSECOND


def _offset_at(naive_utc: datetime, zone: ZoneInfo) -> timedelta:
    offset = naive_utc.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset


def _transition(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant in ``(lo, hi]`` whose offset differs from ``lo``'s (to the second)."""
    before = _offset_at(lo, zone)
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) // 2
        mid -= timedelta(microseconds=mid.microsecond)
        if mid <= lo:
            mid = lo + _SECOND
        if _offset_at(mid, zone) == before:
            lo = mid
        else:
            hi = mid
    return hi


def wall_span_to_utc(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[int, int]]:
    """The real-time spans, in epoch microseconds, whose local wall time lies in ``[start, end)``.

    ``start`` and ``end`` are naive local times at most a day or so apart. A wall time the
    clocks skip (spring forward) has no instant; one they pass twice (fall back) has two,
    so a window over the repeated hour lasts that much longer in real time.
    """
    offsets = [
        off
        for wall in (start, end)
        for fold in (0, 1)
        if (off := wall.replace(fold=fold, tzinfo=zone).utcoffset()) is not None
    ]
    if len(set(offsets)) == 1:
        return [(naive_utc_to_us(start - offsets[0]), naive_utc_to_us(end - offsets[0]))]
    # One offset change lies within reach: split real time at it and intersect each side.
    lo, hi = start - max(offsets), end - min(offsets)
    if _offset_at(lo, zone) == _offset_at(hi, zone):
        segments = [(lo, hi)]
    else:
        cut = _transition(lo, hi, zone)
        segments = [(lo, cut), (cut, hi)]
    spans = []
    for seg_lo, seg_hi in segments:
        offset = _offset_at(seg_lo, zone)
        a, b = max(seg_lo, start - offset), min(seg_hi, end - offset)
        if a < b:
            spans.append((naive_utc_to_us(a), naive_utc_to_us(b)))
    return spans
