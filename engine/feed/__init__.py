"""The SLA feed: tickets' clocks published on ``helpdesk.sla`` after every change."""
