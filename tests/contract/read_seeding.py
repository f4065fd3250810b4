"""Rows put straight into a store's tables, for the contract tests of its ports to read."""

from __future__ import annotations

import json
from typing import Protocol, TypeAlias

import asyncpg

from engine.store.memory.tables import ClockRow, EventRow, NoticeRow, StepRow, Tables, TicketRow

Row: TypeAlias = TicketRow | EventRow | ClockRow | StepRow | NoticeRow

INSERT_TICKET = """
INSERT INTO tickets (ticket_id, created_at, department, service, priority, status,
                     assigned_function, agreement_kind, agreements, clock_keys, event_count,
                     updated_at, closed_at, personal_data_purged_at, assigned_team)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15)
"""
INSERT_EVENT = """
INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)
VALUES ($1, $2, $3, $4, $5::jsonb)
"""
INSERT_CLOCK = """
INSERT INTO clocks (ticket_id, clock_key, metric, agreement_kind, agreement_key, department,
                    service, function, priority, calendar, target_s, state, running,
                    elapsed_s, fraction, started_at, stopped_at, deadline, next_due_at,
                    measured_at, steps, tiers, step_due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23)
"""
INSERT_STEP = """
INSERT INTO escalation_steps (ticket_id, clock_key, step, tier, metric, agreement_kind,
                              department, service, priority, target_s, due_at, fired_at,
                              status, superseded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""
INSERT_NOTICE = """
INSERT INTO outbox (notice_id, ticket_id, clock_key, step, channel, recipient,
                    recipient_name, subject, body, payload, created_at, status,
                    next_attempt_at, attempts, sent_at, failed_at, last_error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16, $17)
"""


class Seeder(Protocol):
    """Puts rows into a store as they are, bypassing its ports."""

    async def add(self, *rows: Row) -> None: ...


class MemorySeeder:
    """Rows into ``Tables``, keyed as their primary keys are."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, *rows: Row) -> None:
        for row in rows:
            if isinstance(row, TicketRow):
                self._tables.tickets[row.ticket_id] = row
            elif isinstance(row, EventRow):
                self._tables.events[row.event_id] = row
            elif isinstance(row, ClockRow):
                self._tables.clocks[row.ticket_id, row.clock_key] = row
            elif isinstance(row, StepRow):
                self._tables.steps[row.ticket_id, row.clock_key, row.step] = row
            else:
                self._tables.outbox[row.notice_id] = row


class PostgresSeeder:
    """Rows into the migrated schema of ``connection``, one INSERT each."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def add(self, *rows: Row) -> None:
        for row in rows:
            await self._insert(row)

    async def _insert(self, row: Row) -> None:
        execute = self._connection.execute
        if isinstance(row, TicketRow):
            await execute(
                INSERT_TICKET, row.ticket_id, row.created_at, row.department, row.service,
                row.priority, row.status, row.assigned_function, row.agreement_kind,
                json.dumps(row.agreements), row.clock_keys, row.event_count, row.updated_at,
                row.closed_at, row.personal_data_purged_at, row.assigned_team,
            )  # fmt: skip
        elif isinstance(row, EventRow):
            await execute(
                INSERT_EVENT, row.event_id, row.ticket_id, row.type, row.occurred_at, row.payload
            )
        elif isinstance(row, ClockRow):
            await execute(
                INSERT_CLOCK, row.ticket_id, row.clock_key, row.metric, row.agreement_kind,
                row.agreement_key, row.department, row.service, row.function, row.priority,
                row.calendar, row.target_s, row.state, row.running, row.elapsed_s,
                row.fraction, row.started_at, row.stopped_at, row.deadline, row.next_due_at,
                row.measured_at, row.steps, row.tiers, row.step_due_at,
            )  # fmt: skip
        elif isinstance(row, StepRow):
            await execute(
                INSERT_STEP, row.ticket_id, row.clock_key, row.step, row.tier, row.metric,
                row.agreement_kind, row.department, row.service, row.priority, row.target_s,
                row.due_at, row.fired_at, row.status, row.superseded_at,
            )  # fmt: skip
        else:
            await execute(
                INSERT_NOTICE, row.notice_id, row.ticket_id, row.clock_key, row.step,
                row.channel, row.recipient, row.recipient_name, row.subject, row.body,
                json.dumps(row.payload), row.created_at, row.status, row.next_attempt_at,
                row.attempts, row.sent_at, row.failed_at, row.last_error,
            )  # fmt: skip
