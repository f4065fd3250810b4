"""What the commands share: loading the settings, the exit status for a refused start,
the collector's tuning for long runs."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from engine.settings import ENV_PREFIX, Settings

CONFIG_DIR_ENV = f"{ENV_PREFIX}CONFIG_DIR"

# sysexits' EX_CONFIG: the daemon cannot start as configured, and starting it again
# unchanged will not help. The systemd unit names it in RestartPreventExitStatus, so a
# wrong setting stops the service with its reason instead of a restart loop.
EXIT_CONFIG = 78


def load_settings(path: Path | None, exit_code: int = 1) -> Settings:
    """The settings from ``path`` and the environment; exit with ``exit_code`` when refused."""
    try:
        return Settings.load(path)
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"sla-engine: invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(exit_code) from None


# The young generation is collected once this many more objects the collector tracks
# have been made than freed. It was 50,000, less than what intake's batches in flight
# keep alive: each batch then walked its own work in young collections (1.6 of them a
# batch, 45 ms on average), and the middle generation, let grow for fifty of them,
# paused the loop for a second. On the 200,000-event benchmark (2026-12-04, in turn with
# the code before) the collector took 6.3-6.9 s of the engine's CPU, 13-16 % of it; with
# this threshold and the middle generation collected at every third young collection
# (CPython collects a generation once its count exceeds the threshold: 2), 1.3-1.8 s
# (4-5 %), and no pause over 0.76 s.
YOUNG_THRESHOLD = 200_000
# What one message held unsettled keeps alive for the collector, counted loosely: its
# frames and properties, its parsed event, its ticket's locked row, timeline and clocks.
OBJECTS_PER_HELD_MESSAGE = 25


def young_threshold(held_messages: int) -> int:
    """The young generation's threshold for a process holding up to this many messages."""
    return max(YOUNG_THRESHOLD, OBJECTS_PER_HELD_MESSAGE * held_messages)


def tune_gc(held_messages: int = 0) -> None:
    """Collect cyclic garbage rarely: the daemon makes little, and keeps much alive.

    With the default thresholds a young-generation collection runs every 700
    allocations and the older ones walk the recorder's cache of parsed events again and
    again: a fifth of the engine's CPU while draining a backlog. The configuration,
    loaded once, is moved out of the collector's sight altogether. ``held_messages``:
    the most messages intake holds at once (its prefetch), whose work the young
    generation's threshold stays above; the middle generation is collected at every
    third young collection, so that no collection walks more than about four young
    generations' worth.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold(held_messages), 2, 100)
