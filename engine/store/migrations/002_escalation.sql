-- Escalation: each clock's steps with their due instants, the steps fired, the outbox.

-- The clock's escalation steps (fractions of its target), their tiers, and the instant
-- each falls due under the latest measurement (null: paused or stopped short of it).
ALTER TABLE clocks
    ADD COLUMN steps       double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN tiers       text[]             NOT NULL DEFAULT '{}',
    ADD COLUMN step_due_at timestamptz[]      NOT NULL DEFAULT '{}';

-- Each (clock, step) at most once: the primary key is what makes a step fire once, whatever
-- the number of engines or restarts. A step fired and then undone by an event that
-- occurred before it fell due but arrived after it fired is kept, marked superseded.
CREATE TABLE escalation_steps (
    ticket_id      text             NOT NULL,
    clock_key      text             NOT NULL,
    step           double precision NOT NULL,
    tier           text             NOT NULL,
    metric         text             NOT NULL,
    agreement_kind text             NOT NULL,
    department     text             NOT NULL,
    service        text             NOT NULL,
    priority       text             NOT NULL,
    target_s       double precision NOT NULL,
    due_at         timestamptz      NOT NULL,
    fired_at       timestamptz      NOT NULL,
    status         text             NOT NULL DEFAULT 'fired'
                                    CHECK (status IN ('fired', 'superseded')),
    superseded_at  timestamptz,
    PRIMARY KEY (ticket_id, clock_key, step)
);
CREATE INDEX escalation_steps_fired ON escalation_steps (fired_at);

-- The transactional outbox: written in the transaction that fires the step, delivered
-- after it. notice_id is stable (derived from ticket, clock, step, channel, recipient),
-- so a notice sent again after a crash carries the id it had.
CREATE TABLE outbox (
    notice_id       uuid        PRIMARY KEY,
    ticket_id       text        NOT NULL,
    clock_key       text        NOT NULL,
    step            double precision NOT NULL,
    channel         text        NOT NULL,
    recipient       text        NOT NULL,
    recipient_name  text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'failed')),
    -- When a sender may take it next: set ahead while one is delivering it (a lease that
    -- a crashed sender gives back by expiring), and to the retry time after a failure.
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';
