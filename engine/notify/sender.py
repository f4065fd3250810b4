"""Deliver the outbox: claim due notices, send them outside any transaction, record how.

A claim moves a notice's ``next_attempt_at`` ahead by the lease, so a sender that dies
while delivering gives its notices back when the lease runs out; the next sender sends
them again with the same stable id, which is what lets a receiver recognise the resend.
A temporary failure is retried with exponential backoff; a permanent one (a refused
address, a 4xx) or the last attempt leaves the notice failed, with its error, for good.

Digests (notices a budget held, or a catch-up gathered) go the same way once their
window has ended: claimed, written in the recipient's language, sent with their stable
id, settled. A notice whose step was superseded before it left is settled without being
sent; so is a digest all of whose steps were, and the others leave those steps out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter

from engine.loops import run_cycles
from engine.metrics import DIGESTS, NOTICES
from engine.notify.digest import compose
from engine.notify.notice import Channel, ChannelName, DeliveryError, Notice
from engine.settings import Settings
from engine.store.outbox import ClaimedDigest, ClaimedNotice, OutboxStore, Settlement

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SenderOptions:
    """How the sender paces itself; the defaults are the settings' defaults."""

    max_attempts: int = 10
    lease_s: float = 60.0
    backoff_max_s: float = 600.0
    retry_max_s: float = 10.0
    # Not settings:
    batch_size: int = 50  # notices claimed at once
    backoff_base_s: float = 2.0  # the first pause, doubled at each attempt
    idle_s: float = 30.0  # the longest sleep while nothing is due
    drain_s: float = 5.0  # for the deliveries under way at shutdown

    @classmethod
    def from_settings(cls, settings: Settings) -> SenderOptions:
        """The options the engine's settings give."""
        return cls(
            max_attempts=settings.notify_max_attempts,
            lease_s=settings.notify_lease_s,
            backoff_max_s=settings.notify_backoff_max_s,
            retry_max_s=settings.db_retry_max_s,
        )


