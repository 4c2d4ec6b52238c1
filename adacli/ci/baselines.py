"""Gate baselines: what a trusted run leaves for later runs to be judged against (DESIGN.md section 1).

A *baseline* is a small JSON file written after a trusted run (``adacli compare RECIPE --save-baseline
FILE``). It keeps, per optimizer label, the per-seed figures the gate judges (final test accuracy,
generalization gap, steps-to-target, status, step time), the resolved class and hyperparameters, the
run's summary, the training-loss target the run used, and content hashes of the setup (model, dataset,
budget, seeds, precision, schedule). A suite baseline holds one per workload. :mod:`adacli.ci.gate`
judges a run against one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adacli.errors import InputError
from adacli.files import write_atomic
from adacli.recipe import BudgetSpec, DatasetSpec, GateSpec, ModelSpec, Recipe, ScheduleSpec
from adacli.recipe.suite import Suite
from adacli.results import OptimizerSummary, Target, TrialResult, dumps

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "adacli-baseline"
SUITE_BASELINE_KIND = "adacli-suite-baseline"
#: The parts of a recipe that define "the same experiment"; a baseline is refused when one differs.
SETUP_PARTS = ("model", "dataset", "budget", "seeds", "precision", "schedule")


class FinishedRun(Protocol):
    """What the gate reads of a run (``adacli.run.store.RunData`` has it)."""

    recipe: dict[str, Any]
    environment: dict[str, Any]
    trials: list[TrialResult]
    summaries: list[OptimizerSummary]
    target: Target | None
    run_dir: Path


# --- setup hashes ----------------------------------------------------------------------------------


def recipe_dict(recipe: Recipe | dict[str, Any]) -> dict[str, Any]:
    if isinstance(recipe, Recipe):
        return recipe.model_dump(mode="json")
    return dict(recipe)


def _normalized(model_cls: type, value: Any) -> Any:
    """Fill defaults through the recipe model, so `{}` and an explicit default hash the same."""
    if value is None:
        return None
    try:
        return model_cls.model_validate(value).model_dump(mode="json")
    except Exception:  # a dict from an older/newer recipe schema: hash it as stored
        return value


def setup_slices(recipe: Recipe | dict[str, Any]) -> dict[str, Any]:
    """The normalized parts of a recipe that must match between a baseline and a gated run.

    Left out on purpose: the device (CI machines differ; step time is opt-in for that reason), the
    dataset's ``root``/``download`` (the same data lives at different paths on different machines),
    the budget's ``eval_every``/``eval_batch_size`` (they change when and how the test split is
    measured, not the training), the model's ``channels_last``/``compile`` (speed, not results), the
    target (the gate uses the baseline's target value), the sweep section and the optimizers (judged
    label by label; changed hyperparameters are reported).
    """
    data = recipe_dict(recipe)
    model = _normalized(ModelSpec, data.get("model"))
    if isinstance(model, dict):
        model = {"name": model.get("name"), "kwargs": model.get("kwargs") or {}}
    dataset = _normalized(DatasetSpec, data.get("dataset"))
    if isinstance(dataset, dict):
        dataset = {k: v for k, v in dataset.items() if k not in ("root", "download")}
    budget = _normalized(BudgetSpec, data.get("budget"))
    if isinstance(budget, dict):
        budget = {k: v for k, v in budget.items() if k not in ("eval_every", "eval_batch_size")}
    seeds = data.get("seeds", 1)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    return {
        "model": model,
        "dataset": dataset,
        "budget": budget,
        "seeds": seeds,
        "precision": data.get("precision", "fp32"),
        "schedule": _normalized(ScheduleSpec, data.get("schedule")),
    }


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def setup_hashes(recipe: Recipe | dict[str, Any]) -> dict[str, str]:
    """Content hash of each setup part (16 hex digits of SHA-256 over canonical JSON)."""
    return {part: _hash(value) for part, value in setup_slices(recipe).items()}


# --- records ---------------------------------------------------------------------------------------


@dataclass
class SeedRecord:
    """What the gate keeps of one trial."""

    seed: int
    status: str  # "ok" | "diverged" | "failed" | "interrupted"
    steps_done: int
    final_test_accuracy: float | None = None  # percent
    generalization_gap: float | None = None  # train-eval accuracy - test accuracy, points
    steps_to_target: int | None = None  # None: censored (target not reached)
    step_time_ms: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRecord:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class OptimizerRecord:
    """One optimizer label in a run: what it was, and its per-seed figures."""

    label: str
    optimizer_class: str
    hparams: dict[str, Any]
    trials: list[SeedRecord] = field(default_factory=list)

    def by_seed(self) -> dict[int, SeedRecord]:
        return {t.seed: t for t in self.trials}

    def values(self, name: str) -> list[float]:
        """A figure over the seeds that finished normally (diverged/failed trials are judged apart)."""
        out = []
        for t in self.trials:
            v = getattr(t, name)
            if t.status == "ok" and v is not None and math.isfinite(v):
                out.append(float(v))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizerRecord:
        return cls(
            label=data["label"],
            optimizer_class=data.get("optimizer_class", ""),
            hparams=dict(data.get("hparams") or {}),
            trials=[SeedRecord.from_dict(t) for t in data.get("trials", [])],
        )


def records_from_trials(trials: Iterable[TrialResult], target: Target | None) -> list[OptimizerRecord]:
    """Per-label records from trial results; steps-to-target measured against ``target``.

    Labels keep the order of their first trial, like the run's summary table.
    """
    from adacli.analysis import metrics

    records: dict[str, OptimizerRecord] = {}
    for trial in trials:
        rec = records.get(trial.label)
        if rec is None:
            rec = records[trial.label] = OptimizerRecord(
                trial.label, trial.optimizer_class, dict(trial.hparams)
            )
        # The same rule as the run's summary: a history that broke the divergence rule is "diverged"
        # even when the status field was not set (results from another tool or an older adacli).
        status = "diverged" if metrics.trial_diverged(trial) else trial.status
        usable = metrics.usable(trial)
        reached = None
        if usable and target is not None and target.value is not None:
            reached = metrics.steps_to_target(trial, target)
        rec.trials.append(
            SeedRecord(
                seed=trial.seed,
                status=status,
                steps_done=trial.steps_done,
                final_test_accuracy=metrics.final_test_accuracy(trial),
                generalization_gap=metrics.generalization_gap(trial),
                steps_to_target=reached,
                step_time_ms=trial.step_time_ms,
            )
        )
    return list(records.values())


# --- the baseline file -----------------------------------------------------------------------------


@dataclass
class Baseline:
    """The reference a gated run is judged against (one JSON file)."""

    recipe_name: str
    setup: dict[str, str]  # part -> hash
    setup_detail: dict[str, Any]  # part -> the normalized slice (to say *what* differs)
    target: dict[str, Any]  # the run's Target as a dict (metric, value, source, description)
    optimizers: list[OptimizerRecord]
    environment: dict[str, Any] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)  # the run's OptimizerSummary dicts
    gate: dict[str, Any] = field(default_factory=dict)  # the recipe's gate section when saved
    created: str = ""
    source_run: str | None = None  # the run folder the baseline was made from
    schema_version: int = BASELINE_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"kind": BASELINE_KIND, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        return cls(
            recipe_name=data["recipe_name"],
            setup=dict(data["setup"]),
            setup_detail=dict(data.get("setup_detail") or {}),
            target=dict(data.get("target") or {}),
            optimizers=[OptimizerRecord.from_dict(o) for o in data["optimizers"]],
            environment=dict(data.get("environment") or {}),
            summaries=list(data.get("summaries") or []),
            gate=dict(data.get("gate") or {}),
            created=data.get("created", ""),
            source_run=data.get("source_run"),
            schema_version=int(data.get("schema_version", BASELINE_SCHEMA_VERSION)),
        )

    def target_obj(self) -> Target:
        t = self.target
        return Target(
            metric=t.get("metric", "train_loss"),
            value=t.get("value"),
            source=t.get("source", "default"),
            description=t.get("description", ""),
        )


def make_baseline(
    *,
    recipe: Recipe | dict[str, Any],
    environment: dict[str, Any],
    trials: Sequence[TrialResult],
    summaries: Sequence[Any],
    target: Target,
    source_run: str | Path | None = None,
) -> Baseline:
    """Build a baseline from a finished run's parts (recipe, environment, trials, summaries, target)."""
    data = recipe_dict(recipe)
    summary_dicts = [s.to_dict() if hasattr(s, "to_dict") else dict(s) for s in summaries]
    return Baseline(
        recipe_name=str(data.get("name", "")),
        setup=setup_hashes(data),
        setup_detail=setup_slices(data),
        target=asdict(target),
        optimizers=records_from_trials(trials, target),
        environment=dict(environment),
        summaries=summary_dicts,
        gate=_normalized(GateSpec, data.get("gate") or {}) or {},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        source_run=str(source_run) if source_run is not None else None,
    )


