"""The run stage: preflight, plan, run folder, executors, the run loop and the save step."""
