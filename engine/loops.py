"""The daemon's worker loops: retrying with exponential backoff until it works or the
process is told to stop, cycles of work that sleep between them, and periodic jobs.

Periodic jobs run on APScheduler, and only for work that repeats (gauge refresh,
personal-data purge, planner statistics); no deadline is ever kept there: the scheduler
of steps reads its instants from PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep for ``seconds``, but wake at once when ``stopping`` is set."""
    waiter = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({waiter}, timeout=seconds)
    waiter.cancel()


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[BaseException], bool],
    stopping: asyncio.Event,
    max_delay_s: float,
    event: str,
    first_delay_s: float = 0.2,
    on_retry: Callable[[], None] | None = None,
) -> T | None:
    """Run ``attempt`` until it succeeds; None if stopped first. Other errors propagate.

    Each transient failure is logged as ``event`` with the error and the pause before
    the next attempt, which doubles up to ``max_delay_s``.
    """
    delay_s = first_delay_s
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            if on_retry is not None:
                on_retry()
            log.warning(event, error=repr(exc), retry_in_s=delay_s)
        if stopping.is_set():
            return None
        await pause(stopping, delay_s)
        delay_s = min(delay_s * 2, max_delay_s)


async def run_cycles(
    cycle: Callable[[], Awaitable[float]],
    *,
    wake: asyncio.Event,
    stopping: asyncio.Event,
    transient: Callable[[BaseException], bool],
    max_delay_s: float,
    event: str,
    drain_s: float | None = None,
    before_cycle: Callable[[], None] | None = None,
) -> None:
    """Run ``cycle`` until ``stopping``; each returns the seconds to sleep (0: go on).

    The sleep ends early when ``wake`` is set (stopping sets it too). Transient errors
    are retried as ``until_done`` does, logged as ``event``. With ``drain_s``, a cycle
    under way when stopping comes gets that long to finish and is then cancelled;
    without it, the cycle is always finished.
    """
    stop_waiter = asyncio.ensure_future(stopping.wait())
    stop_waiter.add_done_callback(lambda _: wake.set())
    try:
        while not stopping.is_set():
            wake.clear()
            if before_cycle is not None:
                before_cycle()
            running = asyncio.ensure_future(
                until_done(
                    cycle,
                    transient=transient,
                    stopping=stopping,
                    max_delay_s=max_delay_s,
                    event=event,
                )
            )
            if drain_s is not None:
                await asyncio.wait({running, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not running.done():
                    await asyncio.wait({running}, timeout=drain_s)
                    running.cancel()
                    # Unwound before returning: a cycle may hold a pool connection.
                    await asyncio.gather(running, return_exceptions=True)
                    return
            sleep_s = await running
            if sleep_s is None:
                return
            if sleep_s > 0:
                await pause(wake, sleep_s)
    finally:
        stop_waiter.cancel()


def run_every(job: Callable[[], Awaitable[None]], interval_s: float, name: str) -> AsyncIOScheduler:
    """Run ``job`` now and then every ``interval_s``; shut the scheduler down to stop.

    A run that is still going when the next is due is not stacked (one instance), and
    runs missed meanwhile are made up by one (coalesced).
    """
    periodic = AsyncIOScheduler(timezone=UTC)
    periodic.add_job(
        job,
        "interval",
        seconds=interval_s,
        id=name,
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    periodic.start()
    return periodic


class Every:
    """``job`` run as ``run_every`` runs it, from ``start`` until ``stop``."""

    def __init__(self, job: Callable[[], Awaitable[None]], interval_s: float, name: str) -> None:
        self._job = job
        self._interval_s = interval_s
        self._name = name
        self._periodic: AsyncIOScheduler | None = None

    def start(self) -> None:
        self._periodic = run_every(self._job, self._interval_s, self._name)

    def stop(self) -> None:
        """Stop running it (a run under way is not waited for); nothing if not started."""
        if self._periodic is not None:
            self._periodic.shutdown(wait=False)
            self._periodic = None
