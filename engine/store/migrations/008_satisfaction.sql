-- Requesters' satisfaction (ticket.rated). The events themselves, with their comments,
-- are in events like every other; this table holds, per ticket, the one rating that
-- counts: the latest by occurred_at, then event_id. The recorder decides which that is
-- and writes it under the ticket's row lock, so several engines agree. A rating that
-- arrived before its ticket.created is kept here too, and counts once the ticket is
-- created (reports choose tickets by tickets.created_at). No comment here: the
-- personal-data purge blanks it in one place, the stored event.
CREATE TABLE ratings (
    ticket_id text        PRIMARY KEY,
    event_id  uuid        NOT NULL,
    score     smallint    NOT NULL CHECK (score BETWEEN 1 AND 5),
    rated_at  timestamptz NOT NULL
);
