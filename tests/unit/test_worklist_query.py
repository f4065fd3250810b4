"""The worklist's query string: what it asks for, and the 400s it earns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ops.worklist import (
    MAX_PAGE,
    BadRequest,
    decode_cursor,
    encode_cursor,
    worklist_query,
)
from engine.store.reads import WorklistKey, WorklistQuery

NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)


def query(**params: str) -> WorklistQuery:
    return worklist_query(params, list(params), NOW)


def test_no_parameters_ask_for_the_open_clocks_a_page_and_one_more() -> None:
    assert query() == WorklistQuery(now=NOW, limit=51)


def test_every_parameter_is_read() -> None:
    asked = query(
        department="okf", service="opus-loen", priority="P1", function="pc-software",
        team="okf-team", metric="update", state="breached", scope="all", breached="false",
        breaching_within="1h30m", limit="10",
    )  # fmt: skip
    assert asked == WorklistQuery(
        now=NOW, limit=11, department="okf", service="opus-loen", priority="P1",
        function="pc-software", team="okf-team", metric="update", state="breached", scope="all",
        breached=False, breaching_within=timedelta(minutes=90),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"limit": "0"}, "limit: Input should be greater than or equal to 1"),
        ({"limit": str(MAX_PAGE + 1)}, f"limit: Input should be less than or equal to {MAX_PAGE}"),
        ({"limit": "ten"}, "limit: Input should be a valid integer"),
        ({"state": "late"}, "state: Input should be 'running', 'paused', 'breached' or 'met'"),
        ({"priority": "P9"}, "priority: Input should be"),
        ({"breaching_within": "1d"}, "breaching_within: Value error, '1d' is not a duration"),
        ({"breached": "maybe"}, "breached: Input should be a valid boolean"),
        ({"departement": "okf"}, "departement: unknown parameter"),
        ({"department": "okf\x00"}, "department: String should match pattern"),
        ({"cursor": "not-a-cursor"}, "cursor is not one this engine gave"),
    ],
)
def test_what_the_worklist_cannot_take_is_refused_with_its_reason(
    params: dict[str, str], reason: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        query(**params)
    assert str(refused.value).startswith(reason)


def test_a_repeated_parameter_is_refused() -> None:
    with pytest.raises(BadRequest, match="give each parameter once: department repeated"):
        worklist_query({"department": "okf"}, ["department", "department"], NOW)


@given(
    deadline=st.none() | st.datetimes(timezones=st.just(UTC)),
    ticket_id=st.text(min_size=1, max_size=64),
)
def test_a_cursor_points_after_the_row_it_was_made_from(
    deadline: datetime | None, ticket_id: str
) -> None:
    key = WorklistKey(deadline, ticket_id)
    assert decode_cursor(encode_cursor(key)) == key
    assert query(cursor=encode_cursor(key)).after == key


@pytest.mark.parametrize("cursor", ["", "W10=", "bnVsbA", "WzEsMl0", "WyIyMDI2LTEyLTAzIiwiVCJd"])
def test_cursors_this_engine_never_made_are_refused(cursor: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(cursor)
