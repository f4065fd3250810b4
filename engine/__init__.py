"""sla-engine: SLA clocks over business time, escalation and breach metrics for a helpdesk."""

__version__ = "0.1.0"
