"""``adacli suite`` as one call: every workload of a suite through the run pipeline, then the suite's
figures across workloads (DESIGN.md sections 3-5).

Each workload runs through the same pipeline as ``adacli compare`` (:func:`adacli.run.pipeline.run_recipe`:
serial, ``--jobs``, Ray, sweeps, ``--resume``), into its own run folder under the suite folder::

    runs/<suite name>/<timestamp>/
        results.json     kind "suite": workloads, per-workload times, profiles, scores, ranks, ...
        profiles.png     the performance profiles
        <workload>/      a complete run folder per workload (results.json, curves.png, trials/ ...)

The cross-workload numbers are computed by :mod:`adacli.analysis.suite_stats` from each workload's per-seed
time to target (steps or seconds, ``measure``). This module loads, runs and saves; it prints nothing.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adacli.analysis import suite_stats
from adacli.errors import InputError
from adacli.recipe.suite import Suite, Workload

SUITE_KIND = "suite"
SUITE_SCHEMA_VERSION = 1
PROFILES_PNG = "profiles.png"


# --- running ------------------------------------------------------------------------------------------


@dataclass
class WorkloadRun:
    """A workload's run: its folder and, once it ran, the pipeline's outcome."""

    workload: Workload
    run_dir: Path
    status: str = "pending"  # pending | complete | interrupted
    outcome: Any = None  # adacli.run.save.RunOutcome


@dataclass
class SuiteOutcome:
    suite_dir: Path
    runs: list[WorkloadRun]
    results: dict[str, Any]
    status: str = "complete"


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
        return Path(out_dir) if out_dir is not None else default_run_dir(suite.spec)  # type: ignore[arg-type]
    path = Path(resume)
    if not path.is_dir():
        raise InputError("suite folder to resume not found", file=str(path), field="--resume")
    if results_kind(path / "results.json") not in (SUITE_KIND, None):  # a compare run folder, not a suite's
        raise InputError(
            f'not a suite folder (its results.json has no "kind": "{SUITE_KIND}"); resume a run folder '
            "with adacli compare --resume",
            file=str(path),
            field="--resume",
        )
    if out_dir is not None and Path(out_dir).resolve() != path.resolve():
        raise InputError("--resume writes into the folder it resumes; drop --out", field="--out")
    return path


def results_kind(results_file: Path) -> str | None:
    """The ``kind`` of a results.json ("" for a run folder's), None when there is none to read."""
    import json

    try:
        data = json.loads(results_file.read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("kind", "")) if isinstance(data, dict) else ""


def _run_one(run: WorkloadRun, resume: bool, progress: Any, scale: dict[str, Any]) -> None:
    """One workload through the compare pipeline; a folder with trials in it is resumed."""
    from adacli.report import tables as report
    from adacli.run import pipeline

    w = run.workload
    started = (run.run_dir / report.RESULTS_FILE).is_file() or (run.run_dir / report.TRIALS_DIR).is_dir()
    where = {"resume": run.run_dir} if resume and started else {"out_dir": run.run_dir}
    run.outcome = pipeline.run_recipe(
        w.recipe, recipe_path=w.recipe_path, progress=progress, **where, **scale
    )
    run.status = run.outcome.status


def run_suite(
    suite: Suite,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: Callable[[int, Workload], Any] | None = None,
    on_done: Callable[[int, WorkloadRun], None] | None = None,
    **scale: Any,
) -> SuiteOutcome:
    """Run every workload (``scale``: run_recipe's executor/jobs/threads/ray options), then aggregate.

    ``progress(i, workload)`` returns a context manager yielding the workload's progress display;
    ``on_done(i, run)`` is called after each workload. Ctrl-C saves what finished (suite results.json
    over the complete workloads) and raises :class:`SuiteInterrupted`.
    """
    from contextlib import nullcontext

    from adacli.run.pipeline import RunInterrupted

    suite_dir = _suite_dir(suite, out_dir, resume)
    runs = [WorkloadRun(w, suite_dir / w.name) for w in suite.workloads]
    suite_dir.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs):
        try:
            with progress(i, run.workload) if progress is not None else nullcontext() as prog:
                _run_one(run, resume is not None, prog, scale)
        except RunInterrupted as e:
            run.outcome, run.status = e.outcome, "interrupted"
            outcome = save_suite(suite, suite_dir, runs, "interrupted")
            raise SuiteInterrupted(outcome, e.exit_code) from None
        except BaseException:
            if any(r.status == "complete" for r in runs):
                save_suite(suite, suite_dir, runs, "interrupted")
            raise
        if on_done is not None:
            on_done(i, run)
    return save_suite(suite, suite_dir, runs, "complete")


