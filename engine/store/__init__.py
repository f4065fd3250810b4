"""PostgreSQL state: migrations, and the recording of events with their tickets' clocks."""
