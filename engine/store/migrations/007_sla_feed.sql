-- The SLA feed (helpdesk.sla): a ticket's clocks as they stand after each commit that
-- changed them, published by the feed publisher. feed_version counts those commits per
-- ticket; sla_feed holds, per ticket, the latest version not yet published, written in
-- the same transaction as the change, so a crash between the commit and the publish
-- loses nothing: the row is still there. One row per ticket (a newer version replaces
-- an older one not yet published: each message holds the whole state).
ALTER TABLE tickets ADD COLUMN feed_version bigint NOT NULL DEFAULT 0;

CREATE TABLE sla_feed (
    ticket_id     text        PRIMARY KEY,
    version       bigint      NOT NULL,
    changed_at    timestamptz NOT NULL,
    -- A publisher's claim: others leave the row alone until it lapses (the claimer
    -- died), so two engines publish each version once.
    claimed_until timestamptz
);
CREATE INDEX sla_feed_order ON sla_feed (changed_at);
