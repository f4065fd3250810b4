"""Which database errors make intake wait, and which point at an event."""

from __future__ import annotations

import asyncpg
import pytest

from engine.store.errors import is_transient


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DiskFullError("disk full"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("read only"),
        asyncpg.exceptions.QueryCanceledError("statement timeout"),
        asyncpg.exceptions.LockNotAvailableError("lock timeout"),
        asyncpg.exceptions.AdminShutdownError("terminating"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
    ],
)
def test_the_database_as_a_whole_is_worth_waiting_for(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate"),
        asyncpg.exceptions.DataError("bad value"),
        ValueError("a bug"),
    ],
)
def test_errors_about_the_data_are_not(error: Exception) -> None:
    assert not is_transient(error)
