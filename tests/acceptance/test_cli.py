"""The ``sla-engine`` command, run as a subprocess the way administrators run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.helpers import EXAMPLE_CONFIG, REPO, EditYaml
from tests.streams import CPH, event

SLA_ENGINE = shutil.which("sla-engine", path=str(Path(sys.executable).parent)) or "sla-engine"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLA_ENGINE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_check_config_passes_on_the_example() -> None:
    result = run("check-config", str(EXAMPLE_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert "7 departments" in result.stdout
    assert result.stderr == ""


def test_check_config_defaults_to_the_config_directory_or_its_env_var(tmp_path: Path) -> None:
    assert run("check-config").returncode == 0
    result = run("check-config", env={"SLA_ENGINE_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "no .yaml files" in result.stderr


def test_check_config_lists_every_problem_and_fails(config_dir: Path) -> None:
    catalog = config_dir / "catalog.yaml"
    catalog.write_text(catalog.read_text("utf-8").replace("function: sales", "function: sale"))
    (config_dir / "departments" / "okf.yaml").write_text(
        (config_dir / "departments" / "okf.yaml")
        .read_text("utf-8")
        .replace("calendar: office", "calendar: offfice")
    )
    result = run("check-config", str(config_dir))
    assert result.returncode == 1
    assert result.stdout == ""
    # File problems stop before the cross-checks, so only the catalog shows first.
    assert "problems in the configuration" in result.stderr
    assert f"{catalog}:" in result.stderr
    assert "services[" in result.stderr
    assert "(got 'sale')" in result.stderr
    catalog.write_text(catalog.read_text("utf-8").replace("function: sale\n", "function: sales\n"))
    result = run("check-config", str(config_dir))
    assert result.returncode == 1
    assert "unknown calendar 'offfice'" in result.stderr


def test_check_config_refuses_a_target_no_clock_measures(config_dir: Path) -> None:
    olas = config_dir / "olas.yaml"
    written = "P1: {response: 10m, resolution: 3h}"  # the helpdesk's OLA, olas[2]
    text = olas.read_text("utf-8")
    line = text[: text.index(written)].count("\n") + 1
    olas.write_text(text.replace(written, "P1: {response: 10m, resolution: 3h, update: 1h}"))
    result = run("check-config", str(config_dir))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "1 problem in the configuration:",
        f"  {olas}:{line}: olas[2].targets.P1.update: OLA clocks measure resolution and "
        "response, not 'update': no clock would ever meet or breach this target; remove it",
    ]


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_run_refuses_bad_settings_or_configuration_with_the_config_exit_status(
    config_dir: Path,
) -> None:
    # 78 (EX_CONFIG): the systemd unit does not restart a service that exits with it.
    bad_setting = run("run", env={"SLA_ENGINE_PREFETCH": "0"})
    assert bad_setting.returncode == 78
    assert "invalid settings" in bad_setting.stderr
    assert "prefetch" in bad_setting.stderr
    (config_dir / "catalog.yaml").write_text("services: [\n", encoding="utf-8")
    bad_config = run("run", env={"SLA_ENGINE_CONFIG_DIR": str(config_dir)})
    assert bad_config.returncode == 78
    assert "catalog.yaml" in bad_config.stderr


def _okf_p1(path: Path) -> Path:
    """Two ØKF Opus Løn P1 tickets, one answered after 20 minutes, one never."""
    monday = datetime(2030, 11, 25, 9, tzinfo=CPH)
    created = {"department": "okf", "service": "opus-loen", "priority": "P1",
               "subject": "Løn", "requester": {}}  # fmt: skip
    events = [
        event("ticket.created", "S-1", 0, monday, **created),
        event("ticket.responded", "S-1", 1, monday + timedelta(minutes=20)),
        event("ticket.created", "S-2", 0, monday, **created),
        event("ticket.commented", "S-2", 1, monday + timedelta(hours=1),
              visibility="internal", body="venter"),
    ]  # fmt: skip
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def test_simulate_prints_the_timeline_and_compliance(tmp_path: Path) -> None:
    result = run("simulate", "--config", str(EXAMPLE_CONFIG), str(_okf_p1(tmp_path / "e.jsonl")),
                 "--format", "jsonl")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    breaches = [r["ticket_id"] for r in records if r["section"] == "timeline" and r["step"] == 1.0]
    assert breaches == ["S-1", "S-2"]  # both responses past 15 minutes
    totals = next(r for r in records if r["section"] == "totals")
    assert (totals["events"], totals["tickets"], totals["breaches"]) == (4, 2, 2)


def test_simulate_compares_two_configurations(tmp_path: Path, config_dir: Path,
                                             edit_yaml: EditYaml) -> None:  # fmt: skip
    def lenient(data: Any) -> None:
        data["departments"][0]["services"]["opus-loen"]["targets"]["P1"]["response"] = "30m"

    edit_yaml("departments/okf.yaml", lenient)
    result = run("simulate", "--config", str(EXAMPLE_CONFIG), "--compare", str(config_dir),
                 str(_okf_p1(tmp_path / "e.jsonl")), "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    response = next(r for r in document["compare"]
                    if r["metric"] == "response" and r["service"] == "opus-loen")  # fmt: skip
    # Under 30 minutes the answer after 20 meets the target; the unanswered one breaches.
    assert (response["breached_a"], response["breached_b"]) == (2, 1)
    assert (response["compliance_a_pct"], response["compliance_b_pct"]) == (0.0, 50.0)
    assert response["change_pp"] == 50.0
    assert (document["totals"]["breaches_a"], document["totals"]["breaches_b"]) == (2, 1)


def test_simulate_compares_the_version_in_force_with_a_later_one(tmp_path: Path) -> None:
    # KFF's customer advice, P3, in December 2026: 8h to respond under the agreement
    # then in force, 4h under the example's version from 1 January 2027. Both answered
    # after 6 business hours.
    lines = []
    for n, day in enumerate((7, 8)):
        created = datetime(2026, 12, day, 8, tzinfo=CPH)
        lines += [
            event("ticket.created", f"K-{n}", 0, created, department="kff",
                  service="kunderaadgivning", priority="P3", subject="Råd", requester={}),
            event("ticket.responded", f"K-{n}", 1, created + timedelta(hours=6)),
        ]  # fmt: skip
    events = tmp_path / "december.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = run("simulate", "--config", str(EXAMPLE_CONFIG), "--compare-at", "2027-01-01",
                 str(events), "--format", "json", "--until", "2026-12-20")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    response = next(r for r in document["compare"] if r["metric"] == "response")
    assert (response["breached_a"], response["breached_b"]) == (0, 2)
    assert (response["compliance_a_pct"], response["compliance_b_pct"]) == (100.0, 0.0)
    assert document["totals"]["config_b"] == f"{EXAMPLE_CONFIG} at 2027-01-01T00:00:00+01:00"


def test_simulate_refuses_a_file_with_lines_that_are_not_events(tmp_path: Path) -> None:
    events = _okf_p1(tmp_path / "e.jsonl")
    events.write_text(events.read_text() + '{"type": "ticket.created"}\nnot json\n')
    result = run("simulate", str(events))
    assert result.returncode == 1
    assert f"{events}:5:" in result.stderr
    assert f"{events}:6:" in result.stderr
    assert result.stdout == ""
