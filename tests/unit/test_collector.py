"""How the long-running commands tune the cyclic garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine.cli.shared import (
    OBJECTS_PER_HELD_MESSAGE,
    YOUNG_THRESHOLD,
    tune_gc,
    young_threshold,
)


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, restored afterwards."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_young_threshold_stays_above_what_the_held_messages_keep_alive() -> None:
    assert young_threshold(0) == YOUNG_THRESHOLD
    assert young_threshold(100) == YOUNG_THRESHOLD
    many = 4 * YOUNG_THRESHOLD // OBJECTS_PER_HELD_MESSAGE
    assert young_threshold(many) == OBJECTS_PER_HELD_MESSAGE * many > YOUNG_THRESHOLD
    # The default prefetch (three batches of 3,000) lifts the threshold above the floor.
    assert young_threshold(9000) == 225_000


@pytest.mark.usefixtures("collector")
def test_tuning_freezes_what_lives_now_and_collects_the_middle_generation_often() -> None:
    gc.unfreeze()
    tune_gc(held_messages=20_000)
    assert gc.get_threshold() == (OBJECTS_PER_HELD_MESSAGE * 20_000, 2, 100)
    # What was alive at the tuning (the loaded configuration, the modules) is out of
    # every later collection's walk.
    assert gc.get_freeze_count() > 1000
    assert all(count == 0 for count in gc.get_count()[1:])
