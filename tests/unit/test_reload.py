"""Reloading the configuration: its version, the swap, and what a reload leaves alone.

On the in-memory store: a batch under way finishes with the configuration it began
with; a ticket created after a reload runs under the new targets, one created before
keeps its own; a refused reload changes nothing, says where the files are wrong and is
counted. The engine as a process is in tests/acceptance/test_reload.py.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from engine.config import ConfigError, LoadedConfig, Problem, load_versioned
from engine.intake.recorder import Recorder
from engine.ops.http_port import HttpPort, Parts, _loopback
from engine.ops.reload import Reloader, ReloadOutcome
from engine.ops.reload_client import reload_url
from engine.running import ConfigInForce, RunningConfig
from engine.store.memory.recording import MemoryRecordingStore, MemoryRecordingTransaction
from engine.store.memory.tables import Tables
from tests.helpers import EXAMPLE_CONFIG, EditYaml
from tests.unit.test_recorder import created
from tests.unit.test_simulate import at, ev

LOADED_AT = datetime(2026, 12, 3, 9, tzinfo=UTC)


def slower_okf_payroll(data: Any) -> None:
    """OKF's payroll service: a P1 response target of 30 minutes instead of 15."""
    data["departments"][0]["services"]["opus-loen"]["targets"]["P1"]["response"] = "30m"


def in_force(directory: Path) -> RunningConfig:
    return RunningConfig(ConfigInForce(load_versioned(directory), LOADED_AT))


def refused_total() -> float:
    return REGISTRY.get_sample_value("sla_engine_config_reloads_refused_total") or 0.0


def response_due(tables: Tables, ticket: str) -> datetime | None:
    """When the ticket's response clock's first step (half its target) falls due."""
    return tables.clocks[(ticket, "response")].next_due_at


