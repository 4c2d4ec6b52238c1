"""``adacli suite`` as one call: every workload of a suite through the run pipeline, then the suite's
figures across workloads (DESIGN.md sections 3-5).

Each workload runs through the same pipeline as ``adacli compare`` (:func:`adacli.run.pipeline.run_recipe`:
serial, ``--jobs``, Ray, sweeps, ``--resume``), into its own run folder under the suite folder::

    runs/<suite name>/<timestamp>/
        results.json     kind "suite": workloads, per-workload times, profiles, scores, ranks, ...
        profiles.png     the performance profiles
        report.html      the suite's page, linking each workload's
        <workload>/      a complete run folder per workload (results.json, curves.png, trials/ ...)

The cross-workload numbers come from :mod:`adacli.analysis.suite`. With ``--baseline`` each workload is
judged by the gate inside its own save step. Nothing here prints: the command line passes a
:class:`SuiteUI` and prints the :class:`SuiteResult`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adacli.errors import InputError
from adacli.recipe.suite import Suite, Workload
from adacli.run import store

SUITE_SCHEMA_VERSION = 1


class SuiteUI(Protocol):
    """What a suite tells its user while it runs."""

    def warning(self, text: str) -> None: ...
    def workload(self, i: int, n: int, workload: Workload) -> contextlib.AbstractContextManager[Any]: ...
    def workload_done(self, run: WorkloadRun) -> None: ...


@dataclass
class SuiteRequest:
    """Everything ``adacli suite`` is asked (the command line's options)."""

    suite_file: str
    device: str | None = None
    seeds: int | None = None
    steps: int | None = None
    out: str | None = None
    resume: str | None = None
    baseline: str | None = None
    save_baseline: str | None = None
    junit_xml: str | None = None
    executor: dict[str, Any] = field(default_factory=dict)  # adacli.run.pipeline.executor_options(...)


@dataclass
class WorkloadRun:
    """A workload's run: its folder and, once it ran, the pipeline's outcome (and the gate's verdict)."""

    workload: Workload
    run_dir: Path
    status: str = "pending"  # pending | complete | interrupted
    outcome: Any = None  # adacli.run.save.RunOutcome
    gate: Any = None  # adacli.ci.gate.GateResult, when judged

    @property
    def failed(self) -> int:
        return 0 if self.outcome is None else sum(t.status == "failed" for t in self.outcome.trials)


@dataclass
class SuiteOutcome:
    suite_dir: Path
    runs: list[WorkloadRun]
    results: dict[str, Any]
    status: str = "complete"


@dataclass
class SuiteResult:
    """What a suite did: the outcome, the gate's verdict per workload, the baseline saved."""

    outcome: SuiteOutcome
    verdicts: list[tuple[str, Any]] = field(default_factory=list)  # (workload, GateResult)
    baseline_saved: str | None = None
    baseline_refused: str | None = None

    @property
    def failed(self) -> dict[str, int]:
        """Trials that raised, per workload."""
        return {r.workload.name: r.failed for r in self.outcome.runs}

    @property
    def passed(self) -> bool:
        return not any(self.failed.values()) and all(r.passed for _, r in self.verdicts)


class SuiteInterrupted(KeyboardInterrupt):
    """Ctrl-C (exit 130) or SIGTERM (143) during a suite: finished trials and workloads are saved in
    ``outcome.suite_dir``."""

    def __init__(self, outcome: SuiteOutcome, exit_code: int = 130) -> None:
        super().__init__(f"suite interrupted, saved in {outcome.suite_dir}")
        self.outcome = outcome
        self.exit_code = exit_code


def _suite_dir(suite: Suite, out_dir: str | Path | None, resume: str | Path | None) -> Path:
    from adacli.run.folder import default_run_dir

    if resume is None:
        return Path(out_dir) if out_dir is not None else default_run_dir(suite.spec)
    path = Path(resume)
    if not path.is_dir():
        raise InputError("suite folder to resume not found", file=str(path), field="--resume")
    if store.results_kind(path) not in (store.SUITE_KIND, None):  # a compare run folder, not a suite's
        raise InputError(
            f'not a suite folder (its results.json has no "kind": "{store.SUITE_KIND}"); resume a run folder '
            "with adacli compare --resume",
            file=str(path),
            field="--resume",
        )
    if out_dir is not None and Path(out_dir).resolve() != path.resolve():
        raise InputError("--resume writes into the folder it resumes; drop --out", field="--out")
    return path


def _judge(run: WorkloadRun, baseline: Any, path: str) -> Any:
    """The gate of one workload, run in its save step; the verdict is kept on ``run``."""
    from adacli.ci.gate import gate_run, tolerances_for

    def judge(data: Any) -> dict[str, Any]:
        tol = tolerances_for(data.recipe)
        run.gate = gate_run(data, baseline, tol, baseline_path=path, run_dir=data.run_dir)
        return run.gate.to_dict()

    return judge


@dataclass
class _SuiteRun:
    """What every workload of one suite run shares: the folders, the display and one executor."""

    suite: Suite
    suite_dir: Path
    runs: list[WorkloadRun]
    ui: SuiteUI | None
    resume: bool
    scale: dict[str, Any]  # run_recipe's executor options
    pool: Any = None  # the executor every workload runs on (adacli.run.pipeline.open_executor)


def _run_one(ctx: _SuiteRun, run: WorkloadRun, progress: Any, judge: Any) -> None:
    """One workload through the run pipeline, on the suite's executor; a folder with trials in it is
    resumed."""
    from adacli.run import pipeline

    w = run.workload
    started = (run.run_dir / store.RESULTS_FILE).is_file() or (run.run_dir / store.TRIALS_DIR).is_dir()
    where = {"resume": run.run_dir} if ctx.resume and started else {"out_dir": run.run_dir}
    run.outcome = pipeline.run_recipe(
        w.recipe,
        recipe_path=w.recipe_path,
        progress=progress,
        judge=judge,
        pool=ctx.pool,
        **where,
        **ctx.scale,
    )
    run.status = run.outcome.status


def _run_workload(ctx: _SuiteRun, i: int, judge: Any) -> None:
    """Workload ``i`` with its progress display; an interrupt or error saves the suite so far."""
    from adacli.run.pipeline import RunInterrupted

    run, runs = ctx.runs[i], ctx.runs
    try:
        shown = (
            ctx.ui.workload(i, len(runs), run.workload) if ctx.ui is not None else contextlib.nullcontext()
        )
        with shown as progress:
            _run_one(ctx, run, progress, judge)
    except RunInterrupted as e:
        run.outcome, run.status = e.outcome, "interrupted"
        outcome = save_suite(ctx.suite, ctx.suite_dir, runs, "interrupted")
        raise SuiteInterrupted(outcome, e.exit_code) from None
    except BaseException:
        if any(r.status == "complete" for r in runs):
            save_suite(ctx.suite, ctx.suite_dir, runs, "interrupted")
        raise
    if ctx.ui is not None:
        ctx.ui.workload_done(run)


def run_suite(
    suite: Suite,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    ui: SuiteUI | None = None,
    baselines: dict[str, Any] | None = None,
    baseline_path: str = "",
    **scale: Any,
) -> SuiteOutcome:
    """Run every workload (``scale``: run_recipe's executor/jobs/threads/ray options), then aggregate;
    with ``baselines`` (workload -> baseline) each workload is judged as it is saved. Ctrl-C saves what
    finished (suite results.json over the complete workloads) and raises :class:`SuiteInterrupted`.

    Every workload runs on one executor (:func:`adacli.run.pipeline.open_executor`): local workers start
    once and serve every workload; a local Ray instance is started once.
    """
    from adacli.run.pipeline import open_executor

    suite_dir = _suite_dir(suite, out_dir, resume)
    runs = [WorkloadRun(w, suite_dir / w.name) for w in suite.workloads]
    ctx = _SuiteRun(suite, suite_dir, runs, ui, resume is not None, scale)
    ctx.pool = open_executor([w.recipe for w in suite.workloads], **scale)
    try:
        for i, run in enumerate(runs):
            judge = _judge(run, baselines[run.workload.name], baseline_path) if baselines else None
            _run_workload(ctx, i, judge)
    finally:
        if ctx.pool is not None:
            with contextlib.suppress(Exception):
                ctx.pool.close()
    return save_suite(suite, suite_dir, runs, "complete")


def suite_results(suite: Suite, suite_dir: Path, runs: Sequence[WorkloadRun], status: str) -> dict[str, Any]:
    """The suite's results.json: each workload's record and the figures across workloads."""
    from adacli.analysis.suite import WorkloadFigures, aggregate

    figures = [
        WorkloadFigures(r.workload.name, r.status)
        if r.outcome is None
        else WorkloadFigures(
            r.workload.name, r.status, r.outcome.trials, r.outcome.target, r.workload.recipe.seed_list
        )
        for r in runs
    ]
    records, cross = aggregate(figures, suite.labels, suite.reference, suite.spec.measure)
    for rec, run in zip(records, runs, strict=True):
        rec["run_dir"] = os.path.relpath(run.run_dir, suite_dir)
        rec["recipe"] = run.workload.recipe_path
    return {
        "kind": store.SUITE_KIND,
        "schema_version": SUITE_SCHEMA_VERSION,
        "name": suite.spec.name,
        "status": status,
        "suite_file": suite.file,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "labels": suite.labels,
        "reference": suite.reference,
        "measure": suite.spec.measure,
        "workloads": records,
        **cross,
    }


def rendered_suite_files(results: dict[str, Any]) -> dict[str, str | bytes]:
    """The suite's page and (when a workload completed) profiles.png, rendered from its results."""
    from adacli.report.html import render_suite
    from adacli.report.suite import profiles_png

    files: dict[str, str | bytes] = {store.REPORT_HTML: render_suite(results)}
    if results.get("scores"):
        files[store.PROFILES_PNG] = profiles_png(results)
    return files


def save_suite(suite: Suite, suite_dir: Path, runs: Sequence[WorkloadRun], status: str) -> SuiteOutcome:
    """Write the suite's results.json, report.html (and profiles.png when a workload completed)."""
    results = suite_results(suite, suite_dir, runs, status)
    store.write_results(suite_dir, results)
    for name, content in rendered_suite_files(results).items():
        store.write_file(suite_dir, name, content)
    return SuiteOutcome(suite_dir, list(runs), results, status)


def _check(request: SuiteRequest, ui: SuiteUI) -> tuple[Suite, dict[str, Any] | None]:
    """Read and check the suite before training (InputError, exit 2): every workload's preflight, the
    baselines."""
    from adacli.recipe.suite import load_suite

    suite = load_suite(request.suite_file).with_overrides(
        device=request.device, seeds=request.seeds, steps=request.steps
    )
    from adacli.run.pipeline import trial_threads, warm_up_workers  # torch: after the static checks

    warm_up_workers([w.recipe for w in suite.workloads], request.executor)  # overlaps the checks
    from adacli.run.preflight import check_suite

    with trial_threads([w.recipe for w in suite.workloads], request.executor):  # as the trials will run
        warnings = check_suite(suite)
    for warning in warnings:
        ui.warning(warning)
    if request.baseline is None:
        if request.junit_xml:
            raise InputError("needs --baseline (it holds the gate's verdicts)", field="--junit-xml")
        return suite, None
    from adacli.ci.baselines import check_suite_baseline, load_suite_baseline

    baselines = load_suite_baseline(request.baseline)
    check_suite_baseline(suite, baselines, request.baseline)
    return suite, baselines


def run(request: SuiteRequest, ui: SuiteUI) -> SuiteResult:
    """Check, run every workload, judge each against its baseline, keep a suite baseline; raises
    InputError (nothing trained) or :class:`SuiteInterrupted` (finished trials saved)."""
    suite, baselines = _check(request, ui)
    outcome = run_suite(
        suite,
        out_dir=request.out,
        resume=request.resume,
        ui=ui,
        baselines=baselines,
        baseline_path=request.baseline or "",
        **request.executor,
    )
    result = SuiteResult(outcome, [(r.workload.name, r.gate) for r in outcome.runs if r.gate is not None])
    if request.save_baseline:
        _keep_baseline(result, request.save_baseline)
    return result


def _keep_baseline(result: SuiteResult, path: str) -> None:
    from adacli.ci.baselines import save_suite_baseline

    if any(result.failed.values()):
        result.baseline_refused = "a trial failed"
    elif not result.passed:
        result.baseline_refused = "a regression"
    else:
        runs = {r.workload.name: r.outcome.run for r in result.outcome.runs}
        save_suite_baseline(result.outcome.results["name"], runs, path)
        result.baseline_saved = path


__all__ = [
    "SuiteInterrupted",
    "SuiteOutcome",
    "SuiteRequest",
    "SuiteResult",
    "SuiteUI",
    "WorkloadRun",
    "rendered_suite_files",
    "run",
    "run_suite",
    "save_suite",
    "suite_results",
]
