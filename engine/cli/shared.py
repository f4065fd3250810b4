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


def tune_gc() -> None:
    """Collect cyclic garbage rarely: the daemon makes little, and keeps much alive.

    With the default thresholds a young-generation collection runs every 700
    allocations and the older ones walk the recorder's cache of parsed events again and
    again: a fifth of the engine's CPU while draining a backlog. The configuration,
    loaded once, is moved out of the collector's sight altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