def baseline_from_run(run: FinishedRun, run_dir: str | Path | None = None) -> Baseline:
    """A baseline from a run (saved just now, or loaded from its folder)."""
    return make_baseline(
        recipe=run.recipe,
        environment=run.environment,
        trials=run.trials,
        summaries=run.summaries,
        target=run.target,
        source_run=run_dir,
    )


def save_baseline(baseline: Baseline, path: str | Path) -> Path:
    """Write the baseline as indented, strict JSON (diff-friendly when committed; any parser reads it).

    Non-finite numbers (the accuracy of a diverged trial) become null: the gate never judges them.
    """
    return write_atomic(path, dumps(finite_or_null(baseline.to_dict()), indent=2))


def finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def read_baseline_json(
    path: str | Path, kind: str, command: str, name: str
) -> tuple[dict[str, Any], str]:
    """The JSON object of a baseline file of ``kind`` and the hint for later errors; InputError (exit 2)
    when it is missing, unreadable, not JSON or of another kind. ``command`` makes one (e.g. ``adacli
    compare RECIPE``), ``name`` says what the file should be (``an adacli baseline``). Shared by recipe and
    suite baselines, so both say the same things and neither suggests writing over the file given."""
    path = Path(path)
    if not path.is_file():
        hint = f"create one with: {command} --save-baseline {path}"
        raise InputError(f"baseline file not found; {hint}", file=str(path))
    # The file exists but is no baseline (often a run's own results.json): never suggest writing over it.
    hint = f"make a baseline in a new file with: {command} --save-baseline .adacli/baseline.json"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg}", file=str(path), line=e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the baseline: {e}", file=str(path)) from None
    if not isinstance(data, dict) or data.get("kind") != kind:
        what = "a run's results.json, " if isinstance(data, dict) and "trials" in data else ""
        raise InputError(f'{what}not {name} (no "kind": "{kind}"); {hint}', file=str(path))
    return data, hint


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline file; InputError (exit 2) when it is missing, not JSON or not a baseline."""
    data, hint = read_baseline_json(path, BASELINE_KIND, "adacli compare RECIPE", "an adacli baseline")
    version = data.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise InputError(
            f"baseline schema version {version} is not supported (this adacli reads "
            f"{BASELINE_SCHEMA_VERSION}); {hint}",
            file=str(path),
            field="schema_version",
        )
    try:
        return Baseline.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"malformed baseline ({type(e).__name__}: {e}); {hint}", file=str(path)) from None


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slice_diff(old: Any, new: Any) -> str:
    """`key: old -> new` for the keys of two dict slices that differ, else the two values."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        parts = [
            f"{k} {_short(old.get(k), 40)} -> {_short(new.get(k), 40)}"
            for k in keys
            if old.get(k) != new.get(k)
        ]
        if parts:
            return ", ".join(parts)
    return f"{_short(old)} -> {_short(new)}"