class OutboxSender:
    """Sends pending notices through their channels until stopped."""

    def __init__(
        self,
        store: OutboxStore,
        channels: Mapping[ChannelName, Channel],
        options: SenderOptions,
        *,
        transient: Callable[[BaseException], bool],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._drain_s = options.drain_s
        self._delivery_timeout_s = options.lease_s / 2
        self._channels = channels
        self._transient = transient
        self._max_attempts = options.max_attempts
        self._lease = timedelta(seconds=options.lease_s)
        self._batch_size = options.batch_size
        self._backoff_base_s = options.backoff_base_s
        self._backoff_max_s = options.backoff_max_s
        self._idle_s = options.idle_s
        self._retry_max_s = options.retry_max_s
        self._now = now
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed = 0

    def wake(self) -> None:
        """Look at the outbox now: a firing has just queued notices."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set.

        Deliveries under way then get ``drain_s`` to finish; any cut off stay leased and
        go out again, with their ids, once the lease runs out.
        """
        await run_cycles(
            self._cycle,
            wake=self._wake,
            stopping=stopping,
            transient=self._transient,
            max_delay_s=self._retry_max_s,
            event="notify.store_unavailable",
            drain_s=self._drain_s,
        )

    async def _cycle(self) -> float:
        now = self._now()
        claimed = await self._store.claim(now, now + self._lease, self._batch_size)
        if claimed:
            outcomes = await asyncio.gather(*(self._deliver(notice) for notice in claimed))
            await self._store.settle(outcomes)
        digests = await self._store.claim_digests(now, now + self._lease, self._batch_size)
        if digests:
            settled = await asyncio.gather(*(self._deliver_digest(d) for d in digests))
            await self._store.settle_digests(settled)
        if len(claimed) >= self._batch_size or len(digests) >= self._batch_size:
            return 0.0
        return await self._sleep_s()

    async def _sleep_s(self) -> float:
        earliest = await self._store.earliest_pending()
        if earliest is None:
            return self._idle_s
        seconds: float = (earliest - self._now()).total_seconds()
        return min(max(seconds, 0.01), self._idle_s)

    async def _send(self, channel: Channel, notice: Notice) -> None:
        try:
            # One bound on the whole delivery, well inside the lease, whatever the
            # channel's own per-step timeouts add up to.
            await asyncio.wait_for(channel.deliver(notice), timeout=self._delivery_timeout_s)
        except DeliveryError:
            raise
        except TimeoutError as exc:
            raise DeliveryError(
                f"no answer within {self._delivery_timeout_s:.0f} s", permanent=False
            ) from exc
        except Exception as exc:
            # A channel failing in a way it does not classify: tried again, up to the
            # last attempt, rather than stopping the sender and every other notice.
            log.exception("notify.channel_error", channel=notice.channel)
            raise DeliveryError(f"unexpected error: {exc!r}", permanent=False) from exc

    async def _deliver(self, claimed: ClaimedNotice) -> Settlement:
        """Send one notice; how the attempt ended: status, retry time and error."""
        notice, attempts = claimed.notice, claimed.attempts
        context: dict[str, object] = {
            "notice_id": str(notice.notice_id),
            "ticket_id": claimed.ticket_id,
            "channel": notice.channel,
            "attempt": attempts,
        }
        if claimed.superseded:
            NOTICES.labels(notice.channel, "superseded").inc()
            log.info("notify.superseded", **context)
            now = self._now()
            return Settlement(notice.notice_id, "superseded", now, None, None, None, attempts)
        return await self._attempt(notice, attempts, context, NOTICES, "notify")

    async def _deliver_digest(self, claimed: ClaimedDigest) -> Settlement:
        """Write and send one digest; how the attempt ended."""
        digest, attempts = claimed.digest, claimed.attempts
        context = {
            "digest_id": str(digest.digest_id),
            "channel": digest.channel,
            "items": len(digest.items),
            "unlisted": digest.unlisted,
            "superseded": claimed.superseded,
            "attempt": attempts,
        }
        if not digest.items and not digest.unlisted:
            DIGESTS.labels(digest.channel, "superseded").inc()
            log.info("notify.digest_superseded", **context)
            now = self._now()
            return Settlement(digest.digest_id, "superseded", now, None, None, None, attempts)
        return await self._attempt(compose(digest), attempts, context, DIGESTS, "notify.digest")

    async def _attempt(
        self,
        notice: Notice,
        attempts: int,
        context: dict[str, object],
        counter: Counter,
        event: str,
    ) -> Settlement:
        """Send a notice or a written digest: how the attempt ended."""
        channel = self._channels.get(notice.channel)
        try:
            if channel is None:
                raise DeliveryError(f"no {notice.channel} channel is configured", permanent=True)
            await self._send(channel, notice)
        except DeliveryError as exc:
            now = self._now()
            if exc.permanent or attempts >= self._max_attempts:
                self.failed += 1
                counter.labels(notice.channel, "failed").inc()
                log.error(f"{event}.failed", error=str(exc), permanent=exc.permanent, **context)
                return Settlement(notice.notice_id, "failed", now, None, now, str(exc), attempts)
            delay_s = min(self._backoff_base_s * 2 ** (attempts - 1), self._backoff_max_s)
            counter.labels(notice.channel, "retried").inc()
            log.warning(f"{event}.retry", error=str(exc), retry_in_s=delay_s, **context)
            return Settlement(
                notice.notice_id,
                "pending",
                next_attempt_at=now + timedelta(seconds=delay_s),
                sent_at=None,
                failed_at=None,
                last_error=str(exc),
                attempts=attempts,
            )
        now = self._now()
        self.sent += 1
        counter.labels(notice.channel, "sent").inc()
        log.info(f"{event}.sent", **context)
        return Settlement(notice.notice_id, "sent", now, now, None, None, attempts)
