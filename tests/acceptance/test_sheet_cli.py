"""``sla-engine sheet`` run as a subprocess: the files it writes, and its refusals."""

from __future__ import annotations

from pathlib import Path

from engine.config import load_config
from engine.sheet import render_department
from tests.acceptance.test_cli import run
from tests.helpers import EXAMPLE_CONFIG


def test_writes_a_page_per_department_and_an_index(tmp_path: Path) -> None:
    out = tmp_path / "sheets"  # made by the command
    result = run("sheet", "--config", str(EXAMPLE_CONFIG), "--out", str(out), "--year", "2026")
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in out.iterdir())
    expected = sorted([*(f"{d}.html" for d in load_config(EXAMPLE_CONFIG).departments)])
    assert written == sorted([*expected, "index.html"])
    assert result.stdout.split() == [str(out / name) for name in [*expected, "index.html"]]
    page = (out / "okf.html").read_text("utf-8")
    # The same page the engine serves: one renderer for both.
    config = load_config(EXAMPLE_CONFIG)
    assert page == render_department(config, "okf", fmt="html", language="da", year=2026)
    assert '<html lang="da">' in page


def test_one_department_in_markdown_and_english(tmp_path: Path) -> None:
    result = run(
        "sheet", "--department", "sof", "--format", "md", "--lang", "en", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["sof.md"]
    text = (tmp_path / "sof.md").read_text("utf-8")
    assert text.startswith("# Service level agreement (SLA) for Sundheds- og Omsorgsforvaltningen")
    assert "Response within 15 minutes round the clock, resolution within 2 hours" in text


def test_an_unknown_department_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    result = run("sheet", "--department", "nope", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "sla-engine: no department 'nope' in the configuration (known: bif, buf" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_a_refused_configuration_is_reported_like_check_config(
    config_dir: Path, tmp_path: Path
) -> None:
    catalog = config_dir / "catalog.yaml"
    catalog.write_text(catalog.read_text("utf-8").replace("function: sales", "function: sale"))
    out = tmp_path / "out"
    result = run("sheet", "--config", str(config_dir), "--out", str(out))
    assert result.returncode == 1
    assert f"{catalog}:" in result.stderr
    assert "problem" in result.stderr
    assert not out.exists()
    missing = run("sheet", "--config", str(tmp_path / "nowhere"), "--out", str(out))
    assert missing.returncode == 1
    assert "no such configuration directory" in missing.stderr


def test_an_unwritable_output_is_an_error(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    result = run("sheet", "--out", str(blocked))
    assert result.returncode == 1
    assert f"sla-engine: cannot write to {blocked}:" in result.stderr


def test_format_and_language_are_checked_by_the_parser(tmp_path: Path) -> None:
    result = run("sheet", "--lang", "de", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "invalid choice: 'de'" in result.stderr
