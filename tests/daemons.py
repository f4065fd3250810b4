"""The engine as a subprocess: one ``sla-engine run`` per ``Daemon``, its log in a file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import REPO
from tests.services import free_port, poll

SLA_ENGINE = str(Path(sys.executable).with_name("sla-engine"))


class Daemon:
    """One ``sla-engine run`` process, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        # No monthly report unless a test asks: an engine started today would send last
        # month's as a catch-up, into the outbox and the mailboxes other tests count.
        env = {
            "SLA_ENGINE_HTTP_PORT": str(free_port()),
            "SLA_ENGINE_MONTHLY_REPORTS": "false",
            **env,
        }
        self.port = int(env["SLA_ENGINE_HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.killed = False  # by the test, on purpose
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [SLA_ENGINE, "run"], env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT
        )

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        found = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def logged(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e["event"] == name), None)

    async def started(self) -> None:
        async def up() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()
            return self.logged("engine.started") is not None

        await poll(up, what="the engine to start")

    async def terminate(self, timeout_s: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await self.wait(timeout_s)

    async def wait(self, timeout_s: float) -> int:
        async def exited() -> bool:
            return self.process.poll() is not None

        await poll(exited, timeout_s, what="the engine to exit")
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, no grace: what a crash or the OOM killer does."""
        self.killed = True
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
