"""The fault scenarios at a short size: every one of them on every `make test`.

``make test-faults`` plays them at full size and prints the table (docs/RELIABILITY.md).
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import SCENARIOS, run_scenario

pytestmark = pytest.mark.faults


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_nothing_lost_nothing_doubled(name: str) -> None:
    row = await run_scenario(name, 1_200, batch_size=50)
    assert row.faults >= 1 or name == "backlog", row  # the backlog is load, not a fault
    assert (row.lost, row.doubled, row.wrong, row.dead_letter_mismatch) == (0, 0, 0, 0), row
    assert row.over_budget == 0, row  # the backlog: one message per recipient and window
    assert row.notes["steps"] > 0, row  # steps fired: the check of doubles has something to see
