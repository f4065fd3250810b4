"""Map spans of local wall time to spans of real (UTC) time across daylight-saving changes.

A zone's offset from UTC is constant between its changes, so real time is first cut into
stretches of one offset; within a stretch, a local wall time maps to real time by subtracting
that offset. A wall time the clocks skip (spring forward) has no instant; one they pass twice
(fall back) has two, so a window over the repeated hour lasts that much longer in real time.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)  # times an int: the fastest exact timedelta
_US_PER_S = 1_000_000
# The offset is sampled once a day and each change found by bisection to the second (tzdata
# changes offsets on whole seconds). Daily samples would miss two changes that undo each
# other between two samples; in tzdata's record for 1900-2199 no zone's offset changes
# twice within three days.
_SAMPLE_S = 86_400


def _offset_us(zone: ZoneInfo, second: int) -> int:
    offset = datetime.fromtimestamp(second, zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset
    return offset // MICROSECOND


def _first_change(zone: ZoneInfo, lo: int, hi: int, before: int) -> int:
    """The first second in ``(lo, hi]`` whose offset is not ``before``, the offset at ``lo``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_us(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


def offset_periods(zone: ZoneInfo, lo_us: int, hi_us: int) -> list[tuple[int, int, int]]:
    """Cut real time ``[lo_us, hi_us)`` into ``(start, end, offset)`` stretches of one offset.

    All three are microseconds: instants since the epoch, the offset from UTC.
    """
    periods: list[tuple[int, int, int]] = []
    begin, sampled, last = lo_us, lo_us // _US_PER_S, -(-hi_us // _US_PER_S)
    offset = _offset_us(zone, sampled)
    while sampled < last:
        probe = min(sampled + _SAMPLE_S, last)
        if _offset_us(zone, probe) == offset:
            sampled = probe
            continue
        sampled = _first_change(zone, sampled, probe, offset)
        change = sampled * _US_PER_S
        if change >= hi_us:
            break
        periods.append((begin, change, offset))
        begin, offset = change, _offset_us(zone, sampled)
    periods.append((begin, hi_us, offset))
    return periods


def wall_spans_to_utc(
    spans: list[tuple[int, int]], periods: list[tuple[int, int, int]]
) -> list[tuple[int, int]]:
    """The real-time spans whose local wall time lies in one of ``spans``.

    ``spans`` are local wall times written as microseconds since the epoch read as UTC,
    sorted by start; ``periods`` come from ``offset_periods``. The result is clipped to the
    periods and sorted by start, but not merged: spans that overlap stay apart.
    """
    if not spans:
        return []
    starts = [a for a, _ in spans]
    reach = max(b - a for a, b in spans)
    result: list[tuple[int, int]] = []
    for lo, hi, offset in periods:
        # Only spans starting less than ``reach`` before this stretch's wall time can meet it.
        i = bisect_left(starts, lo + offset - reach)
        for k in range(i, len(spans)):
            a, b = spans[k]
            a -= offset
            if a >= hi:
                break
            b -= offset
            if a < lo:  # comparisons, not min() and max(): this loop builds every year
                a = lo
            if b > hi:
                b = hi
            if a < b:
                result.append((a, b))
    return result
