"""The regression gate: judge a comparison run against a saved baseline (DESIGN.md section 1).

A later run of the recipe a baseline (:mod:`adacli.ci.baselines`) was made from is judged against it
(``compare --baseline`` or ``adacli gate RUN_DIR --baseline``): every optimizer label, check by check.

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

This module computes verdicts; :mod:`adacli.report.gate` renders them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from adacli.ci.baselines import (
    Baseline,
    FinishedRun,
    OptimizerRecord,
    SeedRecord,
    check_setup,
    environment_notes,
    recipe_dict,
    records_from_trials,
)
from adacli.errors import InputError
from adacli.recipe import GateSpec, Recipe
from adacli.results import TrialResult

#: The current run's seed spread counts at most this many times the baseline's (see the module doc).
SPREAD_CAP = 2.0

#: what one check says
CheckOutcome = Literal["pass", "fail", "info", "skip"]


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
            if value is not None:  # a command-line flag: checked by the same model, named as the flag
                from pydantic import ValidationError

                from adacli.recipe.options import option_error

                try:
                    GateSpec.model_validate({key: value})
                except ValidationError as e:
                    raise option_error(e, GateSpec) from None
                values[key] = float(value)
        return cls(**values)


@dataclass
class GateCheck:
    """One row of the verdict table."""

    optimizer: str
    check: str
    verdict: CheckOutcome
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

    checks: list[GateCheck]
    tolerances: Tolerances
    notes: list[str] = field(default_factory=list)
    baseline_path: str | None = None
    run_dir: str | None = None

    @property
    def failures(self) -> list[GateCheck]:
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
) -> GateCheck:
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
        return GateCheck(
            label, name, "skip", btext, ctext, allowed_text, "no finished baseline trial", values
        )
    if cmean is None:
        return GateCheck(
            label, name, "fail", btext, ctext, allowed_text, "no finished trial in this run", values
        )
    worse = (bmean - cmean) if higher_is_better else (cmean - bmean)
    values["worse_by"] = worse
    detail = f"{'dropped' if higher_is_better else 'grew'} {worse:.2f}{unit}" if worse > 0 else ""
    spread = _spread_note(bstd, len(bvals), cstd, len(cvals))
    detail = "; ".join(x for x in (detail, spread) if x)
    verdict: CheckOutcome = "fail" if worse > allowed + 1e-9 else "pass"
    return GateCheck(label, name, verdict, btext, ctext, allowed_text, detail, values)


@dataclass
class _StepsPaired:
    """The seeds that reached the target in the baseline and finished now, with both step counts."""

    seeds: list[int] = field(default_factory=list)
    base: list[int] = field(default_factory=list)
    current: list[int] = field(default_factory=list)  # a censored seed counts at its budget (a lower bound)
    lost: list[str] = field(default_factory=list)  # reached before; censored now though the allowance fitted
    close: list[str] = field(default_factory=list)  # censored now, the baseline too near the budget to tell

    @property
    def censored(self) -> int:
        return len(self.lost) + len(self.close)


def _pair_steps(reached: list[SeedRecord], cur: OptimizerRecord, tol: Tolerances) -> _StepsPaired:
    paired = _StepsPaired()
    cur_by_seed = cur.by_seed()
    for b in reached:
        c = cur_by_seed.get(b.seed)
        if c is None or c.status != "ok" or b.steps_to_target is None:
            continue  # judged by the "trials finished" check
        paired.seeds.append(b.seed)
        paired.base.append(b.steps_to_target)
        if c.steps_to_target is not None:
            paired.current.append(c.steps_to_target)
            continue
        paired.current.append(c.steps_done)
        where = f"seed {b.seed} (baseline step {b.steps_to_target}, budget {c.steps_done})"
        late = c.steps_done >= b.steps_to_target * (1 + tol.steps_growth)
        (paired.lost if late else paired.close).append(where)
    return paired


def _steps_growth_check(label: str, p: _StepsPaired, tol: Tolerances) -> GateCheck:
    bmean, bstd = _mean_std(p.base)
    cmean, cstd = _mean_std(p.current)
    assert bmean is not None and cmean is not None
    growth = cmean / bmean - 1.0 if bmean > 0 else 0.0
    sigma_rel = noise_sigma(bstd, len(p.base), cstd, len(p.current)) / bmean if bmean > 0 else 0.0
    allowed = max(tol.steps_growth, tol.sigma_k * sigma_rel)
    allowed_text = f"+{allowed:.0%}" + (
        f" ({tol.sigma_k:g}σ)" if tol.sigma_k * sigma_rel > tol.steps_growth else ""
    )
    bound = ">=" if p.censored else ""
    detail = f"{bound}{growth:+.0%} over seeds {', '.join(map(str, p.seeds))}"
    if p.censored:
        detail += f" ({p.censored} censored, counted at the budget)"
    values = {
        "baseline_mean": bmean,
        "baseline_std": bstd,
        "current_mean": cmean,
        "current_std": cstd,
        "growth": growth,
        "lower_bound": bool(p.censored),
        "allowed": allowed,
        "seeds": p.seeds,
    }
    outcome: CheckOutcome = "fail" if growth > allowed + 1e-9 else "pass"
    base_text = _fmt_stat(bmean, bstd, len(p.base), digits=0)
    current_text = bound + _fmt_stat(cmean, cstd, len(p.current), digits=0)
    return GateCheck(label, "steps to target", outcome, base_text, current_text, allowed_text, detail, values)


def _reached_check(label: str, n_reached: int, n_base: int, p: _StepsPaired) -> GateCheck:
    parts = []
    if p.lost:
        parts.append("no longer reached: " + "; ".join(p.lost))
    if p.close:
        parts.append(
            "not reached, but the baseline crossed too near the budget to judge: " + "; ".join(p.close)
        )
    current = f"{len(p.seeds) - p.censored}/{len(p.seeds)}" if p.seeds else "-"
    values = {"baseline_reached": n_reached, "lost": p.lost, "too_close": p.close}
    outcome: CheckOutcome = "fail" if p.lost else "pass"
    return GateCheck(
        label,
        "target reached",
        outcome,
        f"{n_reached}/{n_base}",
        current,
        "no seed lost",
        "; ".join(parts),
        values,
    )


def _judge_steps(label: str, base: OptimizerRecord, cur: OptimizerRecord, tol: Tolerances) -> list[GateCheck]:
    """Steps-to-target growth, and seeds that reached the target in the baseline but not now.

    Over the seeds that reached in the baseline and finished now. A seed censored now counts at its
    budget (it needed *at least* that many steps), so the growth is then a lower bound, shown as ``>=``:
    a lower bound beyond the allowance is a certain regression, one within it is not proof of health,
    which the "target reached" row makes visible.
    """
    reached = [t for t in base.trials if t.status == "ok" and t.steps_to_target is not None]
    if not reached:
        return [
            GateCheck(label, "steps to target", "skip", "not reached", "", "", "no baseline seed reached it")
        ]
    paired = _pair_steps(reached, cur, tol)
    checks = [_steps_growth_check(label, paired, tol)] if paired.seeds else []
    return [*checks, _reached_check(label, len(reached), len(base.trials), paired)]


def _judge_trials(label: str, base: OptimizerRecord, cur: OptimizerRecord) -> GateCheck:
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
    return GateCheck(
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


def _judge_step_time(label: str, base: OptimizerRecord, cur: OptimizerRecord, tol: Tolerances) -> GateCheck:
    bvals, cvals = base.values("step_time_ms"), cur.values("step_time_ms")
    bmed = statistics.median(bvals) if bvals else None
    cmed = statistics.median(cvals) if cvals else None
    btext, ctext = _fmt(bmed, " ms"), _fmt(cmed, " ms")
    if tol.step_time_growth is None:
        return GateCheck(
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
        return GateCheck(label, "step time", "skip", btext, ctext, allowed_text, "no step time measured")
    growth = cmed / bmed - 1.0
    return GateCheck(
        label,
        "step time",
        "fail" if growth > tol.step_time_growth + 1e-9 else "pass",
        btext,
        ctext,
        allowed_text,
        f"{growth:+.0%}",
        {"baseline_median": bmed, "current_median": cmed, "growth": growth, "allowed": tol.step_time_growth},
    )


def _judge_label(base: OptimizerRecord, cur: OptimizerRecord, tol: Tolerances) -> list[GateCheck]:
    """Every check of one label present in both runs (changed hyperparameters reported, then judged)."""
    label = base.label
    checks: list[GateCheck] = []
    changes = hparam_changes(base.hparams, cur.hparams)
    if base.optimizer_class != cur.optimizer_class:
        changes.insert(0, f"class {base.optimizer_class} -> {cur.optimizer_class}")
    if changes:
        checks.append(
            GateCheck(label, "setup changed", "info", detail="; ".join(changes), values={"changes": changes})
        )
    checks.append(_judge_trials(label, base, cur))
    for name, attr, tolerance, higher in (
        ("final test accuracy", "final_test_accuracy", tol.accuracy_drop, True),
        ("generalization gap", "generalization_gap", tol.gap_growth, False),
    ):
        checks.append(
            _judge_drop(
                label, name, base, cur, attr, tolerance, tol.sigma_k, higher_is_better=higher, unit=""
            )
        )
    checks.extend(_judge_steps(label, base, cur, tol))
    checks.append(_judge_step_time(label, base, cur, tol))
    return checks


def judge(
    baseline: Sequence[OptimizerRecord], current: Sequence[OptimizerRecord], tol: Tolerances
) -> list[GateCheck]:
    """Every check for every optimizer label; pure (records in, verdicts out).

    Baseline labels missing now fail (a silently dropped optimizer would pass every other check); new
    labels are reported, not judged. Changed hyperparameters or class are reported, and the label is
    still judged: that is how "the same label with a much smaller learning rate" gets caught.
    """
    checks: list[GateCheck] = []
    cur_by_label = {r.label: r for r in current}
    for base in baseline:
        cur = cur_by_label.get(base.label)
        if cur is not None:
            checks += _judge_label(base, cur, tol)
            continue
        why = "optimizer in the baseline but not in this run"
        values = {"available": sorted(cur_by_label)}
        checks.append(GateCheck(base.label, "present", "fail", "present", "missing", "present", why, values))
    base_labels = {r.label for r in baseline}
    for cur in current:
        if cur.label not in base_labels:
            acc = cur.values("final_test_accuracy")
            mean, std = _mean_std(acc)
            why = "not in the baseline: reported, not judged (save a new baseline to judge it)"
            checks.append(
                GateCheck(cur.label, "new optimizer", "info", "-", _fmt_stat(mean, std, len(acc)), "", why)
            )
    return checks


# --- whole-run entry points ------------------------------------------------------------------------


def tolerances_for(recipe: Recipe | dict[str, Any] | None, **overrides: float | None) -> Tolerances:
    """Tolerances from a recipe's ``gate:`` section, overridden by the non-None keyword arguments."""
    spec = None
    if recipe is not None:
        data = recipe_dict(recipe)
        spec = data.get("gate") or None
    return Tolerances.from_spec(spec, **overrides)


