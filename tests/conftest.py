"""Shared fixtures: a private copy of the example configuration to break in tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import EXAMPLE_CONFIG, EditYaml


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the example configuration in ``config/``."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, target)
    return target


@pytest.fixture
def edit_yaml(config_dir: Path) -> EditYaml:
    """Change one file of the copied configuration through its parsed data."""

    def edit(relative: str, change: Callable[[Any], None]) -> Path:
        path = config_dir / relative
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
        return path

    return edit
