"""Ticket intake from RabbitMQ into PostgreSQL. Lands with the intake issue."""
