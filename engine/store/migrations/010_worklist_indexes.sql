-- The worklist (GET /tickets) reads the open clocks in the order it lists tickets, instead
-- of grouping them all: with a million open clocks a page costs a few hundred index
-- entries, not a scan (benchmarks/worklist.py). Ticket ids sort byte-wise (COLLATE "C"),
-- as the worklist's keyset does, whatever the database's collation.

-- Running clocks by deadline: the worklist's order. A clock has a deadline only while it
-- runs, so stopped and paused clocks cost this index nothing.
CREATE INDEX clocks_by_deadline ON clocks (deadline, ticket_id COLLATE "C")
    WHERE deadline IS NOT NULL;

-- Open clocks without a deadline (paused), by ticket: the tickets listed after every
-- running one, in id order.
CREATE INDEX clocks_waiting ON clocks (ticket_id COLLATE "C")
    WHERE deadline IS NULL AND stopped_at IS NULL;

-- Paused clocks already breached: the few tickets the worklist's breached filters add to
-- the overdue ones.
CREATE INDEX clocks_breached_waiting ON clocks (ticket_id)
    WHERE deadline IS NULL AND stopped_at IS NULL AND state = 'breached';
