"""Stage 3 of a run, the save: recorded trials -> target, summary, verdict, sweep record -> the run folder.

:func:`save_run_folder` is the one place a run's results are computed from its trials and written, for
a complete run and for one cut short by Ctrl-C, SIGTERM or an error alike (``status``). A complete run
without failed trials is judged first when a ``judge`` (the regression gate) is given, so that
``report.html`` shows the gate's verdict and every file is written once, through :mod:`adacli.run.store`.
It returns the :class:`RunOutcome` the command line prints.

:func:`failure_lines` turns the trials that raised (status ``failed``) into the few lines the CLI prints
before exiting 1: grouped by error, so a setup where every trial fails the same way reads as one line.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.analysis import metrics, verdict
from adacli.results import OptimizerSummary, Target, TrialResult, encode
from adacli.run import store, sweep
from adacli.run.plan import Plan, TrialTask
from adacli.run.store import RunData


@dataclass
class RunOutcome:
    """What a run produced: the run as saved (``run``, the in-memory ``results.json``) and this invocation's
    counts. The run's fields are readable here too (``outcome.trials``, ``outcome.summaries`` ...)."""

    run: RunData
    planned: int = 0
    ran: int = 0  # trials run by this invocation
    reused: int = 0  # trials taken from the run folder (resume) or shared between sweep and final
    failed: list[TrialResult] = field(default_factory=list)  # trials run now that raised (status failed)

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def trials(self) -> list[TrialResult]:  # the final trials (the summary's); sweep trials are in sweep
        return self.run.trials

    @property
    def summaries(self) -> list[OptimizerSummary]:
        return self.run.summaries

    @property
    def target(self) -> Target:
        return self.run.target  # type: ignore[return-value]

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def environment(self) -> dict[str, Any]:
        return self.run.environment

    @property
    def verdict(self) -> Any:
        return self.run.verdict

    @property
    def sweep(self) -> dict[str, Any] | None:
        return self.run.extra.get("sweep")

    @property
    def gate(self) -> dict[str, Any] | None:
        return self.run.gate


#: judges a finished run (the regression gate); returns what gate.json holds
Judge = Callable[[RunData], dict[str, Any]]


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
    judge: Judge | None = None,
    seeds: dict[str, Any] | None = None,
) -> RunOutcome:
    """Summarize the recorded trials (plan order), judge a complete run when asked, and write the run
    folder, every file once; return the outcome. ``seeds``: a seeds-until-decided run's design, looks and
    why it stopped (:func:`adacli.analysis.verdict.Settings.of_run`), None for fixed seeds."""
    finals = [r for t, r in records if t.role == "final"]
    failed = [r for t, r in records if r.status == "failed" and not r.extra.get("reused")]
    target = metrics.resolve_target(finals, plan.recipe.target, reference=plan.recipe.reference)
    summaries = metrics.summarize(finals, target)
    run = RunData(run_dir, recipe_json, environment, finals, summaries, target, status)
    settings = verdict.Settings.of_run(recipe_json, environment, seeds)
    run.verdict = verdict.analyze(finals, summaries, target, settings=settings)
    if plan.swept:
        sweep_trials = [r for t, r in records if t.role == "sweep"]
        run.extra["sweep"] = sweep_info(plan, choices, sweep_trials, environment)
    if judge is not None and status == "complete" and not failed:
        run.gate = judge(run)
    store.save_run(run, rendered_files(run))
    return RunOutcome(run, plan.planned, ran, reused, failed)


def rendered_files(run: RunData) -> dict[str, str | bytes]:
    """The run's plots and page, rendered from the run in memory (name -> content): curves.png,
    lr_sensitivity.png for a sweep over ``lr``, and report.html (with the gate's verdict when judged)."""
    from adacli.report.html import render_run
    from adacli.report.plots import curves_png
    from adacli.report.sweep import lr_sensitivity_png

    files: dict[str, str | bytes] = {}
    if not run.trials:
        return files
    files[store.CURVES_PNG] = curves_png(run.trials, target=run.target)
    info = run.extra.get("sweep")
    if isinstance(info, dict) and info.get("trials"):
        png = lr_sensitivity_png(info)
        if png is not None:
            files[store.LR_SENSITIVITY_PNG] = png
    files[store.REPORT_HTML] = render_run(encode(run.results()), run.trials, run.gate)
    return files


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


__all__ = ["Judge", "RunOutcome", "failure_lines", "rendered_files", "save_run_folder", "sweep_info"]
