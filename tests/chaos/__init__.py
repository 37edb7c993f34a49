"""Reliability suite: chaos runs with a history checker, a single-owner audit, fuzzing
and security checks (issue 11). ``python -m tests.chaos`` runs the chaos driver."""
