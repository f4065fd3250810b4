"""The engine as a subprocess: one ``sla-engine run`` per ``Daemon``, its log in a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXAMPLE_CONFIG, REPO, EditYaml
from tests.services import AMQP_URL, free_port, poll

SLA_ENGINE = str(Path(sys.executable).with_name("sla-engine"))


class Daemon:
    """One ``sla-engine run`` process, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        env = {"SLA_ENGINE_HTTP_PORT": str(free_port()), **env}
        self.port = int(env["SLA_ENGINE_HTTP_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
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
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def daemon_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "SLA_ENGINE_AMQP_URL": AMQP_URL,
        "SLA_ENGINE_DATABASE_URL": database_url,
        "SLA_ENGINE_CONFIG_DIR": str(EXAMPLE_CONFIG),
        "SLA_ENGINE_BATCH_SIZE": "100",
        "SLA_ENGINE_PREFETCH": "300",
        "SLA_ENGINE_DB_RETRY_MAX_S": "0.5",
    }


@pytest.fixture
def daemons(daemon_env: dict[str, str], tmp_path: Path) -> Iterator[list[Daemon]]:
    """Start engines with ``start(daemons)``; any still running at the end are killed."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


async def start(daemons: list[Daemon], env: dict[str, str], tmp_path: Path) -> Daemon:
    daemon = Daemon(env, tmp_path / f"engine-{len(daemons)}.log")
    daemons.append(daemon)
    await daemon.started()
    return daemon




def short_sof_response(edit_yaml: EditYaml, target_s: int, ola_s: int) -> None:
    """SOF's mobile phones get a P1 response target of ``target_s`` seconds, and the
    pc-software OLA one of ``ola_s`` (an OLA must stay at least as strict as the SLA)."""

    def sof(data: Any) -> None:
        department = data["departments"][0]
        department["services"]["mobiltelefoni"]["targets"]["P1"]["response"] = f"{target_s}s"

    def olas(data: Any) -> None:
        for ola in data["olas"]:
            if ola["function"] == "pc-software":
                ola["targets"]["P1"]["response"] = f"{ola_s}s"

    edit_yaml("departments/sof.yaml", sof)
    edit_yaml("olas.yaml", olas)
