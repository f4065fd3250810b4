"""Escalation notices: the outbox they wait in, and the channels that deliver them."""
