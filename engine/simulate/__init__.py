"""In-memory simulation: the pure core over a history of events, in virtual time."""
