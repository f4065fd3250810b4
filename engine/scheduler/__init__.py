"""Fire escalation steps when they fall due: claimed from PostgreSQL, each step once."""
