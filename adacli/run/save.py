"""Stage 3 of a run, the save: the recorded trials -> target, summary, sweep record -> the run folder.

:func:`save_run_folder` is the one place a run's results are computed from its trials and written, for
a complete run and for one cut short by Ctrl-C, SIGTERM or an error alike (``status``). It writes
``results.json``, ``summary.csv``, ``curves.png`` (and ``lr_sensitivity.png`` for a sweep) through
:mod:`adacli.report.tables`, and returns the :class:`RunOutcome` the CLI prints.

:func:`failure_lines` turns the trials that raised (status ``failed``) into the few lines the CLI prints
before exiting 1: grouped by error, so a setup where every trial fails the same way reads as one line.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.analysis import metrics, verdict
from adacli.report import tables as report
from adacli.results import OptimizerSummary, Target, TrialResult
from adacli.run import sweep
from adacli.run.plan import Plan, TrialTask

LR_SENSITIVITY_PNG = "lr_sensitivity.png"


@dataclass
class RunOutcome:
    """What a run produced (also what was saved in ``run_dir``)."""

    run_dir: Path
    trials: list[TrialResult]  # the final trials (the summary's); sweep trials are in ``sweep``
    summaries: list[OptimizerSummary]
    target: Target
    status: str = "complete"  # complete | interrupted
    planned: int = 0
    environment: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] | None = None  # the sweep record of results.json (None without a sweep)
    ran: int = 0  # trials run by this invocation
    reused: int = 0  # trials taken from the run folder (resume) or shared between sweep and final
    failed: list[TrialResult] = field(default_factory=list)  # trials run now that raised (status failed)
    verdict: verdict.Verdict | None = None  # the statistics stage: comparisons, best sets, power line


def sweep_info(
    plan: Plan, choices: dict[int, sweep.Choice], sweep_trials: list[TrialResult], environment: dict[str, Any]
) -> dict[str, Any]:
    """What results.json keeps about the sweep: rule, per optimizer the grid, scores and choice, and
    every sweep trial."""
    recipe = plan.recipe
    by_opt: dict[str, dict[int, list[TrialResult]]] = {}
    for t in sweep_trials:
        by_opt.setdefault(t.extra.get("optimizer_label", ""), {}).setdefault(
            int(t.extra.get("config_index", 0)), []
        ).append(t)
    optimizers = []
    for sw in plan.sweeps:
        choice = choices.get(sw.index)
        scores = choice.scores if choice is not None and choice.scores else None
        scores = scores or sweep.score_configs(sw, by_opt.get(sw.label, {}))
        chosen = None if choice is None else scores[choice.index]
        optimizers.append(
            {
                "label": sw.label,
                "name": sw.name,
                "n_configs": sw.n,
                "fixed": sw.fixed,
                "axes": sw.axes,
                "chosen_index": None if choice is None else choice.index,
                "chosen": None if choice is None else choice.chosen,
                "val_accuracy": None if chosen is None else chosen.val_accuracy,
                "val_loss": None if chosen is None else chosen.val_loss,
                "note": None if choice is None else choice.note,
                "configs": [dataclasses.asdict(s) for s in scores],
            }
        )
    return {
        "split": sweep.SPLIT,
        "val_size": (environment.get("data") or {}).get("val_size"),
        "metric": recipe.sweep.metric,
        "tie_break": "val_loss" if recipe.sweep.metric == "val_accuracy" else "val_accuracy",
        "seed_policy": recipe.sweep.seeds,
        "selection_seeds": plan.selection_seeds,
        "seeds": plan.seeds,
        "equal_budget": recipe.sweep.equal_budget,
        "budgets_differ": len({sw.n for sw in plan.sweeps}) > 1,
        "optimizers": optimizers,
        "trials": [t.to_dict() for t in sweep_trials],
    }


def save_run_folder(
    run_dir: Path,
    *,
    plan: Plan,
    recipe_json: dict[str, Any],
    environment: dict[str, Any],
    records: list[tuple[TrialTask, TrialResult]],
    choices: dict[int, sweep.Choice],
    status: str,
    ran: int,
    reused: int,
) -> RunOutcome:
    """Summarize the recorded trials (plan order) and write the run folder; return the outcome."""
    finals = [r for t, r in records if t.role == "final"]
    target = metrics.resolve_target(finals, plan.recipe.target)
    summaries = metrics.summarize(finals, target)
    analysis = verdict.analyze(finals, summaries, target, reference=plan.recipe.reference)
    info = None
    if plan.swept:
        info = sweep_info(plan, choices, [r for t, r in records if t.role == "sweep"], environment)
    report.save_run(
        run_dir,
        recipe=recipe_json,
        environment=environment,
        trials=finals,
        summaries=summaries,
        target=target,
        status=status,
        plot=bool(finals),
        extra={**({"sweep": info} if info is not None else {}), **analysis.to_dict()},
    )
    if info is not None and info["trials"]:
        from adacli.report.sweep import plot_lr_sensitivity

        plot_lr_sensitivity(info, run_dir / LR_SENSITIVITY_PNG)
    failed = [r for t, r in records if r.status == "failed" and not r.extra.get("reused")]
    return RunOutcome(
        run_dir, finals, summaries, target, status, plan.planned, environment, info, ran, reused, failed,
        verdict=analysis,
    )


def failure_lines(failed: list[TrialResult], total: int, limit: int = 3) -> list[str]:
    """The trials that raised, grouped by error: ``all 4 trials failed: RuntimeError: ...`` when every
    trial failed the same way, else ``2 of 8 trials failed:`` and one line per error (at most ``limit``,
    each naming its trials)."""
    groups: dict[str, list[TrialResult]] = defaultdict(list)
    for t in failed:
        groups[(t.error or "unknown error").splitlines()[0][:300]].append(t)
    if not groups:
        return []
    if len(groups) == 1 and len(failed) == total:
        error = next(iter(groups))
        return [f"all {total} trials failed: {error}"]

    def names(trials: list[TrialResult]) -> str:
        seeds: dict[str, list[str]] = defaultdict(list)
        for t in trials:
            seeds[t.label].append(str(t.seed))
        parts = [f"{label} seed{'s' * (len(s) > 1)} {', '.join(s)}" for label, s in list(seeds.items())[:4]]
        return "; ".join(parts) + ("; ..." if len(seeds) > 4 else "")

    head = f"{len(failed)} of {total} trials failed"
    if len(groups) == 1:
        error, trials = next(iter(groups.items()))
        return [f"{head}: {names(trials)}: {error}"]
    lines = [f"{head}:"]
    for error, trials in list(groups.items())[:limit]:
        lines.append(f"  {names(trials)}: {error}")
    if len(groups) > limit:
        lines.append(f"  ... and {len(groups) - limit} other error(s), see trials/ in the run folder")
    return lines


__all__ = ["LR_SENSITIVITY_PNG", "RunOutcome", "failure_lines", "save_run_folder", "sweep_info"]
