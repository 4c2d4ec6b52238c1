"""Workflows: compare, suite, gate and report, one call each, returning a result the CLI prints."""