# --- aggregation ---------------------------------------------------------------------------------------


def per_seed_times(
    trials: Sequence[Any], target: Any, seeds: Sequence[int], labels: Sequence[str], measure: str
) -> tuple[dict[str, list[float | None]], float]:
    """Per label, the time to target of each seed (None = censored: missed, diverged, failed or absent),
    and the censoring value "budget + 1 step" the paired tests use for it."""
    from adacli.analysis import metrics

    by_key = {(t.label, t.seed): t for t in trials}
    out: dict[str, list[float | None]] = {}
    for label in labels:
        row: list[float | None] = []
        for seed in seeds:
            t = by_key.get((label, seed))
            if t is None or not metrics.usable(t):
                row.append(None)
            elif measure == "steps":
                row.append(_float(metrics.steps_to_target(t, target)))
            else:
                row.append(metrics.seconds_to_target(t, target))
        out[label] = row
    steps = max((t.steps_done for t in trials), default=0)
    if measure == "steps":
        return out, float(steps + 1)
    seconds = max((t.train_seconds for t in trials), default=0.0)
    return out, seconds + (seconds / steps if steps else 1.0)


def _float(v: int | None) -> float | None:
    return None if v is None else float(v)


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def aggregate(suite: Suite, runs: Sequence[WorkloadRun]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-workload records and the cross-workload figures (over the complete workloads)."""
    labels, measure = suite.labels, suite.spec.measure
    records: list[dict[str, Any]] = []
    times: dict[str, dict[str, float]] = {}
    paired: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        rec: dict[str, Any] = {"name": run.workload.name, "status": run.status}
        if run.outcome is not None and run.status == "complete":
            o = run.outcome
            seeds = run.workload.recipe.seed_list
            per_seed, censor = per_seed_times(o.trials, o.target, seeds, labels, measure)
            times[rec["name"]] = {lbl: suite_stats.time_to_target(v) for lbl, v in per_seed.items()}
            paired[rec["name"]] = {
                lbl: [censor if x is None else x for x in v] for lbl, v in per_seed.items()
            }
            rec["target"] = o.target.value
            rec["times"] = {lbl: _finite_or_none(t) for lbl, t in times[rec["name"]].items()}
            rec["per_seed"] = per_seed
            rec["censored_as"] = censor
        records.append(rec)
    if not times:
        return records, {}
    ref = suite.reference
    speed = suite_stats.speedups(times, ref)
    return records, {
        "profiles": {
            "measure": measure,
            "taus": suite_stats.TAUS,
            "curves": suite_stats.performance_profiles(times),
        },
        "scores": suite_stats.scores(times),
        "ranks": suite_stats.mean_ranks(times),
        "speedups": {lbl: s for lbl, (s, _n) in speed.items()},
        "speedup_workloads": {lbl: n for lbl, (_s, n) in speed.items()},
        "wins": suite_stats.win_tie_loss(paired),
        "n_workloads": len(times),
    }


def save_suite(suite: Suite, suite_dir: Path, runs: Sequence[WorkloadRun], status: str) -> SuiteOutcome:
    """Write the suite's results.json, report.html (and profiles.png when a workload completed)."""
    from adacli.report import suite as suite_report
    from adacli.report import tables as report
    from adacli.report.html import write_suite_html

    records, cross = aggregate(suite, runs)
    for rec, run in zip(records, runs, strict=True):
        rec["run_dir"] = os.path.relpath(run.run_dir, suite_dir)
        rec["recipe"] = run.workload.recipe_path
    results = {
        "kind": SUITE_KIND,
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
    report.write_json(suite_dir / report.RESULTS_FILE, results)
    if cross:
        suite_report.plot_profiles(results, suite_dir / PROFILES_PNG)
    write_suite_html(suite_dir)  # from the file just written: the page shows what results.json holds
    return SuiteOutcome(suite_dir, list(runs), results, status)


# --- the gate, per workload (adacli.ci.gate does the judging) ------------------------------------------------

SUITE_BASELINE_KIND = "adacli-suite-baseline"


def save_suite_baseline(outcome: SuiteOutcome, path: str | Path) -> Path:
    """One file holding a gate baseline (:func:`adacli.ci.gate.baseline_from_run`) per workload."""
    from adacli.ci import gate
    from adacli.report import tables as report

    workloads = {}
    for run in outcome.runs:
        data = report.load_run(run.run_dir)
        workloads[run.workload.name] = gate._finite(gate.baseline_from_run(data, run.run_dir).to_dict())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": SUITE_BASELINE_KIND,
        "schema_version": SUITE_SCHEMA_VERSION,
        "suite": outcome.results["name"],
        "workloads": workloads,
    }
    report.write_json(path, payload, indent=2)
    return path


def load_suite_baseline(path: str | Path) -> dict[str, Any]:
    """The per-workload baselines of a suite baseline file (InputError, exit 2, when it is not one)."""
    from adacli.ci import gate

    data, hint = gate.read_baseline_json(path, SUITE_BASELINE_KIND, "adacli suite SUITE", "a suite baseline")
    try:
        return {name: gate.Baseline.from_dict(b) for name, b in dict(data["workloads"]).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"malformed suite baseline ({type(e).__name__}: {e}); {hint}", file=str(path)
        ) from None


def check_suite_baseline(suite: Suite, baselines: dict[str, Any], path: str | Path) -> None:
    """Before training: every workload has a baseline made with the same setup (else exit 2)."""
    from adacli.ci import gate

    for w in suite.workloads:
        if w.name not in baselines:
            raise InputError(
                f"no baseline for workload {w.name!r}; make a new one with --save-baseline",
                file=str(path),
                allowed=sorted(baselines),
            )
        try:
            gate.check_setup(baselines[w.name], w.recipe, baseline_path=path)
        except InputError as e:
            raise InputError(f"workload {w.name!r}: {e.message}", file=e.file, field=e.field) from None


def gate_suite(outcome: SuiteOutcome, baselines: dict[str, Any], path: str | Path) -> list[tuple[str, Any]]:
    """Each workload's run judged against its baseline: ``[(workload, gate.GateResult)]``."""
    from adacli.ci import gate
    from adacli.report import tables as report

    out = []
    for run in outcome.runs:
        data = report.load_run(run.run_dir)
        tol = gate.tolerances_for(data.recipe)
        result = gate.gate_run(
            data, baselines[run.workload.name], tol, baseline_path=path, run_dir=run.run_dir
        )
        out.append((run.workload.name, result))
    return out


def write_suite_junit(verdicts: Sequence[tuple[str, Any]], path: str | Path) -> Path:
    """One JUnit XML file with a ``testsuite`` per workload (each written by gate.write_junit_xml)."""
    import tempfile
    from xml.etree import ElementTree as ET

    from adacli.ci import gate

    root = ET.Element("testsuites", name="adacli.suite")
    with tempfile.TemporaryDirectory() as tmp:
        for name, result in verdicts:
            one = gate.write_junit_xml(result, Path(tmp) / "one.xml")
            for ts in ET.parse(one).getroot().iter("testsuite"):
                ts.set("name", f"adacli.gate.{name}")
                for case in ts.iter("testcase"):
                    case.set("classname", f"adacli.gate.{name}.{case.get('classname', '').split('.')[-1]}")
                root.append(ts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
