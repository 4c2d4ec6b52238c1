"""The analysis stage: metrics, paired statistics, verdicts and suite statistics (pure functions)."""
