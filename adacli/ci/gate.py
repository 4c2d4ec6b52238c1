"""The regression gate: judge a comparison run against a saved baseline (DESIGN.md section 1, issue 4).

A *baseline* is a small JSON file written after a trusted run (``adacli compare RECIPE --save-baseline
FILE``). It keeps, per optimizer label, the per-seed figures the gate judges (final test accuracy,
generalization gap, steps-to-target, status, step time), the resolved class and hyperparameters, the
run's summary, the training-loss target the run used, and content hashes of the setup (model, dataset,
budget, seeds, precision, schedule). A later run of the same recipe is judged against it
(``compare --baseline`` or ``adacli gate RUN_DIR --baseline``).

Why the gate looks at per-seed values rather than only at the summary: with the setup hash matching,
seed ``s`` in the baseline and seed ``s`` now share the model initialisation and the batch order, so
per-seed comparisons (did *this* seed newly diverge, does it still reach the target) are meaningful.

Why steps-to-target is recomputed with the *baseline's* target value: the default target is derived from
the run itself (the level every optimizer reached), so a regressed optimizer would move the target and
hide its own slowdown. Judging both runs against one fixed level keeps the figure comparable.

Allowed accuracy drop (and gap growth): ``max(tolerance, k * sigma)``. ``sigma`` pools the seed spread
of the baseline and of the current run, ``sqrt((sb**2 + min(sc, SPREAD_CAP * sb)**2) / 2)``: the pooled
figure is a better estimate of the run-to-run noise than the baseline's alone (two or three seeds give a
rough spread), but the current run's share is capped at ``SPREAD_CAP`` times the baseline's, because a
change that makes training unstable widens its own spread and must not buy itself a looser allowance.
With a single baseline seed there is no spread and only the tolerance applies.

This module computes and renders verdicts; it does not print (the CLI does).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adacli.errors import InputError
from adacli.recipe import BudgetSpec, DatasetSpec, GateSpec, ModelSpec, Recipe, ScheduleSpec

if TYPE_CHECKING:  # imported lazily at run time: metrics/report pull in plotting and rich
    from rich.table import Table

    from adacli.report.tables import RunData
    from adacli.results import Target, TrialResult

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "adacli-baseline"
#: The parts of a recipe that define "the same experiment"; a baseline is refused when one differs.
SETUP_PARTS = ("model", "dataset", "budget", "seeds", "precision", "schedule")
#: The current run's seed spread counts at most this many times the baseline's (see the module doc).
SPREAD_CAP = 2.0

Verdict = Literal["pass", "fail", "info", "skip"]


# --- setup hashes ----------------------------------------------------------------------------------


def _recipe_dict(recipe: Recipe | dict[str, Any]) -> dict[str, Any]:
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
    data = _recipe_dict(recipe)
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
        from adacli.results import Target

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
    """Build a baseline from a finished run's parts (the same parts ``report.save_run`` takes)."""
    data = _recipe_dict(recipe)
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


def baseline_from_run(run: RunData, run_dir: str | Path | None = None) -> Baseline:
    """A baseline from a loaded run folder (``report.load_run``)."""
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
    from adacli.report.tables import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, _finite(baseline.to_dict()), indent=2)
    return path


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
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
    name = _recipe_dict(recipe).get("name")
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


# --- tolerances and checks -------------------------------------------------------------------------


@dataclass
class Tolerances:
    """How much worse a run may be before the gate fails (GateSpec, overridable per CLI flag)."""

    accuracy_drop: float = 1.0  # points
    sigma_k: float = 2.0
    gap_growth: float = 2.0  # points
    steps_growth: float = 0.25  # relative
    step_time_growth: float | None = None  # relative; None = not checked

    @classmethod
    def from_spec(
        cls, spec: GateSpec | dict[str, Any] | None = None, **overrides: float | None
    ) -> Tolerances:
        """The recipe's gate section, then every override that is not None (CLI flags)."""
        if spec is None:
            spec = GateSpec()
        elif isinstance(spec, dict):
            from pydantic import ValidationError

            try:
                spec = GateSpec.model_validate(spec)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in ("gate", *err["loc"]))
                raise InputError(err["msg"], field=where, allowed=list(GateSpec.model_fields)) from None
        values = spec.model_dump()
        for key, value in overrides.items():
            if key not in values:
                raise TypeError(f"unknown tolerance {key!r}")
            if value is not None:
                if value < 0:
                    raise InputError("must be >= 0", field="--" + key.replace("_", "-"))
                values[key] = float(value)
        return cls(**values)


