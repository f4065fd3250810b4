"""Compliance reports and the formats they are printed in: pure, shared by report and simulate."""
