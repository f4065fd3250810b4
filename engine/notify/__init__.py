"""Escalation notices over e-mail, webhook and AMQP. Lands with the escalation issue."""
