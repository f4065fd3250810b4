"""The configuration in force, and the one place a reload replaces it.

Intake's meter, the scheduler's composer, the HTTP port and the gauges read the
configuration through one ``RunningConfig``, each at the start of a batch, a firing, a
request or a refresh, and keep what they read until that piece of work is done. A
reload builds a whole new ``ConfigInForce`` beside the old one and swaps it in with one
assignment, on the event loop: no part ever sees half of one configuration and half of
another, and a batch under way finishes with the configuration it began with.

Open tickets are not re-targeted by a swap: their clocks keep the agreement snapshots
attached when the clocks started (``engine.sla_clock.agreements``).
"""

from __future__ import annotations

from datetime import datetime

from engine.config import AgreementConfig, LoadedConfig
from engine.notify.compose import Composer
from engine.sla_clock.meter import ClockMeter


class ConfigInForce:
    """One loaded configuration, its version, and the pure parts built on it."""

    def __init__(self, loaded: LoadedConfig, loaded_at: datetime) -> None:
        self.config: AgreementConfig = loaded.config
        self.version = loaded.version
        self.loaded_at = loaded_at
        self.meter = ClockMeter(loaded.config)
        self.composer = Composer(loaded.config)

    def __repr__(self) -> str:
        return f"ConfigInForce(version={self.version!r}, loaded_at={self.loaded_at.isoformat()})"


class RunningConfig:
    """Holds the configuration in force; ``swap`` replaces it whole."""

    def __init__(self, first: ConfigInForce) -> None:
        self.current = first

    def meter(self) -> ClockMeter:
        """The clock meter of the configuration in force now."""
        return self.current.meter

    def composer(self) -> Composer:
        """The notice composer of the configuration in force now."""
        return self.current.composer

    def swap(self, new: ConfigInForce) -> ConfigInForce:
        """Put ``new`` in force; the one it replaces."""
        # One assignment and no await: to the event loop the swap is a single step.
        old, self.current = self.current, new
        return old