def gate_run(
    run: FinishedRun,
    baseline: Baseline,
    tolerances: Tolerances,
    *,
    baseline_path: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> GateResult:
    """Judge a run (saved just now, or loaded from its folder) against a baseline.

    Raises InputError when the setups differ. Steps-to-target of the run is recomputed against the
    baseline's target value (see the module doc).
    """
    notes = check_setup(baseline, run.recipe, baseline_path=baseline_path)
    notes += environment_notes(baseline.environment, run.environment or {})
    reuse = reuse_note(run.trials)
    if reuse:
        notes.insert(0, reuse)
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


def reuse_note(trials: Sequence[TrialResult]) -> str | None:
    """How many of the judged trials were not trained by this run but reused from an earlier one in the
    same folder, and when those finished: a gate that passes on reused trials says so (the trial key
    holds the code's fingerprint, so they were made by the same code, setup and hyperparameters)."""
    reused = [t for t in trials if t.extra.get("reused") and t.extra.get("earlier_run")]
    if not reused:
        return None
    when = sorted(str(t.extra["finished_at"]) for t in reused if t.extra.get("finished_at"))
    span = ""
    if when:
        first, last = when[0].replace("T", " ")[:16], when[-1].replace("T", " ")[:16]
        span = f", trained {first} UTC" if first == last else f", trained {first} to {last} UTC"
    return (
        f"{len(reused)} of {len(trials)} trials were reused from earlier runs in this folder{span} "
        "(same setup, hyperparameters, seed and code fingerprint), not trained again"
    )


def gate_suite(
    runs: dict[str, FinishedRun], baselines: dict[str, Baseline], path: str | Path
) -> list[tuple[str, GateResult]]:
    """Each workload's run (name -> run) judged against its baseline: ``[(workload, GateResult)]``."""
    out = []
    for name, run in runs.items():
        tol = tolerances_for(run.recipe)
        out.append((name, gate_run(run, baselines[name], tol, baseline_path=path, run_dir=run.run_dir)))
    return out
