"""Paths and types the tests share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config"

EditYaml = Callable[[str, Callable[[Any], None]], Path]
"""Change one file of a copied configuration: ``edit("catalog.yaml", change)``."""
