"""Suites: one optimizer list judged on several workloads (DESIGN.md sections 3-5).

A suite file names the optimizers once and lists workloads (recipe files, or inline recipe keys). Each
workload becomes a normal :class:`~adacli.recipe.Recipe` (the suite's optimizers, the suite's seeds unless
the workload sets its own) and runs through the same pipeline as ``adacli compare``
(:func:`adacli.pipeline.run_recipe`: serial, ``--jobs``, Ray, sweeps, ``--resume``), into its own run
folder under the suite folder::

    runs/<suite name>/<timestamp>/
        results.json     kind "suite": workloads, per-workload times, profiles, scores, ranks, ...
        profiles.png     the performance profiles
        <workload>/      a complete run folder per workload (results.json, curves.png, trials/ ...)

The cross-workload numbers are computed by :mod:`adacli.suite_stats` from each workload's per-seed
time to target (steps or seconds, ``measure``). This module loads, runs and saves; it prints nothing.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from adacli import suite_stats
from adacli.errors import InputError
from adacli.recipe import (
    OptimizerSpec,
    Recipe,
    _fmt_path,
    _line,
    _Strict,
    _validation_error,
    _yaml_with_lines,
)

SUITE_KIND = "suite"
SUITE_SCHEMA_VERSION = 1
PROFILES_PNG = "profiles.png"
MEASURES = ("steps", "seconds")


class SuiteSpec(_Strict):
    """The suite file: workloads judged together with one optimizer list."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="used for the suite folder")
    seeds: int | list[int] | None = Field(
        None, description="default seeds of every workload (a count or a list); a workload may set its own"
    )
    optimizers: list[OptimizerSpec] = Field(min_length=1, description="the same list for every workload")
    reference: str | None = Field(None, description="label the speed-ups are measured against [first]")
    measure: Literal["steps", "seconds"] = Field("steps", description="time to target in steps or seconds")
    workloads: list[dict[str, Any]] = Field(
        min_length=1,
        description="each {recipe: path} (its optimizers are ignored) or inline recipe keys but optimizers",
    )

    @field_validator("optimizers", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``optimizers: [adabelief, adam]``, as in a recipe."""
        return [{"name": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds is a count (an integer >= 1) or a list of integers")
        return v


@dataclass
class Workload:
    """One workload of a suite: its recipe (the suite's optimizers) and where it came from."""

    name: str
    recipe: Recipe
    recipe_path: str | None  # the recipe file, or None for an inline workload


@dataclass
class Suite:
    spec: SuiteSpec
    workloads: list[Workload]
    file: str
    labels: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.spec.reference or self.labels[0]


# --- loading -----------------------------------------------------------------------------------------


def _read_yaml(path: Path, what: str) -> tuple[dict[str, Any], dict[tuple, int]]:
    file = str(path)
    if not path.is_file():
        raise InputError(
            f"{what} file not found" if not path.exists() else f"{what} path is not a file", file=file
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", file=file) from None
    data, lines = _yaml_with_lines(text, file)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise InputError(f"a {what} is a mapping of keys (name, ...), not {kind}", file=file)
    return data, lines


def _at(message: str, file: Path, lines: dict[tuple, int], path: tuple, **kw: Any) -> InputError:
    """An InputError at ``path`` of ``file`` (its line and dotted field)."""
    return InputError(message, file=str(file), line=_line(lines, path), field=_fmt_path(path), **kw)


def _check_keys(
    data: dict[str, Any], fields: list[str], file: Path, lines: dict[tuple, int], at: tuple
) -> None:
    """Unknown keys first: pydantic would report the key a typo left "missing" before the typo itself."""
    from adacli.errors import closest

    unknown = next((k for k in data if k not in fields), None)
    if unknown is not None:
        msg = f"unknown key {unknown!r}"
        raise _at(msg, file, lines, (*at, unknown), allowed=fields, suggestion=closest(str(unknown), fields))


def _prefixed(e: InputError, prefix: str) -> InputError:
    """The error with its field path under ``prefix`` (an inline workload's keys live in the suite)."""
    field_ = f"{prefix}.{e.field}" if e.field else prefix
    return InputError(
        e.message, file=e.file, line=e.line, field=field_, allowed=e.allowed, suggestion=e.suggestion
    )


def _workload(
    entry: Any, i: int, spec: SuiteSpec, raw_optimizers: Any, suite_file: Path, lines: dict[tuple, int]
) -> Workload:
    """Workload ``i`` as a Recipe: a recipe file (plus overrides) or inline keys, with the suite's
    optimizers and (unless the entry sets them) its seeds. Errors name the file that holds the key."""
    here = ("workloads", i)
    if not isinstance(entry, dict):
        raise InputError(
            "a workload is {recipe: path} or inline recipe keys (name, model, dataset, budget ...)",
            file=str(suite_file),
            line=_line(lines, here),
            field=_fmt_path(here),
        )
    if "optimizers" in entry:
        msg = "a workload has no optimizers of its own: the suite's list runs on every workload"
        raise _at(msg, suite_file, lines, (*here, "optimizers"))
    _check_keys(entry, ["recipe", *Recipe.model_fields], suite_file, lines, here)
    overrides = {k: v for k, v in entry.items() if k != "recipe"}
    sub_lines = {p[2:]: n for p, n in lines.items() if p[:2] == here and len(p) > 2}
    prefix = _fmt_path(here)
    if "recipe" in entry:
        path: Path | None = _recipe_path(entry["recipe"], suite_file, lines, here)
        data, rlines = _read_yaml(path, "recipe")
        data = {k: v for k, v in data.items() if k != "optimizers"}
        file = str(path)
    else:
        path, data, rlines, file = None, {}, sub_lines, str(suite_file)
    data.update(overrides)
    if spec.seeds is not None and "seeds" not in entry:
        data["seeds"] = spec.seeds
    data["optimizers"] = raw_optimizers
    if "reference" not in entry:  # the optimizers are the suite's, and so is the reference of each table
        data["reference"] = spec.reference
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        err = _validation_error(e, data, rlines, file)
        key = (err.field or "").split(".")[0].split("[")[0]
        if path is None or key in overrides:  # the key is written in the suite file
            err = _prefixed(_validation_error(e, data, sub_lines, str(suite_file)), prefix)
        raise err from None
    where = rlines if path is None else {p: n for p, n in rlines.items() if p[:1] not in overrides}
    recipe._file = file
    recipe._lines = where
    return Workload(recipe.name, recipe, str(path) if path is not None else None)


def _recipe_path(value: Any, suite_file: Path, lines: dict[tuple, int], here: tuple) -> Path:
    """A workload's recipe file, relative to the suite file."""
    if not isinstance(value, str) or not value.strip():
        raise _at("recipe is the path of a recipe file", suite_file, lines, (*here, "recipe"))
    p = Path(value)
    return p if p.is_absolute() else suite_file.parent / p


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Read and validate a suite file and every workload; each problem is one InputError (exit 2)."""
    from adacli.optim.registry import assign_labels

    suite_file = Path(path)
    file = str(suite_file)
    data, lines = _read_yaml(suite_file, "suite")
    if "workloads" not in data and {"model", "dataset", "budget"} & set(data):
        raise InputError(
            f"a recipe, not a suite (no 'workloads:'): run it with `adacli compare {file}`, or list it in a "
            "suite as `workloads: [{recipe: ...}]`",
            file=file,
        )
    _check_keys(data, list(SuiteSpec.model_fields), suite_file, lines, ())
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, data, lines, file, root=SuiteSpec) from None
    workloads = [
        _workload(w, i, spec, data["optimizers"], suite_file, lines) for i, w in enumerate(spec.workloads)
    ]
    seen: dict[str, int] = {}
    for i, w in enumerate(workloads):
        if w.name in seen:
            raise InputError(
                f"two workloads are named {w.name!r} (workloads[{seen[w.name]}] too): each gets its own run "
                "folder, set a distinct name",
                file=file,
                line=_line(lines, ("workloads", i)),
                field=f"workloads[{i}].name",
            )
        seen[w.name] = i
    try:
        labels = assign_labels(spec.optimizers)
    except InputError as e:
        raise e.located(file=file, line=_line(lines, ("optimizers",)), field="optimizers") from None
    if spec.reference is not None and spec.reference not in labels:
        from adacli.errors import closest

        raise InputError(
            f"reference {spec.reference!r} is not an optimizer label of this suite",
            file=file,
            line=_line(lines, ("reference",)),
            field="reference",
            allowed=labels,
            suggestion=closest(spec.reference, labels),
        )
    return Suite(spec, workloads, file, labels)


def check_suite(suite: Suite) -> list[str]:
    """Every workload checked as ``compare`` checks a recipe (data, device, model, optimizers, then the
    real preflight: one forward/backward and one step of each optimizer) before any training.

    Returns the warning lines, each prefixed with its workload's name."""
    from adacli.preflight import check_recipe
    from adacli.verdict import check_reference

    warnings: list[str] = []
    for i, w in enumerate(suite.workloads):
        try:
            report = check_recipe(w.recipe, w.recipe.source_file)
            check_reference(w.recipe.reference, suite.labels, file=w.recipe.source_file,
                            line=w.recipe.line_of("reference"))  # fmt: skip
        except InputError as e:
            if w.recipe_path is None and e.file == suite.file:
                raise _prefixed(e, f"workloads[{i}]") from None
            raise
        warnings += [f"{w.name}: {line}" for line in report.warnings]
    return warnings


def apply_overrides(suite: Suite, **overrides: Any) -> Suite:
    """The CLI's --device/--seeds/--steps on every workload (compare's own override function)."""
    from adacli.compare import apply_overrides as one

    for w in suite.workloads:
        new = one(w.recipe, **overrides)
        if new is not w.recipe:
            new._file, new._lines = w.recipe._file, w.recipe._lines
        w.recipe = new
    return suite


# --- running ------------------------------------------------------------------------------------------


@dataclass
class WorkloadRun:
    """A workload's run: its folder and, once it ran, the pipeline's outcome."""

    workload: Workload
    run_dir: Path
    status: str = "pending"  # pending | complete | interrupted
    outcome: Any = None  # adacli.save.RunOutcome


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
    from adacli.runfolder import default_run_dir

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
    from adacli import pipeline, report

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

    from adacli.pipeline import RunInterrupted

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
    from adacli import metrics

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
    from adacli import report, suite_report
    from adacli.report_html import write_suite_html

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


# --- the gate, per workload (adacli.gate does the judging) ------------------------------------------------

SUITE_BASELINE_KIND = "adacli-suite-baseline"


def save_suite_baseline(outcome: SuiteOutcome, path: str | Path) -> Path:
    """One file holding a gate baseline (:func:`adacli.gate.baseline_from_run`) per workload."""
    from adacli import gate, report

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
    from adacli import gate

    data, hint = gate.read_baseline_json(path, SUITE_BASELINE_KIND, "adacli suite SUITE", "a suite baseline")
    try:
        return {name: gate.Baseline.from_dict(b) for name, b in dict(data["workloads"]).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"malformed suite baseline ({type(e).__name__}: {e}); {hint}", file=str(path)
        ) from None


def check_suite_baseline(suite: Suite, baselines: dict[str, Any], path: str | Path) -> None:
    """Before training: every workload has a baseline made with the same setup (else exit 2)."""
    from adacli import gate

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
    from adacli import gate, report

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

    from adacli import gate

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