@dataclass
class Check:
    """One row of the verdict table."""

    optimizer: str
    check: str
    verdict: Verdict
    baseline: str = ""
    current: str = ""
    allowed: str = ""
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)  # the numbers behind the strings (for --json)

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"


@dataclass
class GateResult:
    """Every check, plus notes; ``passed`` decides the exit code."""

    checks: list[Check]
    tolerances: Tolerances
    notes: list[str] = field(default_factory=list)
    baseline_path: str | None = None
    run_dir: str | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "n_checks": len(self.checks),
            "n_failed": len(self.failures),
            "baseline": self.baseline_path,
            "run_dir": self.run_dir,
            "tolerances": asdict(self.tolerances),
            "notes": list(self.notes),
            "checks": [asdict(c) for c in self.checks],
        }


def _mean_std(values: Sequence[float]) -> tuple[float | None, float]:
    """Mean and sample std with the run summary's convention (``metrics.stat``), so the gate's figures
    match the numbers in the report table."""
    from adacli.analysis.metrics import stat

    s = stat(values)
    return s.mean, (s.std or 0.0)


def noise_sigma(base_std: float, base_n: int, cur_std: float, cur_n: int) -> float:
    """The seed spread the allowance is scaled by (see the module doc for why it looks like this)."""
    if base_n < 2:
        return 0.0
    if cur_n < 2:
        return base_std
    capped = min(cur_std, SPREAD_CAP * base_std)
    return math.sqrt((base_std**2 + capped**2) / 2.0)


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _fmt_stat(mean: float | None, std: float, n: int, unit: str = "", digits: int = 2) -> str:
    if mean is None:
        return "-"
    if n > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}{unit}"
    return f"{mean:.{digits}f}{unit}"


def _fmt_hparam(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_fmt_hparam(v) for v in value) + ")"
    return str(value)


