"""How much people hear: the budgets of ``config/notices.yaml``, per channel.

A budget allows a recipient at most ``max_messages`` messages on one channel per
``window``; notices over it are held and sent together as one digest at the end of the
window. Machines (webhooks, the bus) are unbudgeted unless configured: they get every
notice, and only a catch-up after an outage is gathered into a digest for them too.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from engine.config.durations import Duration


class _Model(BaseModel):
    # As ``models.Model``, which imports this module (for ``ConfigFile``), so not from it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelBudget(_Model):
    """The budget of one channel: ``max_messages`` per ``window`` to one recipient."""

    max_messages: int | None = Field(
        default=None, ge=1, description="messages per window; null: every notice alone"
    )
    window: Duration = Field(
        default=timedelta(minutes=15),
        description="how long a budget lasts, and how long a digest gathers",
    )


def _email_default() -> ChannelBudget:
    return ChannelBudget(max_messages=1, window=timedelta(minutes=30))


class NoticesConfig(_Model):
    """The section ``notices``: budgets per channel, what bypasses them, the daily number."""

    email: ChannelBudget = Field(default_factory=_email_default)
    webhook: ChannelBudget = Field(default_factory=ChannelBudget)
    amqp: ChannelBudget = Field(default_factory=ChannelBudget)
    strategic_breach_bypasses_budget: bool = Field(
        default=False, description="a breach step at the strategic tier is sent alone, always"
    )
    digest_max_items: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="items a digest lists; beyond them it counts (a catch-up of thousands)",
    )
    daily_max_messages: int = Field(
        default=50,
        ge=1,
        description="the most messages one recipient should get in a day; simulate checks it",
    )
