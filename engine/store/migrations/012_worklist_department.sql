-- The worklist of one department or service (GET /tickets?department=okf) walked the
-- running clocks by deadline and looked up each one's ticket to compare: a department
-- whose services have long targets has few of the earliest deadlines, so its first
-- page looked up about 1,400 tickets for 50 rows (14 ms at the median, 71 ms at the p99
-- with a million open clocks, benchmarks/worklist.py, 2026-12-05). With the clock's
-- department and service in the index, the walk passes over the others in the index
-- itself, as it does for priority (migration 011). A clock carries its ticket's current
-- department and service: a reclassification attaches the new department's agreement
-- from the ticket's start, to every clock (tests/integration/test_open_clock_priority.py
-- checks it with the priority). The index replaces 011's rather than adding one.
CREATE INDEX clocks_by_deadline_and_department
    ON clocks (deadline, ticket_id COLLATE "C", priority, department, service)
    WHERE deadline IS NOT NULL;
DROP INDEX clocks_by_deadline;
ALTER INDEX clocks_by_deadline_and_department RENAME TO clocks_by_deadline;
