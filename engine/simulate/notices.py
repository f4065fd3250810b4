"""How much each recipient would hear of a simulated history, under the budgets.

The steps of a simulation fire at their due instants; each step's notices are the ones
the daemon's ``Composer`` writes, and each goes through the same pure budget core
(``engine.notify.budget.admit``) as in the daemon: alone while the budget lasts, else
into the digest sent at the end of its window. Without budgets (``budget=False``) every
notice is a message of its own: the figures before budgets.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from engine.config import AgreementConfig
from engine.escalation import FiredStep
from engine.notify.budget import Held, Window, admit, bypasses, rule_for
from engine.notify.compose import Composer
from engine.notify.notice import CHANNELS, ChannelName
from engine.simulate.core import SimulatedStep

Key = tuple[ChannelName, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class RecipientVolume:
    """What one recipient hears on one channel."""

    channel: ChannelName
    recipient: str
    name: str
    notices: int = 0  # every notice a message: the figure without budgets
    alone: int = 0  # sent by themselves
    digests: int = 0
    held: int = 0  # notices told in digests
    max_day_before: int = 0  # the most notices in one day
    max_day: int = 0  # the most messages (alone and digests) in one day
    largest_digest: int = 0  # the most notices held in one digest

    @property
    def messages(self) -> int:
        """Messages received: notices sent alone, and digests."""
        return self.alone + self.digests


@dataclass
class NoticeVolume:
    """Every recipient's volume, and the daily number no one should pass."""

    recipients: list[RecipientVolume] = field(default_factory=list)
    daily_max_messages: int = 0
    budgeted: bool = True

    @property
    def notices(self) -> int:
        """Notices written: the messages without budgets."""
        return sum(r.notices for r in self.recipients)

    @property
    def messages(self) -> int:
        """Messages sent under the budgets."""
        return sum(r.messages for r in self.recipients)

    budgeted_channels: frozenset[str] = frozenset()

    @property
    def over_daily(self) -> list[RecipientVolume]:
        """The recipients on a budgeted channel (people; machines get every notice) who
        get more messages than the daily number on some day."""
        return [
            r
            for r in self.recipients
            if r.channel in self.budgeted_channels and r.max_day > self.daily_max_messages
        ]


def fired_step(config: AgreementConfig, step: SimulatedStep) -> FiredStep:
    """The step as the daemon's scheduler would fire it, at its due instant."""
    return FiredStep(
        ticket_id=step.ticket_id,
        clock_key=step.clock_key,
        metric=step.metric,  # type: ignore[arg-type]
        agreement_kind=step.agreement,  # type: ignore[arg-type]
        department=step.department,
        service=step.service,
        function=step.function,  # type: ignore[arg-type]
        priority=step.priority,  # type: ignore[arg-type]
        calendar=config.calendar_for(step.department).id,
        target_s=step.target_s,
        step=step.step,
        tier=step.tier,  # type: ignore[arg-type]
        due_at=step.due_at,
        fired_at=step.due_at,
        deadline=None,
        assigned_function=step.assigned_function,  # type: ignore[arg-type]
        assigned_team=step.assigned_team,
    )


def notice_volume(
    config: AgreementConfig, steps: Iterable[SimulatedStep], *, budget: bool = True
) -> NoticeVolume:
    """Each recipient's notices and messages for steps fired at their due instants."""
    composer = Composer(config)
    # Who hears of a step depends on what it is, not on which ticket or when: the
    # Composer's recipients for each kind of step, once (writing every text of a year's
    # notices would take most of the time).
    routes: dict[FiredStep, list[tuple[ChannelName, str, str]]] = {}
    budgets = config.notices
    zone = config.calendars[config.general_contract.default_calendar].zone
    volumes: dict[Key, RecipientVolume] = {}
    windows: dict[Key, Window | None] = {}
    before: dict[Key, Counter[date]] = defaultdict(Counter)
    sent: dict[Key, list[datetime]] = defaultdict(list)
    digests: dict[Key, Counter[datetime]] = defaultdict(Counter)
    # Recipients are the department's version in force when a step fires: a kind of step
    # is told to the same people from one version's start to the next.
    starts = (_EPOCH, *config.version_starts())
    for simulated in sorted(steps, key=lambda s: (s.due_at, s.ticket_id, s.clock_key, s.step)):
        step = fired_step(config, simulated)
        bypass = bypasses(budgets, state=step.state, tier=step.tier)
        since = starts[max(0, bisect_right(starts, step.fired_at) - 1)]
        kind = replace(step, ticket_id="", clock_key="", due_at=_EPOCH, fired_at=since)
        route = routes.get(kind)
        if route is None:
            route = routes[kind] = [
                (n.channel, n.recipient, n.recipient_name) for n in composer.notices(step)
            ]
        for channel, recipient, name in route:
            key = (channel, recipient)
            volume = volumes.get(key)
            if volume is None:
                volume = volumes[key] = RecipientVolume(channel, recipient, name)
            volume.notices += 1
            before[key][_day(step.fired_at, zone)] += 1
            if not budget:
                volume.alone += 1
                sent[key].append(step.fired_at)
                continue
            placed, windows[key] = admit(
                rule_for(budgets, channel), windows.get(key), step.fired_at, bypass=bypass
            )
            if isinstance(placed, Held):
                volume.held += 1
                if placed.send_at not in digests[key]:
                    volume.digests += 1
                    sent[key].append(placed.send_at)
                digests[key][placed.send_at] += 1
            else:
                volume.alone += 1
                sent[key].append(step.fired_at)
    for key, volume in volumes.items():
        volume.max_day_before = max(before[key].values(), default=0)
        volume.max_day = max(Counter(_day(at, zone) for at in sent[key]).values(), default=0)
        volume.largest_digest = max(digests[key].values(), default=0)
    ordered = sorted(volumes.values(), key=lambda v: (-v.messages, v.channel, v.recipient))
    limited = frozenset(c for c in CHANNELS if rule_for(budgets, c).max_messages is not None)
    return NoticeVolume(ordered, budgets.daily_max_messages, budget, limited)


def _day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def messages_by_key(volume: NoticeVolume) -> dict[Key, RecipientVolume]:
    """The volume's recipients by channel and recipient."""
    return {(r.channel, r.recipient): r for r in volume.recipients}


def check_every_notice_told_once(volume: NoticeVolume) -> Sequence[RecipientVolume]:
    """Recipients whose notices are not each in exactly one message (none, if all is well)."""
    return [r for r in volume.recipients if r.alone + r.held != r.notices]