class TestVersion:
    def test_the_same_files_have_the_same_version_wherever_they_lie(self, tmp_path: Path) -> None:
        shutil.copytree(EXAMPLE_CONFIG, tmp_path / "copy")
        version = load_versioned(EXAMPLE_CONFIG).version
        assert load_versioned(tmp_path / "copy").version == version
        assert len(version) == 12
        assert set(version) <= set("0123456789abcdef")

    def test_an_edited_file_changes_the_version(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        before = load_versioned(config_dir).version
        edit_yaml("departments/okf.yaml", slower_okf_payroll)
        assert load_versioned(config_dir).version != before

    def test_a_file_moved_changes_the_version(self, config_dir: Path) -> None:
        # The same bytes under another name are another set of files to an operator.
        before = load_versioned(config_dir).version
        (config_dir / "olas.yaml").rename(config_dir / "departments" / "olas.yaml")
        assert load_versioned(config_dir).version != before


class TestSwap:
    def test_the_holder_hands_out_the_parts_of_the_configuration_in_force(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        running = in_force(EXAMPLE_CONFIG)
        first = running.current
        assert (running.meter(), running.composer()) == (first.meter, first.composer)
        edit_yaml("departments/okf.yaml", slower_okf_payroll)
        second = ConfigInForce(load_versioned(config_dir), LOADED_AT)
        assert running.swap(second) is first
        assert running.current is second
        assert (running.meter(), running.composer()) == (second.meter, second.composer)

    async def test_tickets_created_before_a_reload_keep_their_targets(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        tables = Tables()
        running = in_force(config_dir)
        recorder = Recorder(running.meter, MemoryRecordingStore(tables))
        reloader = Reloader(running, config_dir)
        await recorder.record([created("BEFORE")], at(1))
        edit_yaml("departments/okf.yaml", slower_okf_payroll)
        assert (await reloader.reload("test")).status == "reloaded"
        await recorder.record([created("AFTER")], at(2))
        # A later event of the old ticket measures it again: its snapshot still holds.
        assigned = ev("ticket.assigned", "BEFORE", 1, 2, function="server-network")
        assert (await recorder.record([assigned], at(3))).measured == 1
        assert response_due(tables, "BEFORE") == at(7.5)  # half of 15 minutes
        assert response_due(tables, "AFTER") == at(15)  # half of 30 minutes

    async def test_a_batch_under_way_finishes_with_the_configuration_it_began_with(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        tables = Tables()
        store = HeldStore(tables)
        running = in_force(config_dir)
        recorder = Recorder(running.meter, store)
        batch = asyncio.create_task(recorder.record([created("A")], at(1)))
        await store.entered.wait()  # the batch has begun: its meter is read
        edit_yaml("departments/okf.yaml", slower_okf_payroll)
        assert (await Reloader(running, config_dir).reload("test")).status == "reloaded"
        store.release.set()
        await batch
        assert response_due(tables, "A") == at(7.5)  # the old 15 minutes
        await recorder.record([created("B")], at(2))
        assert response_due(tables, "B") == at(15)  # the next batch: the new 30


class TestReloader:
    async def test_a_refused_reload_keeps_the_configuration_and_says_where(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        running = in_force(config_dir)
        kept = running.current

        def broken(data: Any) -> None:
            data["departments"][0]["services"]["opus-loen"]["targets"]["P1"]["response"] = "soon"

        path = edit_yaml("departments/okf.yaml", broken)
        counted = refused_total()
        with capture_logs() as logs:
            outcome = await Reloader(running, config_dir).reload("test")
        assert running.current is kept
        assert (outcome.status, outcome.version, outcome.previous) == (
            "refused",
            kept.version,
            kept.version,
        )
        with pytest.raises(ConfigError) as checked:
            load_versioned(config_dir)
        # The same messages check-config prints, each with its file and line.
        assert list(outcome.problems) == [str(problem) for problem in checked.value.problems]
        assert any(problem.startswith(f"{path}:") for problem in outcome.problems)
        (refusal,) = [log for log in logs if log["event"] == "config.reload_refused"]
        assert refusal["problems"] == list(outcome.problems)
        assert refusal["log_level"] == "error"
        assert refused_total() == counted + 1
        assert REGISTRY.get_sample_value("sla_engine_config_last_reload_successful") == 0

    async def test_a_good_reload_after_a_refusal_is_in_force_and_exported(
        self, config_dir: Path, edit_yaml: EditYaml
    ) -> None:
        running = in_force(config_dir)
        first = running.current.version

        def refuse(directory: Path) -> LoadedConfig:
            raise ConfigError([Problem(str(directory / "x.yaml"), "calendars", "wrong", 3)])

        assert (await Reloader(running, config_dir, load=refuse).reload("test")).problems == (
            f"{config_dir}/x.yaml:3: calendars: wrong",
        )
        edit_yaml("departments/okf.yaml", slower_okf_payroll)
        with capture_logs() as logs:
            outcome = await Reloader(running, config_dir).reload("SIGHUP")
        assert (outcome.status, outcome.previous) == ("reloaded", first)
        assert outcome.version == running.current.version == load_versioned(config_dir).version
        assert REGISTRY.get_sample_value("sla_engine_config_last_reload_successful") == 1
        labels = {"version": outcome.version}
        assert REGISTRY.get_sample_value("sla_engine_config_info", labels) == 1
        assert REGISTRY.get_sample_value("sla_engine_config_info", {"version": first}) is None
        (reloaded,) = [log for log in logs if log["event"] == "config.reloaded"]
        assert (reloaded["version"], reloaded["previous"]) == (outcome.version, first)

    async def test_unchanged_files_leave_the_configuration_in_force_as_it_is(self) -> None:
        running = in_force(EXAMPLE_CONFIG)
        kept = running.current
        outcome = await Reloader(running, EXAMPLE_CONFIG).reload("test")
        assert (outcome.status, running.current) == ("unchanged", kept)

    async def test_reloads_run_one_at_a_time_in_the_order_asked(self, config_dir: Path) -> None:
        running = in_force(config_dir)
        loading = 0
        most = 0

        def load(directory: Path) -> LoadedConfig:
            nonlocal loading, most
            loading += 1
            most = max(most, loading)
            try:
                return load_versioned(directory)
            finally:
                loading -= 1

        reloader = Reloader(running, config_dir, load=load)
        for _ in range(3):
            reloader.on_signal()
        await reloader.close()
        assert most == 1


class TestReloadEndpoint:
    @pytest.mark.parametrize(
        ("remote", "local"),
        [
            ("127.0.0.1", True),
            ("127.8.9.1", True),
            ("::1", True),
            ("::ffff:127.0.0.1", True),
            ("10.0.0.7", False),
            ("172.17.0.1", False),
            ("::ffff:10.0.0.7", False),
            ("fe80::1", False),
            ("", False),
            (None, False),
        ],
    )
    def test_only_the_loopback_address_counts_as_this_host(
        self, remote: str | None, local: bool
    ) -> None:
        assert _loopback(remote) is local

    async def test_a_caller_from_another_address_is_refused_with_403(self) -> None:
        asked: list[str] = []

        async def reload(trigger: str) -> Any:
            asked.append(trigger)
            raise AssertionError("not to be called")

        port = HttpPort(Parts(in_force(EXAMPLE_CONFIG), "", reload=reload), "127.0.0.1", 0)
        transport = FakeTransport("10.1.2.3")
        request = make_mocked_request("POST", "/reload", transport=transport)
        answer = await port._reload(request)
        assert (answer.status, asked) == (403, [])

    @pytest.mark.parametrize(
        "header",
        ["Forwarded", "Via", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "x-real-ip"],
    )
    async def test_a_loopback_caller_relayed_by_a_proxy_is_refused_with_403(
        self, header: str
    ) -> None:
        asked: list[str] = []

        async def reload(trigger: str) -> Any:
            asked.append(trigger)
            raise AssertionError("not to be called")

        port = HttpPort(Parts(in_force(EXAMPLE_CONFIG), "", reload=reload), "127.0.0.1", 0)
        request = make_mocked_request(
            "POST", "/reload", headers={header: "10.1.2.3"}, transport=FakeTransport("127.0.0.1")
        )
        answer = await port._reload(request)
        assert (answer.status, asked) == (403, [])
        assert answer.content_type == "application/problem+json"
        assert isinstance(answer.body, bytes)
        assert b"through a proxy" in answer.body

    async def test_a_loopback_caller_without_proxy_headers_reloads(self) -> None:
        asked: list[str] = []

        async def reload(trigger: str) -> Any:
            asked.append(trigger)
            return ReloadOutcome("unchanged", "v1", "v1", ())

        port = HttpPort(Parts(in_force(EXAMPLE_CONFIG), "", reload=reload), "127.0.0.1", 0)
        request = make_mocked_request("POST", "/reload", transport=FakeTransport("127.0.0.1"))
        answer = await port._reload(request)
        assert (answer.status, asked) == (200, ["http"])

    @pytest.mark.parametrize(
        ("host", "url"),
        [
            ("127.0.0.1", "http://127.0.0.1:8321/reload"),
            ("0.0.0.0", "http://127.0.0.1:8321/reload"),
            ("::", "http://[::1]:8321/reload"),
            ("::1", "http://[::1]:8321/reload"),
            ("localhost", "http://localhost:8321/reload"),
        ],
    )
    def test_the_command_asks_the_loopback_address_of_the_port(self, host: str, url: str) -> None:
        assert reload_url(host, 8321) == url


class HeldStore(MemoryRecordingStore):
    """An in-memory store whose transactions wait for ``release`` once begun."""

    def __init__(self, tables: Tables) -> None:
        super().__init__(tables)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryRecordingTransaction]:
        self.entered.set()
        await self.release.wait()
        async with super().transaction() as transaction:
            yield transaction


class FakeTransport:
    """What aiohttp reads a request's peer address from."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self._peer, 40000) if name == "peername" else default
