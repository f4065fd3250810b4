"""How much one recipient hears on one channel: alone while the budget lasts, else a digest.

Pure: no I/O and no wall clock; every instant is passed in. The daemon keeps a
``Window`` per recipient and channel in the store and asks ``admit`` about each notice
in the transaction that fires its step; ``simulate`` asks the same about a history.

Windows follow one another. A recipient's first message opens one at its instant; up
to ``max_messages`` notices in it go out alone, and any later are held for one digest
sent when the window ends. That digest opens the next window and counts as one of its
messages, so no window, the one after a digest included, holds more than
``max_messages`` messages (a bypassing strategic breach aside). A window that ends
without a digest leaves the recipient quiet: the next notice opens a new one.

A notice of a step fired for a clock already stopped (a catch-up) is never sent alone:
it goes into the digest of its window, on every channel, budgeted or not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from engine.config.notices import NoticesConfig
from engine.notify.notice import ChannelName

# Fixed for ever: digest ids are derived from it, and receivers dedupe on them.
_DIGEST_NAMESPACE = UUID("6f0b1f8e-5d9c-4d53-b1a4-2f6e7c9a0d31")


@dataclass(frozen=True, slots=True)
class Rule:
    """One channel's budget: ``max_messages`` per ``window`` (None: no limit)."""

    max_messages: int | None
    window: timedelta


@dataclass(frozen=True, slots=True)
class Window:
    """Where a recipient stands on one channel: the window open, its messages, a digest."""

    start: datetime
    sent: int  # messages counted in the window: alone, and the digest that opened it
    holding: bool  # notices are held for the digest that ends the window


@dataclass(frozen=True, slots=True)
class Alone:
    """The notice goes out by itself, now."""


@dataclass(frozen=True, slots=True)
class Held:
    """The notice goes into the digest of the window that started at ``window_start``."""

    window_start: datetime
    send_at: datetime  # the end of that window


Placement = Alone | Held
ALONE = Alone()


def rule_for(config: NoticesConfig, channel: ChannelName) -> Rule:
    """The budget of ``channel`` under the configuration."""
    budget = {"email": config.email, "webhook": config.webhook, "amqp": config.amqp}[channel]
    return Rule(budget.max_messages, budget.window)


def bypasses(config: NoticesConfig, *, state: str, tier: str) -> bool:
    """Whether a step's notices go out whatever the budget: a strategic breach, if set."""
    return config.strategic_breach_bypasses_budget and state == "breach" and tier == "strategic"


def current(rule: Rule, window: Window | None, at: datetime) -> Window | None:
    """The window open at ``at``: a held digest opens the next one; None when quiet."""
    if window is None or at < window.start + rule.window:
        return window
    if window.holding:
        # The digest goes out when the window ends, opening the next, and counts in it.
        following = Window(window.start + rule.window, 1, False)
        if at < following.start + rule.window:
            return following
    return None


def admit(
    rule: Rule,
    window: Window | None,
    at: datetime,
    *,
    catch_up: bool = False,
    bypass: bool = False,
) -> tuple[Placement, Window | None]:
    """Where a notice offered at ``at`` goes, and the recipient's window after it."""
    if rule.max_messages is None and not catch_up:
        return ALONE, window  # a machine: every notice alone, nothing to count
    open_now = current(rule, window, at)
    if bypass and not catch_up:
        if open_now is None:
            return ALONE, Window(at, 1, False)
        return ALONE, replace(open_now, sent=open_now.sent + 1)
    if open_now is None:
        if catch_up:
            opened = Window(at, 0, True)
            return Held(at, at + rule.window), opened
        return ALONE, Window(at, 1, False)
    limit = rule.max_messages
    if catch_up or (limit is not None and open_now.sent >= limit):
        held = replace(open_now, holding=True)
        return Held(open_now.start, open_now.start + rule.window), held
    return ALONE, replace(open_now, sent=open_now.sent + 1)


def digest_id(channel: ChannelName, recipient: str, window_start: datetime, part: int = 0) -> UUID:
    """The stable id of a digest: the same recipient, channel and window give the same id.

    ``part`` counts on only when a digest was already taken by a sender while a notice
    of its window was still being fired: the late notice goes into a digest of its own.
    """
    key = f"digest/{channel}/{recipient}/{window_start.astimezone(UTC).isoformat()}/{part}"
    return uuid5(_DIGEST_NAMESPACE, key)
