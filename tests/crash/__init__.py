"""Crash test: SIGKILLs at fault-injection points and at random moments (issue 6)."""
