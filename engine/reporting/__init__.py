"""Compliance reports and the event export.

``compliance`` and ``output`` are pure, shared by report and simulate; ``report`` and
``export`` read PostgreSQL.
"""
