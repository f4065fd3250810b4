-- Who hears of an SLA clock's step depends on where the ticket is when the step fires:
-- the lead of the function it is assigned to, or the contact of the customer team it is
-- assigned to. The function is kept already; the team of the latest assignment is new.
ALTER TABLE tickets ADD COLUMN assigned_team text;

-- Tickets assigned before this migration: the team of their latest assignment, in the
-- order the clocks read events (occurred_at, then event_id).
UPDATE tickets SET assigned_team = latest.team
FROM (
    SELECT DISTINCT ON (ticket_id) ticket_id, payload->>'team' AS team FROM events
    WHERE type = 'ticket.assigned'
    ORDER BY ticket_id, occurred_at DESC, event_id DESC
) AS latest
WHERE tickets.ticket_id = latest.ticket_id AND latest.team IS NOT NULL;
