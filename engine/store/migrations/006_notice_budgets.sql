-- How much people hear: a budget per recipient and channel, and the digests that gather
-- the notices over it (and those of a catch-up).

-- A notice whose step was superseded before it left is not sent: the sender marks it.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'superseded'));

-- Where each recipient stands on each channel (engine.notify.budget.Window): the window
-- open (null: quiet), the messages counted in it, and whether a digest is held for its
-- end. Locked by the firing transactions that offer it notices, so two engines never
-- both spend it; inserted empty first, as a row not there yet cannot be locked.
CREATE TABLE notice_budgets (
    channel      text        NOT NULL,
    recipient    text        NOT NULL,
    window_start timestamptz,
    sent         integer     NOT NULL DEFAULT 0,
    holding      boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (channel, recipient)
);

-- One row per recipient, channel and window, whatever the number of notices it holds:
-- each held notice is an item appended to it (the text is written when it is sent).
-- digest_id is stable (derived from channel, recipient and window), so a digest sent
-- again after a crash carries the id it had. Items are appended only while no sender
-- has claimed it (attempts = 0); a notice too late for that goes into a next part.
-- It lists at most the configured number of items (notices.digest_max_items) and counts
-- the rest in held: a catch-up of thousands of steps then rewrites a row of bounded
-- size on each append, not one that grows with every batch.
CREATE TABLE digests (
    digest_id       uuid        PRIMARY KEY,
    channel         text        NOT NULL,
    recipient       text        NOT NULL,
    recipient_name  text        NOT NULL,
    language        text        NOT NULL CHECK (language IN ('da', 'en')),
    window_start    timestamptz NOT NULL,
    send_at         timestamptz NOT NULL,
    items           jsonb       NOT NULL,  -- the items listed, in the order held
    held            integer     NOT NULL,  -- every item held, listed or not
    created_at      timestamptz NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'failed', 'superseded')),
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX digests_pending ON digests (next_attempt_at) WHERE status = 'pending';
