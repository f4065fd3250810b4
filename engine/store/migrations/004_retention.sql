-- Personal data of requesters (name, e-mail, phone, the subject and the texts they
-- wrote) is purged from a ticket's events a set number of days after it was closed.
-- closed_at is the instant of the closing event; personal_data_purged_at the last purge,
-- which a later event of the ticket (a late comment) makes stale again.
ALTER TABLE tickets
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN personal_data_purged_at timestamptz;

-- Tickets closed before this migration: the first closing event, as the clocks read it.
UPDATE tickets SET closed_at = closing.at
FROM (
    SELECT ticket_id, min(occurred_at) AS at FROM events
    WHERE type = 'ticket.status_changed' AND payload->>'status' = 'closed'
    GROUP BY ticket_id
) AS closing
WHERE tickets.ticket_id = closing.ticket_id AND tickets.status = 'closed';

CREATE INDEX tickets_closed ON tickets (closed_at) WHERE closed_at IS NOT NULL;
