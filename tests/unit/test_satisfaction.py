"""Which rating counts for a ticket, and how ratings are counted and rounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.events import TicketEvent
from engine.satisfaction import (
    SATISFACTION_COLUMNS,
    RatingCounts,
    TicketRating,
    count_ratings,
    counted_rating,
    satisfaction_records,
)
from tests.unit.test_simulate import created, ev


def rated(seq: int, minutes: float, score: int) -> TicketEvent:
    return ev("ticket.rated", "A", seq, minutes, score=score)


def test_the_latest_rating_counts_and_a_tie_goes_to_the_greater_event_id() -> None:
    early, late = rated(1, 10, 5), rated(2, 20, 1)
    assert counted_rating([late, created("A"), early]) is late
    assert counted_rating([created("A")]) is None
    one, other = rated(3, 30, 2), rated(4, 30, 4)
    greater = max(one, other, key=lambda e: e.event_id)
    assert counted_rating([one, other, late]) is greater
    assert counted_rating([other, one, late]) is greater


@given(st.permutations(range(6)))
def test_the_rating_that_counts_does_not_depend_on_the_order_of_arrival(
    order: list[int],
) -> None:
    ratings = [rated(n, 10 * (n // 2), 1 + n % 5) for n in range(6)]
    arrived = [ratings[i] for i in order]
    assert counted_rating(arrived) is counted_rating(ratings)


def test_counts_give_their_count_mean_and_share_of_4_and_5() -> None:
    counts = RatingCounts("okf", "esdh", (1, 0, 1, 1, 2))
    assert (counts.count, counts.mean, counts.satisfied_share) == (5, 3.6, 0.6)
    empty = RatingCounts("okf", "esdh", (0, 0, 0, 0, 0))
    assert (empty.count, empty.mean, empty.satisfied_share) == (0, None, None)


def test_ratings_are_counted_per_department_and_service_in_order() -> None:
    ratings = [
        TicketRating("T-1", "sof", "omsorgssystem", 5), TicketRating("T-2", "bif", "print", 1),
        TicketRating("T-3", "sof", "omsorgssystem", 4), TicketRating("T-4", "sof", "esdh", 2),
    ]  # fmt: skip
    assert count_ratings(ratings) == [
        RatingCounts("bif", "print", (1, 0, 0, 0, 0)),
        RatingCounts("sof", "esdh", (0, 1, 0, 0, 0)),
        RatingCounts("sof", "omsorgssystem", (0, 0, 0, 1, 1)),
    ]
    assert count_ratings([]) == []


def test_records_round_the_mean_to_two_places_and_the_share_to_one() -> None:
    [record] = satisfaction_records([RatingCounts("okf", "esdh", (0, 0, 1, 1, 1))])
    assert list(record) == list(SATISFACTION_COLUMNS)
    assert (record["ratings"], record["mean_score"], record["satisfied_pct"]) == (3, 4.0, 66.7)
    [thirds] = satisfaction_records([RatingCounts("okf", "esdh", (1, 1, 0, 0, 1))])
    assert (thirds["mean_score"], thirds["satisfied_pct"]) == (2.67, 33.3)
    assert satisfaction_records([RatingCounts("okf", "esdh", (0, 0, 0, 0, 0))]) == []
