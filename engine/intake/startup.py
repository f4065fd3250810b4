"""The start-up backlog wait against the broker: intake takes what waited before steps fire.

While no engine ran, events queued and steps fell due. Fired at once, those steps race
intake: a step whose stopping event is still in the queue fires, and its notice goes
out. So the scheduler first waits (``wait``) until this engine's intake has recorded
what was waiting in the queue, or ``SLA_ENGINE_STARTUP_BACKLOG_WAIT_S`` has passed;
after that, while the backlog is still being taken, it fires only what intake has read
up to (``fire_until``), and none of it while that is all news of the past (catch-ups,
held for ``SLA_ENGINE_STARTUP_CATCH_UP_HOLD_S`` at most). The decisions are
``engine.intake.backlog``'s; here the queue is read with a passive declare on a channel
of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from engine.intake import topology
from engine.intake.backlog import NOTHING, BacklogWait, Outcome, QueueReading, fire_until
from engine.intake.consumer import IntakeConsumer
from engine.loops import pause

log = structlog.get_logger(__name__)

# How often the queue is read while the scheduler waits (a passive declare: cheap), and
# while it catches up after the bound (from its cycles, which hold steps meanwhile).
WAIT_POLL_S = 0.1
CATCH_UP_POLL_S = 0.5
# A reading that takes longer counts as none; the bound still ends the wait.
READ_TIMEOUT_S = 2.0


class QueueDepth:
    """The messages waiting in one queue, read with a passive declare on a channel of its own."""

    def __init__(self, connection: AbstractRobustConnection, queue: str = topology.QUEUE) -> None:
        self._connection = connection
        self._queue = queue
        self._channel: AbstractRobustChannel | None = None
        self._unreadable = False  # the last reading failed: logged once until one succeeds

    async def read(self) -> int | None:
        """The messages not delivered to any consumer yet; None if the broker does not say."""
        try:
            count = await asyncio.wait_for(self._passive_declare(), READ_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the bound ends the wait; logged once
            if not self._unreadable:
                log.warning("scheduler.backlog_unreadable", error=repr(exc))
            self._unreadable = True
            return None
        self._unreadable = False
        return count

    async def close(self) -> None:
        """Close the channel the queue is read on."""
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _passive_declare(self) -> int:
        # A channel of its own: a failed passive declare closes the channel it ran on,
        # which must not be the one intake consumes on.
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        # Not robust: a robust channel answers a passive declare of a queue it has
        # declared before from its cache, with the count of that first time.
        queue = await self._channel.declare_queue(self._queue, passive=True, robust=False)
        return int(queue.declaration_result.message_count or 0)


class StartupBacklog:
    """One engine's start-up wait on the intake queue; ``open`` it before intake consumes."""

    def __init__(
        self,
        depth: QueueDepth,
        consumer: IntakeConsumer,
        wait: BacklogWait,
        clock: Callable[[], float],
    ) -> None:
        self._depth = depth
        self._consumer = consumer
        self._wait = wait
        self._clock = clock
        self._waiting = wait.waiting_at_start  # at the last reading
        self._read_at_s = wait.started_s
        self._ended: tuple[Outcome | None, float] | None = None  # why and when the wait ended
        self._holding = False  # catch-up steps held back at the last look

    @classmethod
    async def open(
        cls,
        depth: QueueDepth,
        consumer: IntakeConsumer,
        bound_s: float,
        clock: Callable[[], float] | None = None,
        catch_up_hold_s: float = 0.0,
    ) -> StartupBacklog:
        """The wait, with the messages waiting now counted: call before intake consumes."""
        clock = clock or asyncio.get_running_loop().time
        waiting = await depth.read()
        log.info(
            "scheduler.backlog_wait_started",
            messages=waiting,
            bound_s=bound_s,
            catch_up_hold_s=catch_up_hold_s,
        )
        wait = BacklogWait.begin(clock(), bound_s, waiting, catch_up_hold_s)
        return cls(depth, consumer, wait, clock)

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return once intake has recorded what waited at start, the bound passed, or stopping."""
        while (outcome := self._wait.outcome(self._clock())) is None and not stopping.is_set():
            await pause(stopping, WAIT_POLL_S)
            await self._read()
        waited_s = self._clock() - self._wait.started_s
        self._ended = (outcome, waited_s)
        log.info(
            "scheduler.backlog_wait_ended",
            outcome=outcome or "stopped",
            waited_s=round(waited_s, 3),
            messages=self._wait.waiting_at_start,
            received=self._consumer.received,
            still_waiting=self._waiting,
        )

    async def fire_until(self, now: datetime) -> datetime | None:
        """The latest due instant to fire at ``now``; None: all that are due (the usual)."""
        if self._wait.drained:
            return None  # caught up: from here on, no reading and nothing held
        if self._clock() - self._read_at_s >= CATCH_UP_POLL_S:
            await self._read()
            if self._wait.drained:
                log.info(
                    "scheduler.backlog_caught_up",
                    after_s=round(self._clock() - self._wait.started_s, 3),
                    received=self._consumer.received,
                )
                return None
        read_up_to = self._consumer.read_up_to
        until = fire_until(self._wait, read_up_to, now, self._clock())
        holding = until == NOTHING
        if holding != self._holding:
            # Once each way: the steps held are all catch-ups, told in digests once fired.
            log.info(
                "scheduler.catch_ups_held" if holding else "scheduler.catch_ups_released",
                read_up_to=None if read_up_to is None else read_up_to.isoformat(),
                received=self._consumer.received,
            )
            self._holding = holding
        return until

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` tells of the wait: waiting, catching up, or done."""
        started = {"messages_at_start": self._wait.waiting_at_start}
        if self._ended is None:
            elapsed_s = round(self._clock() - self._wait.started_s, 1)
            return {
                "state": "waiting",
                **started,
                "waiting": self._waiting,
                "waited_s": elapsed_s,
                "bound_s": self._wait.bound_s,
            }
        outcome, waited_s = self._ended
        done = {**started, "outcome": outcome or "stopped", "waited_s": round(waited_s, 1)}
        if self._wait.drained or outcome is None:
            return {"state": "done", **done}
        until = self._consumer.read_up_to
        return {
            "state": "catching up",
            **done,
            "waiting": self._waiting,
            "fires_until": None if until is None else until.isoformat(),
            "catch_ups_held": self._holding,
        }

    async def close(self) -> None:
        """Close the channel the queue was read on."""
        await self._depth.close()

    async def _read(self) -> None:
        """Read the queue and intake's counts into the wait; a failed reading is skipped."""
        waiting = await self._depth.read()
        self._read_at_s = self._clock()
        if waiting is None:
            return
        # Read right after the queue, with nothing awaited between: what intake had
        # received and settled when the broker answered.
        received = self._consumer.received
        settled = received - self._consumer.held
        self._waiting = waiting
        self._wait = self._wait.read(QueueReading(self._read_at_s, waiting, received, settled))
