"""The start-up backlog wait's decisions, without a broker: drained, bound, what may fire."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.escalation.policy import CATCH_UP_LATE
from engine.intake.backlog import NOTHING, BacklogWait, QueueReading, fire_until, read_up_to
from engine.scheduler.firing import fire_due
from engine.scheduler.loop import Scheduler, SchedulerOptions
from engine.store.memory.firing import MemoryFiringStore
from tests.services import poll
from tests.unit.test_firing import COMPOSER, at, fire, tables_with

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def reading(at_s: float, waiting: int, received: int = 0, settled: int = 0) -> QueueReading:
    return QueueReading(at_s, waiting, received, settled)


def test_an_empty_queue_at_start_ends_the_wait_at_once() -> None:
    wait = BacklogWait.begin(100.0, 60.0, waiting=0)
    assert wait.outcome(100.0) == "drained"
    assert fire_until(wait, None, NOW) is None


def test_a_backlog_waits_until_the_bound_and_no_longer() -> None:
    wait = BacklogWait.begin(100.0, 60.0, waiting=5_000)
    wait = wait.read(reading(130.0, 3_000, received=2_000, settled=1_500))
    assert wait.outcome(159.9) is None
    assert wait.outcome(160.0) == "bound"


def test_an_unreadable_queue_at_start_is_waited_on_up_to_the_bound() -> None:
    wait = BacklogWait.begin(0.0, 5.0, waiting=None)
    assert wait.outcome(4.0) is None
    assert wait.outcome(5.0) == "bound"


def test_a_zero_bound_never_waits_for_a_backlog() -> None:
    assert BacklogWait.begin(0.0, 0.0, waiting=10).outcome(0.0) == "bound"


def test_drained_once_the_queue_is_seen_empty_twice_and_what_came_is_recorded() -> None:
    wait = BacklogWait.begin(0.0, 60.0, waiting=300)
    # Empty: all delivered, but some may be on the wire still (received 250 of 300).
    wait = wait.read(reading(0.1, 0, received=250, settled=100))
    assert wait.outcome(0.1) is None
    wait = wait.read(reading(0.2, 0, received=300, settled=260))  # the rest arrived
    assert wait.outcome(0.2) is None  # 260 of the 300 recorded
    wait = wait.read(reading(0.3, 0, received=310, settled=300))  # 10 new ones: not waited for
    assert wait.outcome(0.3) == "drained"


def test_a_queue_filling_again_between_readings_starts_the_count_again() -> None:
    wait = BacklogWait.begin(0.0, 60.0, waiting=300)
    wait = wait.read(reading(0.1, 0, received=300, settled=0))
    wait = wait.read(reading(0.2, 50, received=300, settled=300))  # a redelivery, say
    wait = wait.read(reading(0.3, 0, received=350, settled=300))
    assert wait.outcome(0.3) is None  # one empty reading only since
    wait = wait.read(reading(0.4, 0, received=350, settled=350))
    assert wait.outcome(0.4) == "drained"


def test_drained_stays_drained_and_wins_over_the_bound() -> None:
    wait = BacklogWait.begin(0.0, 1.0, waiting=10)
    wait = wait.read(reading(0.1, 0, received=10, settled=10))
    wait = wait.read(reading(0.2, 0, received=10, settled=10))
    wait = wait.read(reading(5.0, 9_000, received=10, settled=10))  # a burst later
    assert wait.outcome(5.0) == "drained"


def test_after_the_bound_steps_fire_up_to_what_intake_has_read() -> None:
    bound = BacklogWait.begin(0.0, 1.0, waiting=10_000)
    read = NOW - timedelta(hours=5)
    assert fire_until(bound, read, NOW) == read
    assert fire_until(bound, NOW + timedelta(hours=1), NOW) == NOW  # never past now
    # Nothing recorded yet is no reason to hold anything: the bound is what was promised.
    assert fire_until(bound, None, NOW) is None


def test_while_intake_reads_the_past_catch_ups_wait_for_the_backlog_up_to_the_hold() -> None:
    # Bound at 1 s, catch-ups held for 100 s more while the backlog lasts.
    wait = BacklogWait.begin(0.0, 1.0, waiting=10_000, catch_up_hold_s=100.0)
    old = NOW - CATCH_UP_LATE - timedelta(seconds=1)
    assert fire_until(wait, old, NOW, at_s=50.0) == NOTHING  # every step up to it: a catch-up
    assert fire_until(wait, old, NOW, at_s=101.0) == old  # held no longer than the hold
    recent = NOW - CATCH_UP_LATE
    assert fire_until(wait, recent, NOW, at_s=50.0) == recent  # not catch-ups: they fire
    # Once the backlog is taken nothing is held, however old the read point.
    wait = wait.read(reading(60.0, 0, received=10_000, settled=10_000))
    wait = wait.read(reading(60.5, 0, received=10_000, settled=10_000))
    assert wait.drained
    assert fire_until(wait, old, NOW, at_s=60.5) is None


def test_without_a_hold_catch_ups_fire_as_intake_reads_on() -> None:
    wait = BacklogWait.begin(0.0, 1.0, waiting=10_000)
    old = NOW - timedelta(hours=5)
    assert fire_until(wait, old, NOW, at_s=2.0) == old


def test_the_instant_read_up_to_is_a_batch_earliest_and_never_goes_back() -> None:
    first = [NOW - timedelta(minutes=m) for m in (30, 10, 20)]
    assert read_up_to(None, first) == NOW - timedelta(minutes=30)
    # One event of last week in the next batch does not pull it back.
    late = [NOW - timedelta(days=7), NOW]
    assert read_up_to(NOW - timedelta(minutes=30), late) == NOW - timedelta(minutes=30)
    assert read_up_to(NOW, []) == NOW


@dataclass
class _Queue:
    """One engine on a FIFO queue: frames on the wire reach intake by the next reading."""

    waiting: int
    prefetch: int
    wire: int = 0
    received: int = 0
    settled: int = 0

    def step(self, arrive: int, deliver: int, settle: int) -> None:
        self.received += self.wire
        self.wire = 0
        self.settled += min(settle, self.received - self.settled)
        room = self.prefetch - (self.received + self.wire - self.settled)
        delivered = min(deliver, self.waiting, max(0, room))
        self.waiting -= delivered
        self.wire += delivered
        self.waiting += arrive


@given(
    backlog=st.integers(1, 500),
    prefetch=st.integers(1, 200),
    steps=st.lists(st.tuples(*[st.integers(0, 120)] * 3), max_size=60),
)
def test_drained_only_once_every_message_waiting_at_start_is_recorded(
    backlog: int, prefetch: int, steps: list[tuple[int, int, int]]
) -> None:
    queue = _Queue(backlog, prefetch)
    wait = BacklogWait.begin(0.0, 1e9, waiting=backlog)
    was_drained = False
    for n, (arrive, deliver, settle) in enumerate(steps, start=1):
        queue.step(arrive, deliver, settle)
        wait = wait.read(QueueReading(n, queue.waiting, queue.received, queue.settled))
        assert wait.drained or not was_drained  # once drained, for good
        was_drained = wait.drained
        if wait.drained:
            assert queue.settled >= backlog  # FIFO: the first ``backlog`` settled


@given(
    backlog=st.integers(0, 10_000),
    read_m=st.one_of(st.none(), st.integers(-10_000, 10_000)),
    drained=st.booleans(),
)
def test_what_may_fire_is_never_after_now_nor_after_what_intake_read(
    backlog: int, read_m: int | None, drained: bool
) -> None:
    wait = BacklogWait.begin(0.0, 1.0, waiting=backlog)
    if drained:
        wait = wait.read(reading(0.1, 0)).read(reading(0.2, 0))
    read = None if read_m is None else NOW + timedelta(minutes=read_m)
    until = fire_until(wait, read, NOW)
    if wait.drained or read is None:
        assert until is None
    else:
        assert until is not None
        assert until <= NOW
        assert until <= read


async def test_fire_due_with_until_fires_only_the_steps_due_by_then_and_the_rest_later() -> None:
    tables = tables_with("E-1")
    # Every step of the 15-minute response clock is due at minute 40; intake has read
    # up to minute 12: the 0.5 and 0.75 steps (7.5, 11.25) fire, fired at minute 40.
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(40), 500, until=at(12))
    assert [(s.step, s.fired_at) for s in firing.fired] == [(0.5, at(40)), (0.75, at(40))]
    assert tables.clocks[("E-1", "response")].next_due_at == at(13.5)
    assert await fire(tables, at(40)) == [("E-1", 0.9), ("E-1", 1.0), ("E-1", 1.5), ("E-1", 2.0)]


class _Gate:
    """A start gate the test opens and moves by hand."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.until: datetime | None = at(0)

    async def wait(self, stopping: asyncio.Event) -> None:
        self.entered.set()
        await self.opened.wait()

    async def fire_until(self, now: datetime) -> datetime | None:
        return self.until


async def test_the_scheduler_fires_nothing_before_the_gate_opens_then_what_it_allows() -> None:
    tables = tables_with("E-1")
    gate = _Gate()
    scheduler = Scheduler(
        MemoryFiringStore(tables),
        COMPOSER,
        SchedulerOptions(reconcile_s=0.05),
        transient=lambda _: False,
        now=lambda: at(40),  # every step is due
        gate=gate,
    )

    def fired_until(expected: list[float]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return sorted(step for (_, _, step) in tables.steps) == expected

        return check

    stopping = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stopping))
    try:
        await asyncio.wait_for(gate.entered.wait(), 5)
        assert tables.steps == {}  # listening, and held at the gate
        gate.until = at(12)  # intake has read up to minute 12
        gate.opened.set()
        await poll(fired_until([0.5, 0.75]), what="the steps due by minute 12, and no more")
        gate.until = None  # caught up
        await poll(fired_until([0.5, 0.75, 0.9, 1.0, 1.5, 2.0]), what="the rest")
    finally:
        stopping.set()
        await asyncio.wait_for(running, 5)
