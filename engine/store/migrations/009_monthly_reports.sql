-- The monthly follow-up: each department's report for a month, claimed once, and its
-- e-mails in the outbox beside the escalation notices.

-- One row per department and month reported: inserted in the transaction that puts the
-- report's notices in the outbox, so a month is sent once whatever the number of
-- engines or restarts (a second engine's insert finds the row and writes nothing).
CREATE TABLE monthly_reports (
    department text        NOT NULL,
    month      date        NOT NULL,  -- the first day of the month reported
    due_at     timestamptz NOT NULL,  -- the opening of the next month's first working day
    claimed_at timestamptz NOT NULL,
    notice_ids uuid[]      NOT NULL,  -- the outbox rows of its recipients
    PRIMARY KEY (department, month)
);

-- A report's notice belongs to no ticket, clock or step.
ALTER TABLE outbox
    ALTER COLUMN ticket_id DROP NOT NULL,
    ALTER COLUMN clock_key DROP NOT NULL,
    ALTER COLUMN step DROP NOT NULL,
    -- An e-mail's HTML alternative, beside the plain text of body (null: text only).
    ADD COLUMN html text,
    -- Files the e-mail carries: [{"filename", "content_type", "content"}], text content.
    ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
