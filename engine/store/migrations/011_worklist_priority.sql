-- The worklist of one priority (GET /tickets?priority=P1) reads the running clocks of
-- that priority by deadline, instead of walking every running clock and dropping those
-- of other tickets: P1 is a few per cent of the tickets, so a page read 50 times its
-- rows and missed the worklist's 50 ms (benchmarks/worklist.py). A running clock carries
-- its ticket's current priority (the recorder measures every open clock at each event
-- of its ticket, under the priority in force; tests/integration/test_open_clock_priority.py),
-- so the clock's own column can drive the read.
CREATE INDEX clocks_by_priority_deadline ON clocks (priority, deadline, ticket_id COLLATE "C")
    WHERE deadline IS NOT NULL;
