-- Events, tickets and their clocks.

-- Every validated event, once: event_id is the idempotency key of intake.
CREATE TABLE events (
    event_id    uuid        PRIMARY KEY,
    ticket_id   text        NOT NULL,
    type        text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload     jsonb       NOT NULL
);
CREATE INDEX events_by_ticket ON events (ticket_id, occurred_at);

-- A ticket's current state. The row exists from its first event, even one that arrived
-- before ticket.created (created_at is null until then), and is the lock that serialises
-- the work on one ticket across engine processes.
CREATE TABLE tickets (
    ticket_id         text        PRIMARY KEY,
    created_at        timestamptz,
    department        text,
    service           text,
    priority          text,
    status            text,
    assigned_function text,
    agreement_kind    text,
    -- agreement snapshots by key ("sla:<department>:<service>", "ola:<function>"): the
    -- terms each clock was attached with, kept across configuration changes
    agreements        jsonb       NOT NULL DEFAULT '{}',
    -- the keys of the clocks last written, so a clock that no longer applies is removed
    clock_keys        text[]      NOT NULL DEFAULT '{}',
    event_count       integer     NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Each clock of a ticket as last measured, with its next due instant for the scheduler.
CREATE TABLE clocks (
    -- No foreign key to tickets: the recorder writes both under the ticket's row lock,
    -- and a per-row check would double the cost of writing clocks.
    ticket_id      text             NOT NULL,
    clock_key      text             NOT NULL,
    metric         text             NOT NULL,
    agreement_kind text             NOT NULL,
    agreement_key  text             NOT NULL,
    department     text             NOT NULL,
    service        text             NOT NULL,
    function       text             NOT NULL,
    priority       text             NOT NULL,
    calendar       text             NOT NULL,
    target_s       double precision NOT NULL,
    state          text             NOT NULL,
    running        boolean          NOT NULL,
    elapsed_s      double precision NOT NULL,
    fraction       double precision NOT NULL,
    started_at     timestamptz      NOT NULL,
    stopped_at     timestamptz,
    deadline       timestamptz,
    -- The earliest escalation step not yet fired that has a due instant; null when none
    -- is due. The steps themselves are measured again from the events when they fire.
    next_due_at    timestamptz,
    measured_at    timestamptz      NOT NULL,
    PRIMARY KEY (ticket_id, clock_key)
);
CREATE INDEX clocks_due ON clocks (next_due_at) WHERE next_due_at IS NOT NULL;
