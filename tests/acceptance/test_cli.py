"""The ``sla-engine`` command, run as a subprocess the way administrators run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import EXAMPLE_CONFIG, REPO

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
        (config_dir / "departments" / "okf.yaml").read_text("utf-8")
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
