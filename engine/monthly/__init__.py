"""The monthly follow-up: each department's report for the month before, by e-mail.

``period`` (which month, when it is due) and ``document`` (what the report holds) are
pure, as are ``render`` (HTML, CSV, the e-mail) and ``words``; ``job`` claims and queues
the reports through the store, and runs them from an APScheduler cron job in the daemon.
"""
