"""Load the agreement configuration again while the engine runs: SIGHUP or POST /reload.

The files are loaded and checked in full, as ``check-config`` does, off the event loop;
only a configuration that passes is put in force, in one swap (``engine.running``).
One that does not is refused with check-config's file:line problems, logged and
counted, and the configuration in force stays. Reloads run one at a time, in the order
asked: a signal that arrives while one loads is answered by a load of its own, which
sees the files as they are then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from engine.config import ConfigError, LoadedConfig, load_versioned
from engine.metrics import CONFIG_LOADED, CONFIG_RELOAD_OK, CONFIG_RELOADS_REFUSED, CONFIG_VERSION
from engine.running import ConfigInForce, RunningConfig

log = structlog.get_logger(__name__)

ReloadStatus = Literal["reloaded", "unchanged", "refused"]


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: the version in force after it and before it, and any problems."""

    status: ReloadStatus
    version: str
    previous: str
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The answer of POST /reload."""
        return {
            "status": self.status,
            "version": self.version,
            "previous": self.previous,
            "problems": list(self.problems),
        }


def publish_in_force(current: ConfigInForce) -> None:
    """Export the version in force, and that it loaded well (at start, or by a reload)."""
    CONFIG_VERSION.info({"version": current.version})
    CONFIG_LOADED.set(current.loaded_at.timestamp())
    CONFIG_RELOAD_OK.set(1)


class Reloader:
    """Reloads ``directory`` into ``running`` on request, one reload at a time."""

    def __init__(
        self,
        running: RunningConfig,
        directory: Path,
        *,
        load: Callable[[Path], LoadedConfig] = load_versioned,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._running = running
        self._directory = directory
        self._load = load
        self._now = now
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[ReloadOutcome]] = set()  # reloads the signal started

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Load and check the files; put them in force if valid, else keep the old ones."""
        async with self._lock:
            before = self._running.current
            started = time.perf_counter()
            try:
                # Off the loop: parsing the YAML takes a good part of a second, which
                # intake and the scheduler should not wait for.
                loaded = await asyncio.to_thread(self._load, self._directory)
            except ConfigError as exc:
                return self._refused(before, [str(problem) for problem in exc.problems], trigger)
            except Exception as exc:
                # A loader bug must not take the engine down: refused, and the trace logged.
                log.exception("config.reload_failed", trigger=trigger)
                problem = f"the configuration could not be loaded: {exc!r}"
                return self._refused(before, [problem], trigger)
            took_s = round(time.perf_counter() - started, 3)
            if loaded.version == before.version:
                CONFIG_LOADED.set(self._now().timestamp())
                CONFIG_RELOAD_OK.set(1)
                log.info("config.unchanged", version=before.version, trigger=trigger, took_s=took_s)
                return ReloadOutcome("unchanged", before.version, before.version)
            new = ConfigInForce(loaded, self._now())
            self._running.swap(new)
            publish_in_force(new)
            log.info(
                "config.reloaded",
                version=new.version,
                previous=before.version,
                trigger=trigger,
                departments=len(new.config.departments),
                took_s=took_s,
            )
            return ReloadOutcome("reloaded", new.version, before.version)

    def _refused(self, kept: ConfigInForce, problems: list[str], trigger: str) -> ReloadOutcome:
        CONFIG_RELOADS_REFUSED.inc()
        CONFIG_RELOAD_OK.set(0)
        log.error(
            "config.reload_refused",
            version=kept.version,
            directory=str(self._directory),
            trigger=trigger,
            problems=problems,
        )
        return ReloadOutcome("refused", kept.version, kept.version, tuple(problems))

    def on_signal(self) -> None:
        """SIGHUP: reload in a task of its own, since a signal handler cannot wait."""
        task = asyncio.create_task(self.reload("SIGHUP"), name="config-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let the reloads the signal started finish (a load takes well under a second)."""
        await asyncio.gather(*self._tasks)