def check_setup(
    baseline: Baseline, recipe: Recipe | dict[str, Any], *, baseline_path: str | Path | None = None
) -> list[str]:
    """Refuse a baseline made with another setup (InputError naming the parts); return notes.

    Notes are differences that do not invalidate the comparison but are worth reading: another recipe
    name, another machine or library version.
    """
    current = setup_hashes(recipe)
    detail = setup_slices(recipe)
    differing = [p for p in SETUP_PARTS if baseline.setup.get(p) != current.get(p)]
    if differing:
        explained = "; ".join(
            f"{p} differs ({_slice_diff(baseline.setup_detail.get(p), detail.get(p))})"
            if p in baseline.setup_detail
            else f"{p} differs (hash {baseline.setup.get(p)} -> {current[p]})"
            for p in differing
        )
        raise InputError(
            f"the baseline was made with a different setup: {explained}; make a new baseline from this "
            "recipe with: adacli compare RECIPE --save-baseline FILE",
            file=str(baseline_path) if baseline_path is not None else None,
            field="setup." + differing[0],
        )
    notes = []
    name = recipe_dict(recipe).get("name")
    if name and baseline.recipe_name and name != baseline.recipe_name:
        notes.append(f"recipe name differs: baseline {baseline.recipe_name!r}, current {name!r}")
    return notes


