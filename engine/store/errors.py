"""Which database errors are the database's and worth waiting for, and which are the work's.

Every user of the database classifies its failures with ``is_transient``: the daemon
waits at start to migrate, intake keeps its messages and retries, the scheduler and the
outbox sender retry their cycle, the CLI reports the database as unreachable.
"""

from __future__ import annotations

import asyncpg

# Errors after which the same batch may well succeed: the database went away, a
# connection was cut, or two transactions deadlocked.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A pooled connection left mid-operation when the server went away (seen when
    # PostgreSQL stops during a COPY): the connection's fault, not the events'.
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
# SQLSTATEs of the database as a whole, not of an event: connection (08), insufficient
# resources such as too many connections or a full disk (53), operator intervention and
# cancelled statements (57), rollbacks (40), lock timeouts, and a read-only server after
# a failover. Waiting is the answer to all of them; dead-lettering would lose events.
_TRANSIENT_CLASSES = ("08", "53", "57", "40")
_TRANSIENT_STATES = frozenset({"55P03", "25006"})


def is_transient(error: BaseException) -> bool:
    """Whether the database may well accept the same batch later."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    state = getattr(error, "sqlstate", None)
    if isinstance(error, asyncpg.PostgresError) and isinstance(state, str):
        return state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES
    return False