def hparam_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable changes, e.g. ``lr 0.001 -> 1e-05``; lists and tuples compare equal (JSON has no tuple)."""

    def norm(v: Any) -> Any:
        return [norm(x) for x in v] if isinstance(v, (list, tuple)) else v

    out = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            out.append(f"{key} {_fmt_hparam(old[key])} -> (removed)")
        elif key not in old:
            out.append(f"{key} (new) {_fmt_hparam(new[key])}")
        elif norm(old[key]) != norm(new[key]):
            out.append(f"{key} {_fmt_hparam(old[key])} -> {_fmt_hparam(new[key])}")
    return out


def _spread_note(base_std: float, base_n: int, cur_std: float, cur_n: int) -> str:
    if base_n >= 2 and cur_n >= 2 and cur_std > SPREAD_CAP * base_std and cur_std > 0:
        ratio = cur_std / base_std if base_std > 0 else math.inf
        shown = f"{ratio:.1f}x" if math.isfinite(ratio) else "far above"
        return f"seed spread {cur_std:.2f} is {shown} the baseline's (counted at most {SPREAD_CAP:g}x)"
    return ""


def _judge_drop(
    label: str,
    name: str,
    base: OptimizerRecord,
    cur: OptimizerRecord,
    attr: str,
    tolerance: float,
    k: float,
    *,
    higher_is_better: bool,
    unit: str,
) -> Check:
    """An absolute-difference check on a per-seed figure (accuracy: drop; gap: growth)."""
    bvals, cvals = base.values(attr), cur.values(attr)
    bmean, bstd = _mean_std(bvals)
    cmean, cstd = _mean_std(cvals)
    sigma = noise_sigma(bstd, len(bvals), cstd, len(cvals))
    allowed = max(tolerance, k * sigma)
    allowed_text = f"{'-' if higher_is_better else '+'}{allowed:.2f}{unit}"
    if k * sigma > tolerance:
        allowed_text += f" ({k:g}σ, σ={sigma:.2f})"
    values: dict[str, Any] = {
        "baseline_mean": bmean,
        "baseline_std": bstd,
        "baseline_n": len(bvals),
        "current_mean": cmean,
        "current_std": cstd,
        "current_n": len(cvals),
        "sigma": sigma,
        "allowed": allowed,
    }
    btext, ctext = _fmt_stat(bmean, bstd, len(bvals), unit), _fmt_stat(cmean, cstd, len(cvals), unit)
    if bmean is None:
        return Check(label, name, "skip", btext, ctext, allowed_text, "no finished baseline trial", values)
    if cmean is None:
        return Check(label, name, "fail", btext, ctext, allowed_text, "no finished trial in this run", values)
    worse = (bmean - cmean) if higher_is_better else (cmean - bmean)
    values["worse_by"] = worse
    detail = f"{'dropped' if higher_is_better else 'grew'} {worse:.2f}{unit}" if worse > 0 else ""
    spread = _spread_note(bstd, len(bvals), cstd, len(cvals))
    detail = "; ".join(x for x in (detail, spread) if x)
    verdict: Verdict = "fail" if worse > allowed + 1e-9 else "pass"
    return Check(label, name, verdict, btext, ctext, allowed_text, detail, values)


def _judge_steps(label: str, base: OptimizerRecord, cur: OptimizerRecord, tol: Tolerances) -> list[Check]:
    """Steps-to-target growth, and seeds that reached the target in the baseline but not now.

    Over the seeds that reached in the baseline and finished now. A seed censored now counts at its
    budget (it needed *at least* that many steps), so the growth is then a lower bound, shown as ``>=``:
    a lower bound beyond the allowance is a certain regression, one within it is not proof of health,
    which the "target reached" row makes visible.
    """
    base_reached = [t for t in base.trials if t.status == "ok" and t.steps_to_target is not None]
    if not base_reached:
        return [Check(label, "steps to target", "skip", "not reached", "", "", "no baseline seed reached it")]
    cur_by_seed = cur.by_seed()
    seeds: list[int] = []
    bsteps: list[int] = []
    csteps: list[int] = []  # a censored seed counts at its budget (a lower bound)
    lost: list[str] = []  # reached before; censored now although the allowance fitted in the budget
    close: list[str] = []  # censored now, but the baseline crossed too near the budget to tell
    for b in base_reached:
        c = cur_by_seed.get(b.seed)
        if c is None or c.status != "ok":
            continue  # judged by the "trials finished" check
        assert b.steps_to_target is not None
        seeds.append(b.seed)
        bsteps.append(b.steps_to_target)
        if c.steps_to_target is not None:
            csteps.append(c.steps_to_target)
            continue
        csteps.append(c.steps_done)
        where = f"seed {b.seed} (baseline step {b.steps_to_target}, budget {c.steps_done})"
        if c.steps_done >= b.steps_to_target * (1 + tol.steps_growth):
            lost.append(where)
        else:
            close.append(where)
    checks = []
    censored = len(lost) + len(close)
    if seeds:
        bmean, bstd = _mean_std(bsteps)
        cmean, cstd = _mean_std(csteps)
        assert bmean is not None and cmean is not None
        growth = cmean / bmean - 1.0 if bmean > 0 else 0.0
        sigma_rel = noise_sigma(bstd, len(bsteps), cstd, len(csteps)) / bmean if bmean > 0 else 0.0
        allowed = max(tol.steps_growth, tol.sigma_k * sigma_rel)
        allowed_text = f"+{allowed:.0%}" + (
            f" ({tol.sigma_k:g}σ)" if tol.sigma_k * sigma_rel > tol.steps_growth else ""
        )
        bound = ">=" if censored else ""
        detail = f"{bound}{growth:+.0%} over seeds {', '.join(map(str, seeds))}"
        if censored:
            detail += f" ({censored} censored, counted at the budget)"
        checks.append(
            Check(
                label,
                "steps to target",
                "fail" if growth > allowed + 1e-9 else "pass",
                _fmt_stat(bmean, bstd, len(bsteps), digits=0),
                bound + _fmt_stat(cmean, cstd, len(csteps), digits=0),
                allowed_text,
                detail,
                {
                    "baseline_mean": bmean,
                    "baseline_std": bstd,
                    "current_mean": cmean,
                    "current_std": cstd,
                    "growth": growth,
                    "lower_bound": bool(censored),
                    "allowed": allowed,
                    "seeds": seeds,
                },
            )
        )
    parts = []
    if lost:
        parts.append("no longer reached: " + "; ".join(lost))
    if close:
        parts.append(
            "not reached, but the baseline crossed too near the budget to judge: " + "; ".join(close)
        )
    checks.append(
        Check(
            label,
            "target reached",
            "fail" if lost else "pass",
            f"{len(base_reached)}/{len(base.trials)}",
            f"{len(seeds) - censored}/{len(seeds)}" if seeds else "-",
            "no seed lost",
            "; ".join(parts),
            {"baseline_reached": len(base_reached), "lost": lost, "too_close": close},
        )
    )
    return checks


def _judge_trials(label: str, base: OptimizerRecord, cur: OptimizerRecord) -> Check:
    """A seed that finished in the baseline must finish now (not diverge, fail, stop or go missing)."""
    cur_by_seed = cur.by_seed()
    newly = []
    for b in base.trials:
        if b.status != "ok":
            continue
        c = cur_by_seed.get(b.seed)
        if c is None:
            newly.append(f"seed {b.seed} missing")
        elif c.status != "ok":
            newly.append(f"seed {b.seed} {c.status}")
    b_ok = sum(t.status == "ok" for t in base.trials)
    c_ok = sum(t.status == "ok" for t in cur.trials)
    b_div = sum(t.status == "diverged" for t in base.trials)
    c_div = sum(t.status == "diverged" for t in cur.trials)
    return Check(
        label,
        "trials finished",
        "fail" if newly else "pass",
        f"{b_ok}/{len(base.trials)} ok" + (f", {b_div} diverged" if b_div else ""),
        f"{c_ok}/{len(cur.trials)} ok" + (f", {c_div} diverged" if c_div else ""),
        "none new",
        ("newly not finished: " + ", ".join(newly)) if newly else "",
        {
            "baseline_ok": b_ok,
            "current_ok": c_ok,
            "baseline_diverged": b_div,
            "current_diverged": c_div,
            "newly_not_ok": newly,
        },
    )


def _judge_step_time(label: str, base: OptimizerRecord, cur: OptimizerRecord, tol: Tolerances) -> Check:
    bvals, cvals = base.values("step_time_ms"), cur.values("step_time_ms")
    bmed = statistics.median(bvals) if bvals else None
    cmed = statistics.median(cvals) if cvals else None
    btext, ctext = _fmt(bmed, " ms"), _fmt(cmed, " ms")
    if tol.step_time_growth is None:
        return Check(
            label,
            "step time",
            "skip",
            btext,
            ctext,
            "off",
            "opt-in (--step-time-growth)",
        )
    allowed_text = f"+{tol.step_time_growth:.0%}"
    if bmed is None or cmed is None or bmed <= 0:
        return Check(label, "step time", "skip", btext, ctext, allowed_text, "no step time measured")
    growth = cmed / bmed - 1.0
    return Check(
        label,
        "step time",
        "fail" if growth > tol.step_time_growth + 1e-9 else "pass",
        btext,
        ctext,
        allowed_text,
        f"{growth:+.0%}",
        {"baseline_median": bmed, "current_median": cmed, "growth": growth, "allowed": tol.step_time_growth},
    )


def judge(
    baseline: Sequence[OptimizerRecord], current: Sequence[OptimizerRecord], tol: Tolerances
) -> list[Check]:
    """Every check for every optimizer label; pure (records in, verdicts out).

    Baseline labels missing now fail (a silently dropped optimizer would pass every other check); new
    labels are reported, not judged. Changed hyperparameters or class are reported, and the label is
    still judged: that is how "the same label with a much smaller learning rate" gets caught.
    """
    checks: list[Check] = []
    cur_by_label = {r.label: r for r in current}
    base_labels = {r.label for r in baseline}
    for base in baseline:
        label = base.label
        cur = cur_by_label.get(label)
        if cur is None:
            checks.append(
                Check(
                    label,
                    "present",
                    "fail",
                    "present",
                    "missing",
                    "present",
                    "optimizer in the baseline but not in this run",
                    {"available": sorted(cur_by_label)},
                )
            )
            continue
        changes = hparam_changes(base.hparams, cur.hparams)
        if base.optimizer_class != cur.optimizer_class:
            changes.insert(0, f"class {base.optimizer_class} -> {cur.optimizer_class}")
        if changes:
            checks.append(
                Check(label, "setup changed", "info", "", "", "", "; ".join(changes), {"changes": changes})
            )
        checks.append(_judge_trials(label, base, cur))
        checks.append(
            _judge_drop(
                label,
                "final test accuracy",
                base,
                cur,
                "final_test_accuracy",
                tol.accuracy_drop,
                tol.sigma_k,
                higher_is_better=True,
                unit="",
            )
        )
        checks.append(
            _judge_drop(
                label,
                "generalization gap",
                base,
                cur,
                "generalization_gap",
                tol.gap_growth,
                tol.sigma_k,
                higher_is_better=False,
                unit="",
            )
        )
        checks.extend(_judge_steps(label, base, cur, tol))
        checks.append(_judge_step_time(label, base, cur, tol))
    for cur in current:
        if cur.label not in base_labels:
            acc, std = _mean_std(cur.values("final_test_accuracy"))
            checks.append(
                Check(
                    cur.label,
                    "new optimizer",
                    "info",
                    "-",
                    _fmt_stat(acc, std, len(cur.values("final_test_accuracy"))),
                    "",
                    "not in the baseline: reported, not judged (save a new baseline to judge it)",
                )
            )
    return checks


# --- whole-run entry points ------------------------------------------------------------------------


def tolerances_for(recipe: Recipe | dict[str, Any] | None, **overrides: float | None) -> Tolerances:
    """Tolerances from a recipe's ``gate:`` section, overridden by the non-None keyword arguments."""
    spec = None
    if recipe is not None:
        data = _recipe_dict(recipe)
        spec = data.get("gate") or None
    return Tolerances.from_spec(spec, **overrides)


