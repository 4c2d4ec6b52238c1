"""CI checks: step-test on analytic problems, the regression gate and its baselines, the step benchmark."""
