"""The monthly reports through the real path: claimed in PostgreSQL with their notices,
delivered by the outbox sender over SMTP to a real server, HTML and CSV intact; a sender
that dies mid-delivery leaves them to the next, which sends them with the same id."""

from __future__ import annotations

import csv
import email
import email.policy
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage

import asyncpg
import pytest

from engine.monthly.job import MonthlyReports, recipients
from engine.monthly.render import report_notice_id
from engine.notify.email import SmtpChannel
from engine.notify.sender import OutboxSender, SenderOptions
from engine.store.errors import is_transient
from engine.store.migrate import migrate
from engine.store.postgres.monthly import PostgresMonthlyReportStore
from engine.store.postgres.outbox import PostgresOutboxStore
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from tests.integration import test_channels
from tests.integration.test_channels import Mailbox
from tests.monthly_history import CONFIG, DATA_OWNER, OPUS_OWNER, STRATEGIC, record_history
from tests.services import poll
from tests.streams import CPH
from tests.unit.test_sender import sending

pytestmark = pytest.mark.integration
smtp_server = test_channels.smtp_server  # the real SMTP server of the channels' own tests
OPENING = datetime(2026, 12, 1, 8, tzinfo=CPH)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as connection:
        await migrate(connection)
    await record_history(PostgresRecordingStore(pool))
    yield pool
    await pool.close()


def mails_to(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    found = []
    for envelope in mailbox.envelopes:
        if address in envelope.rcpt_tos:
            assert isinstance(envelope.original_content, bytes)
            message = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            assert isinstance(message, EmailMessage)
            found.append(message)
    return found


async def test_the_reports_arrive_by_mail_with_html_and_csv_once_each(
    pool: asyncpg.Pool, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    reports = MonthlyReports(lambda: CONFIG, PostgresReads(pool), PostgresMonthlyReportStore(pool),
                             transient=is_transient)  # fmt: skip
    outbox = PostgresOutboxStore(pool)
    queued = await reports.run_due(OPENING)
    assert len(queued) == len(CONFIG.departments)

    # A sender claims everything and dies before delivering: nothing sent, all leased.
    leased = await outbox.claim(OPENING, OPENING + timedelta(minutes=1), 100)
    expected = len(leased)
    # An IT lead's report and one for each system owner's address, in every department.
    assert expected == sum(len(recipients(d)[0]) for d in CONFIG.departments.values())
    now = OPENING + timedelta(minutes=2)  # the lease has run out
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="SLA-motor <sla@example.dk>")
    sender = OutboxSender(outbox, {"email": channel}, SenderOptions(idle_s=5),
                          transient=is_transient, now=lambda: now)  # fmt: skip
    try:
        async with sending(sender):

            async def delivered() -> bool:
                return len(mailbox.envelopes) >= expected

            await poll(delivered, timeout_s=30, what="every report by mail")
    finally:
        await channel.close()
    assert sender.sent == expected
    assert len(mailbox.envelopes) == expected

    (strategic,) = mails_to(mailbox, STRATEGIC)
    assert strategic["Subject"] == "Månedsrapport: Økonomiforvaltningen, november 2026"
    ident = report_notice_id("okf", "2026-11", "email", STRATEGIC)
    assert strategic["Message-ID"] == f"<{ident}@sla-engine>"  # the id it was leased with
    html = strategic.get_body(("html",))
    assert html is not None
    assert "<h1>Månedsrapport for Økonomiforvaltningen, november 2026</h1>" in html.get_content()
    (attachment,) = list(strategic.iter_attachments())
    assert attachment.get_filename() == "sla-okf-2026-11.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert {r["ticket_id"] for r in rows if r["section"] == "breach"} == {"OKF-B"}
    (data_owner,) = mails_to(mailbox, DATA_OWNER)
    assert data_owner["Subject"] == "Monthly report: Økonomiforvaltningen, November 2026"
    assert len(mails_to(mailbox, OPUS_OWNER)) == 1

    # The next hour, and an engine that starts again: nothing more goes out.
    assert await reports.run_due(OPENING + timedelta(hours=1)) == []
    assert await outbox.claim(now + timedelta(days=1), now + timedelta(days=2), 100) == []
