"""The engine as a subprocess: one ``sla-engine run`` per ``Daemon``, its log in a file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import Daemon
from tests.helpers import EXAMPLE_CONFIG, EditYaml
from tests.services import AMQP_URL
from tests.streams import AHEAD_S


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
        "SLA_ENGINE_MAX_AHEAD_S": str(AHEAD_S),
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
