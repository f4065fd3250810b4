-- The worklist of one priority (GET /tickets?priority=P1) walked the running clocks by
-- deadline and checked each one's ticket: P1 is a few per cent of the tickets, so a page
-- fetched about 50 times its rows and missed the worklist's 50 ms (benchmarks/worklist.py).
-- With the clock's priority in the index, the walk passes over the other priorities in
-- the index itself. A running clock carries its ticket's current priority (the recorder
-- measures every open clock at each event of its ticket, under the priority in force:
-- tests/integration/test_open_clock_priority.py), so the clock's column can stand for
-- the ticket's. The index replaces migration 010's rather than adding one: every index
-- on clocks costs intake a write per new clock.
CREATE INDEX clocks_by_deadline_and_priority
    ON clocks (deadline, ticket_id COLLATE "C", priority) WHERE deadline IS NOT NULL;
DROP INDEX clocks_by_deadline;
ALTER INDEX clocks_by_deadline_and_priority RENAME TO clocks_by_deadline;
