"""Requesters' satisfaction: the rating that counts for a ticket, and ratings counted.

Pure. A ticket may be rated more than once (the survey answered again, a frontend that
resends a changed answer as a new event): one rating counts, the latest in the order the
clocks read a ticket's events (``occurred_at``, then ``event_id``), so that ratings that
arrive late or out of order count as if they had come in order. The recorder keeps that
rating in the store; the simulator takes it from the history; both count them with
``count_ratings`` and print what ``satisfaction_records`` makes of the counts, so that a
report and a simulation of the same history say the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.events import TicketEvent, TicketRated
from engine.sla_clock.timeline import READ_ORDER

SCORES = (1, 2, 3, 4, 5)
SATISFIED_FROM = 4  # a 4 or a 5: the requester was satisfied
SATISFACTION_GROUPING = ("department", "service")
SATISFACTION_MEASURES = (
    "ratings",
    "mean_score",
    "satisfied_pct",
    "score_1",
    "score_2",
    "score_3",
    "score_4",
    "score_5",
)
SATISFACTION_COLUMNS = (*SATISFACTION_GROUPING, *SATISFACTION_MEASURES)


class TicketRating(NamedTuple):
    """The rating that counts for one ticket, under the ticket's department and service
    as they stand (a reclassification moves its rating with it)."""

    ticket_id: str
    department: str
    service: str
    score: int


@dataclass(frozen=True, slots=True)
class RatingCounts:
    """The tickets of one department and service counted by the score that counts."""

    department: str
    service: str
    scores: tuple[int, int, int, int, int]  # tickets rated 1, 2, 3, 4 and 5

    @property
    def count(self) -> int:
        """Tickets rated."""
        return sum(self.scores)

    @property
    def mean(self) -> float | None:
        """The mean score; None when no ticket is rated."""
        count = self.count
        if not count:
            return None
        return sum(s * n for s, n in zip(SCORES, self.scores, strict=True)) / count

    @property
    def satisfied_share(self) -> float | None:
        """The share of 4 and 5 ratings; None when no ticket is rated."""
        count = self.count
        return sum(self.scores[SATISFIED_FROM - 1 :]) / count if count else None


def counted_rating(events: Iterable[TicketEvent]) -> TicketRated | None:
    """The ticket's rating that counts: the latest by ``occurred_at``, then ``event_id``."""
    # The type string, not isinstance: the simulator asks this of every ticket of a year.
    rated = [event for event in events if event.type == "ticket.rated"]
    return max(rated, key=READ_ORDER, default=None)


def count_ratings(ratings: Iterable[TicketRating]) -> list[RatingCounts]:
    """Ratings counted per department and service, in that order."""
    counted: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(SCORES))
    for rating in ratings:
        counted[rating.department, rating.service][rating.score - 1] += 1
    return [
        RatingCounts(department, service, (n[0], n[1], n[2], n[3], n[4]))
        for (department, service), n in sorted(counted.items())
    ]


def satisfaction_records(counts: Sequence[RatingCounts]) -> list[dict[str, Any]]:
    """A record per department and service: ratings, mean, share of 4-5, and each score."""
    return [
        {
            "department": group.department,
            "service": group.service,
            "ratings": group.count,
            "mean_score": _rounded(group.mean, 2),
            "satisfied_pct": _rounded(
                None if group.satisfied_share is None else 100 * group.satisfied_share, 1
            ),
            **{f"score_{s}": n for s, n in zip(SCORES, group.scores, strict=True)},
        }
        for group in counts
        if group.count
    ]


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
