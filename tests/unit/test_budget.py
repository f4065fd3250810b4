"""The budget core with a virtual clock: alone while it lasts, digests after, never over."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.notices import NoticesConfig
from engine.notify.budget import ALONE, Held, Rule, Window, admit, bypasses, digest_id, rule_for

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
ONE_A_QUARTER = Rule(1, QUARTER)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(
    rule: Rule, offers: list[tuple[float, bool]]
) -> tuple[list[datetime], dict[datetime, int], list[object]]:
    """Offer notices at (minute, catch_up); the instants of messages alone, the items of
    each digest by its send instant, and each placement."""
    window: Window | None = None
    alone: list[datetime] = []
    digests: dict[datetime, int] = defaultdict(int)
    placements: list[object] = []
    for minute, catch_up in offers:
        placed, window = admit(rule, window, at(minute), catch_up=catch_up)
        placements.append(placed)
        if isinstance(placed, Held):
            digests[placed.send_at] += 1
        else:
            alone.append(at(minute))
    return alone, dict(digests), placements


def test_the_first_goes_alone_the_rest_of_the_window_into_one_digest_at_its_end() -> None:
    alone, digests, _ = run(ONE_A_QUARTER, [(0, False), (1, False), (5, False), (14, False)])
    assert alone == [at(0)]
    assert digests == {at(15): 3}


def test_the_digest_opens_the_next_window_and_counts_in_it() -> None:
    # 16 falls in the window the digest at 15 opened: held for the digest at 30.
    alone, digests, _ = run(ONE_A_QUARTER, [(0, False), (1, False), (16, False)])
    assert alone == [at(0)]
    assert digests == {at(15): 1, at(30): 1}


def test_a_quiet_window_lets_the_next_notice_go_alone() -> None:
    alone, digests, _ = run(ONE_A_QUARTER, [(0, False), (15, False), (40, False)])
    assert alone == [at(0), at(15), at(40)]
    assert digests == {}


def test_after_a_digest_a_window_with_nothing_held_ends_the_chain() -> None:
    alone, digests, _ = run(ONE_A_QUARTER, [(0, False), (1, False), (31, False)])
    assert alone == [at(0), at(31)]  # the digest's window (15-30) passed without one
    assert digests == {at(15): 1}


def test_a_catch_up_is_never_alone_even_on_an_unbudgeted_channel() -> None:
    machine = Rule(None, QUARTER)
    alone, digests, _ = run(machine, [(0, True), (2, True), (3, False), (20, True)])
    assert alone == [at(3)]  # a live notice still goes at once
    assert digests == {at(15): 2, at(30): 1}  # 20: in the window the first digest opened


def test_an_unbudgeted_channel_sends_every_live_notice_alone() -> None:
    alone, digests, placements = run(Rule(None, QUARTER), [(0, False), (0, False), (1, False)])
    assert len(alone) == 3
    assert digests == {}
    assert placements == [ALONE] * 3


def test_a_strategic_breach_bypasses_the_budget_when_configured() -> None:
    placed, window = admit(ONE_A_QUARTER, Window(T0, 1, False), at(1), bypass=True)
    assert placed == ALONE
    assert window == Window(T0, 2, False)
    on = NoticesConfig(strategic_breach_bypasses_budget=True)
    assert bypasses(on, state="breach", tier="strategic")
    assert not bypasses(on, state="escalated", tier="strategic")
    assert not bypasses(on, state="breach", tier="tactical")
    assert not bypasses(NoticesConfig(), state="breach", tier="strategic")


def test_defaults_budget_email_only() -> None:
    config = NoticesConfig()
    assert rule_for(config, "email") == Rule(1, 2 * QUARTER)
    assert rule_for(config, "webhook").max_messages is None
    assert rule_for(config, "amqp").max_messages is None


def test_digest_ids_are_stable_per_recipient_channel_window_and_part() -> None:
    first = digest_id("email", "a@x.dk", T0)
    assert first == digest_id("email", "a@x.dk", T0.astimezone(timezone(timedelta(hours=1))))
    others = {
        digest_id("webhook", "a@x.dk", T0),
        digest_id("email", "b@x.dk", T0),
        digest_id("email", "a@x.dk", at(15)),
        digest_id("email", "a@x.dk", T0, 1),
    }
    assert len(others | {first}) == 5


offers = st.lists(
    st.tuples(st.integers(0, 24 * 60 * 60), st.booleans()), min_size=1, max_size=80
).map(lambda xs: sorted((s / 60, c) for s, c in xs))


@settings(max_examples=300, deadline=None)
@given(offers, st.integers(1, 4), st.integers(1, 60))
def test_every_notice_is_in_exactly_one_message_catch_ups_in_digests(
    offered: list[tuple[float, bool]], limit: int, window_min: int
) -> None:
    rule = Rule(limit, timedelta(minutes=window_min))
    alone, digests, placements = run(rule, offered)
    assert len(alone) + sum(digests.values()) == len(offered) == len(placements)
    for (minute, catch_up), placed in zip(offered, placements, strict=True):
        if catch_up:
            assert isinstance(placed, Held)
        if isinstance(placed, Held):  # sent at the end of its window, after what it holds
            assert placed.window_start <= at(minute) < placed.send_at
            assert placed.send_at == placed.window_start + rule.window


@settings(max_examples=300, deadline=None)
@given(offers.map(lambda xs: [(m, False) for m, _ in xs]), st.integers(1, 4), st.integers(1, 60))
def test_live_notices_never_take_a_window_over_budget(
    offered: list[tuple[float, bool]], limit: int, window_min: int
) -> None:
    rule = Rule(limit, timedelta(minutes=window_min))
    alone, digests, placements = run(rule, offered)
    # Each notice placed once: alone, or an item of exactly one digest.
    assert len(alone) + sum(digests.values()) == len(offered) == len(placements)
    # A digest is sent at the end of its window, never before the notices it holds.
    for (minute, _), placed in zip(offered, placements, strict=True):
        if isinstance(placed, Held):
            assert placed.window_start <= at(minute) < placed.send_at
            assert placed.send_at == placed.window_start + rule.window
    # Replay the messages through the windows: none holds more than the limit.
    messages = sorted(alone + list(digests))
    starts: list[datetime] = []
    for instant in messages:
        if not starts or instant >= starts[-1] + rule.window:
            starts.append(instant)
    per_window: dict[datetime, int] = defaultdict(int)
    for instant in messages:
        start = max(s for s in starts if s <= instant)
        per_window[start] += 1
    assert max(per_window.values()) <= limit
    if limit == 1:  # one a window: any two messages at least a window apart
        gaps = [b - a for a, b in itertools.pairwise(messages)]
        assert all(gap >= rule.window for gap in gaps)
