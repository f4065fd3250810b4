"""Pure escalation policy: which tier hears of a clock at which fraction of its target.

Lands with the escalation issue; the policy's configuration lives in ``engine.config``.
"""