def environment_notes(baseline_env: dict[str, Any], current_env: dict[str, Any]) -> list[str]:
    """Differences in versions/device between the two runs (not failures: machines differ in CI)."""
    notes = []
    for key in sorted(set(baseline_env) | set(current_env)):
        old, new = baseline_env.get(key), current_env.get(key)
        if isinstance(old, (dict, list)) or isinstance(new, (dict, list)):
            continue
        if key in ("timestamp", "time", "date", "hostname", "host", "started", "finished"):
            continue
        if old != new and old is not None and new is not None:
            notes.append(f"environment {key}: baseline {old}, current {new}")
    return notes


def save_suite_baseline(suite_name: str, runs: dict[str, FinishedRun], path: str | Path) -> Path:
    """One file holding a gate baseline (:func:`baseline_from_run`) per workload (name -> its run)."""
    workloads = {
        name: finite_or_null(baseline_from_run(run, run.run_dir).to_dict()) for name, run in runs.items()
    }
    payload = {
        "kind": SUITE_BASELINE_KIND,
        "schema_version": BASELINE_SCHEMA_VERSION,
        "suite": suite_name,
        "workloads": workloads,
    }
    return write_atomic(path, dumps(payload, indent=2))


def load_suite_baseline(path: str | Path) -> dict[str, Baseline]:
    """The per-workload baselines of a suite baseline file (InputError, exit 2, when it is not one)."""
    data, hint = read_baseline_json(path, SUITE_BASELINE_KIND, "adacli suite SUITE", "a suite baseline")
    try:
        return {name: Baseline.from_dict(b) for name, b in dict(data["workloads"]).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"malformed suite baseline ({type(e).__name__}: {e}); {hint}", file=str(path)
        ) from None


def check_suite_baseline(suite: Suite, baselines: dict[str, Baseline], path: str | Path) -> None:
    """Before training: every workload has a baseline made with the same setup (else exit 2)."""
    for w in suite.workloads:
        if w.name not in baselines:
            raise InputError(
                f"no baseline for workload {w.name!r}; make a new one with --save-baseline",
                file=str(path),
                allowed=sorted(baselines),
            )
        try:
            check_setup(baselines[w.name], w.recipe, baseline_path=path)
        except InputError as e:
            raise InputError(f"workload {w.name!r}: {e.message}", file=e.file, field=e.field) from None
