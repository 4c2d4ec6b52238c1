"""``adacli gate`` as one call: a saved run judged against a baseline, without training anything.

Reads the run folder through the store and the baseline file; imports neither torch nor timm, so a CI
step that only judges starts in a fraction of a second. Writes nothing into the run folder (a shared or
read-only baseline run stays as it is); the command line writes the JUnit XML and Markdown it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class GateRequest:
    run_dir: str
    baseline: str
    accuracy_drop: float | None = None
    sigma_k: float | None = None
    gap_growth: float | None = None
    steps_growth: float | None = None
    step_time_growth: float | None = None


def gate(request: GateRequest) -> Any:
    """The gate's verdict (``adacli.ci.gate.GateResult``) on a saved run; InputError (exit 2) for a missing
    or mismatched baseline or run folder."""
    from adacli.ci.baselines import load_baseline
    from adacli.ci.gate import gate_run, tolerances_for
    from adacli.run.store import load_run

    base = load_baseline(request.baseline)
    run = load_run(request.run_dir)
    tol = tolerances_for(
        run.recipe,
        accuracy_drop=request.accuracy_drop,
        sigma_k=request.sigma_k,
        gap_growth=request.gap_growth,
        steps_growth=request.steps_growth,
        step_time_growth=request.step_time_growth,
    )
    result = gate_run(run, base, tol, baseline_path=request.baseline, run_dir=run.run_dir)
    if run.status != "complete":
        result.notes.insert(0, f"the run's status is {run.status!r}: missing trials count as failures")
    return result


__all__ = ["GateRequest", "gate"]
