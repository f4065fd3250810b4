"""Pure SLA-clock core: a ticket's timeline and clocks, agreement snapshots, the meter.

No I/O and no wall clock here: every instant is passed in. The business-time calendar
the clocks run on is ``engine.business_time``.
"""