def gate_run(
    run: RunData,
    baseline: Baseline,
    tolerances: Tolerances,
    *,
    baseline_path: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> GateResult:
    """Judge a loaded run (``report.load_run``) against a baseline.

    Raises InputError when the setups differ. Steps-to-target of the run is recomputed against the
    baseline's target value (see the module doc).
    """
    notes = check_setup(baseline, run.recipe, baseline_path=baseline_path)
    notes += environment_notes(baseline.environment, run.environment or {})
    target = baseline.target_obj()
    if target.value is None:
        notes.append("the baseline has no target value: steps-to-target is not judged")
    current = records_from_trials(run.trials, target)
    checks = judge(baseline.optimizers, current, tolerances)
    if target.value is not None:
        notes.append(
            f"steps to target: both runs measured at the baseline's target, smoothed training loss "
            f"{target.value:.4g}"
        )
    return GateResult(
        checks,
        tolerances,
        notes,
        baseline_path=str(baseline_path) if baseline_path is not None else None,
        run_dir=str(run_dir) if run_dir is not None else None,
    )


# --- rendering -------------------------------------------------------------------------------------

_VERDICT_STYLE = {
    "pass": "[green]PASS[/]",
    "fail": "[bold red]FAIL[/]",
    "info": "[cyan]info[/]",
    "skip": "[dim]skip[/]",
}


def gate_table(result: GateResult, title: str = "regression gate") -> Table:
    """A rich table of every check: baseline, current, allowed, verdict and why."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col, kw in (
        ("optimizer", {"style": "bold"}),
        ("check", {}),
        ("baseline", {"justify": "right"}),
        ("current", {"justify": "right"}),
        ("allowed", {"justify": "right"}),
        ("verdict", {}),
        ("detail", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    last = None
    for c in result.checks:
        if last is not None and c.optimizer != last:
            table.add_section()
        table.add_row(
            c.optimizer if c.optimizer != last else "",
            c.check,
            c.baseline,
            c.current,
            c.allowed,
            _VERDICT_STYLE.get(c.verdict, c.verdict),
            c.detail,
        )
        last = c.optimizer
    n_fail = len(result.failures)
    table.caption = (
        f"[bold red]{n_fail} regression{'s' if n_fail != 1 else ''}[/]"
        if n_fail
        else "[green]no regression[/]"
    )
    return table


def write_junit_xml(result: GateResult, path: str | Path) -> Path:
    """JUnit XML (one testcase per check) for CI test reporters; info rows are passing cases."""
    from xml.etree import ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="adacli.gate",
        tests=str(len(result.checks)),
        failures=str(len(result.failures)),
        errors="0",
        skipped=str(sum(c.verdict == "skip" for c in result.checks)),
    )
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"adacli.gate.{c.optimizer}", name=c.check)
        text = f"baseline {c.baseline}; current {c.current}; allowed {c.allowed}" + (
            f"; {c.detail}" if c.detail else ""
        )
        if c.verdict == "fail":
            ET.SubElement(case, "failure", message=c.detail or "regression", type="regression").text = text
        elif c.verdict == "skip":
            ET.SubElement(case, "skipped", message=c.detail or "skipped")
        else:
            ET.SubElement(case, "system-out").text = text
    if result.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(result.notes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites", name="adacli")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
