"""Retrying with exponential backoff until it works or the process is told to stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

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
