"""``adacli step-test``: prove in seconds, on a CPU, that optimizers behave.

Why: a comparison that runs for an hour on a broken optimizer (one that ignores its gradients, turns NaN,
keeps state outside its ``state_dict``, or whose numerics drifted with a torch upgrade) wastes the hour and,
worse, may publish a wrong table. These checks find that first:

* every optimizer on every problem of :mod:`adacli.ci.problems` (float64, deterministic):
  ``<problem>.descent`` (the loss stays finite and falls by the problem's factor within its steps),
  ``<problem>.repeatable`` (a second run is bit-for-bit the same) and ``<problem>.resume`` (saving the
  ``state_dict`` midway and resuming in a fresh optimizer gives the trajectory of not stopping);
* adacli's AdaBelief: ``adabelief.foreach`` / ``adabelief.fused`` (each path agrees with the single-tensor
  reference, with the optimizer's own hyperparameters) and ``adabelief.golden`` (every path reproduces the
  committed trajectory of the official ``adabelief-pytorch``, ``adacli/ci/golden/adabelief_golden.json``);
* with a recipe: ``recipe.overfit`` (the loss on one repeated batch of the recipe's data falls by a stated
  factor on the recipe's real model within a few dozen steps) and ``recipe.step_eval`` (one forward /
  backward / step and an evaluation pass give finite numbers and move the weights).

The library returns a :class:`StepTestReport`; the CLI prints :func:`results_table`, ``to_dict()`` as JSON
and :func:`junit_xml`. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from adacli.ci.problems import Problem, default_problems, golden_gradient, golden_initial
from adacli.errors import InputError
from adacli.optim.registry import ResolvedOptimizer, resolve_optimizer
from adacli.train.step import (
    UNTIMED,
    Autocast,
    autocast_for,
    backward_step,
    cpu_precision_guard,
    forward_logits,
    forward_loss,
    grad_scaler,
    place_model,
    resolve_device,
    train_step,
)

if TYPE_CHECKING:
    from rich.table import Table

    from adacli.recipe import Recipe

__all__ = [
    "StepCheck",
    "StepTestPlan",
    "StepTestReport",
    "Subject",
    "criteria_lines",
    "golden_check",
    "junit_xml",
    "plan_step_test",
    "quiet_torch",
    "results_table",
    "run_step_test",
]

Status = Literal["pass", "fail", "skip"]
FusedMode = Literal["auto", "yes", "no"]

#: Learning rate used for an optimizer whose hyperparameters have no ``lr`` (or whose ``lr`` is required).
DEFAULT_LR = 1e-3
#: A run stops as diverged when its loss is non-finite or exceeds this multiple of the initial loss.
DIVERGENCE_FACTOR = 1e3
#: The default set: every optimizer adacli ships (from the registry) plus these torch baselines.
BASELINES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sgd(momentum=0.9)", "sgd", {"lr": 0.01, "momentum": 0.9}),
    ("adam", "adam", {}),
    ("adamw", "adamw", {}),
)

GOLDEN_FILE = Path(__file__).resolve().parent / "golden" / "adabelief_golden.json"
#: golden: |adacli - official| <= ATOL + RTOL * |official|, float64, every recorded step and the final state.
GOLDEN_RTOL = 1e-10
GOLDEN_ATOL = 1e-12
#: path agreement (foreach / fused vs single-tensor), float64, along a whole problem run:
#: |Δ| ≤ rtol·(|single| + 0.01) (an absolute floor of rtol/100 for values near zero), as for the golden file.
PATHS_RTOL = 1e-10
#: problems the path checks run on: several tensors (a 0-d one included) and stochastic gradients.
PATH_PROBLEMS = ("logistic", "mlp", "noisy")
#: path agreement on the golden field in low precision (fp32 state for half types): dtype -> rtol; the
#: fused CPU kernel orders fp32 arithmetic differently from torch's ops (measured ~2e-6 after 40 steps).
FIELD_RTOL: dict[torch.dtype, float] = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}
#: float32 runs every flag case of the golden file; the half types (the same fp32 arithmetic plus the
#: conversions) run these three, which cover both update rules and both weight-decay modes.
HALF_FIELD_CASES = ("defaults", "l2_decay", "amsgrad_no_rectify")

#: recipe.overfit: the loss on one repeated batch must fall to initial / OVERFIT_FACTOR within these steps.
OVERFIT_STEPS = 60
OVERFIT_FACTOR = 1.5


# --- records --------------------------------------------------------------------------------------------


@dataclass
class StepCheck:
    """One verdict: ``measured`` is the figure behind it (what the table shows), ``criterion`` the rule."""

    optimizer: str
    check: str
    status: Status
    measured: str
    criterion: str
    detail: str = ""
    value: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As strict JSON allows: a non-finite value becomes the string "NaN" / "Infinity" (as in
        results.json), so that ``--json`` output parses everywhere."""
        out = dataclasses.asdict(self)
        v = out["value"]
        if isinstance(v, float) and not math.isfinite(v):
            out["value"] = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        return out


@dataclass
class Subject:
    """An optimizer under test: a label, its resolved class and hyperparameters, and the lr that scales
    the problems (its own ``lr``, else :data:`DEFAULT_LR`)."""

    label: str
    resolved: ResolvedOptimizer
    origin: Literal["default", "option", "recipe"]
    lr: float
    lr_source: str

    def build(self, params: Any) -> torch.optim.Optimizer:
        return self.resolved.build(params)

    @property
    def is_adabelief(self) -> bool:
        """adacli's own AdaBelief (the path and golden checks apply to it, not to look-alikes)."""
        from adacli.optim.adabelief import AdaBelief

        return self.resolved.source == "adacli" and self.resolved.cls is AdaBelief

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.resolved.name,
            "source": self.resolved.source,
            "class": self.resolved.qualname,
            "hparams": self.resolved.hparams,
            "origin": self.origin,
            "problem_lr": self.lr,
            "problem_lr_source": self.lr_source,
        }


@dataclass
class StepTestPlan:
    """What to test: the subjects, and the recipe whose model the recipe checks use (if any)."""

    subjects: list[Subject]
    recipe: Recipe | None = None
    recipe_path: str | None = None


@dataclass
class StepTestReport:
    subjects: list[Subject]
    checks: list[StepCheck]
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[StepCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "passed": self.passed,
            "counts": {s: sum(c.status == s for c in self.checks) for s in ("pass", "fail", "skip")},
            "seconds": round(self.seconds, 3),
            "optimizers": [s.to_dict() for s in self.subjects],
            "checks": [c.to_dict() for c in self.checks],
            "notes": self.notes,
        }


# --- planning (all input errors happen here, before anything runs) --------------------------------------


def _problem_lr(resolved: ResolvedOptimizer) -> tuple[float, str]:
    lr = resolved.hparams.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0:
        return float(lr), "lr"
    return DEFAULT_LR, f"default {DEFAULT_LR:g} (no usable lr hyperparameter)"


def _subject(
    label: str, resolved: ResolvedOptimizer, origin: Literal["default", "option", "recipe"]
) -> Subject:
    lr, src = _problem_lr(resolved)
    return Subject(label=label, resolved=resolved, origin=origin, lr=lr, lr_source=src)


def _resolve_named(name: str) -> ResolvedOptimizer:
    """A name from ``--optimizer``: the registry's defaults; a class whose lr has no default gets
    :data:`DEFAULT_LR` (the documented fallback) rather than an error."""
    try:
        return resolve_optimizer(name)
    except InputError as first:
        try:
            return resolve_optimizer(name, {"lr": DEFAULT_LR})
        except InputError:
            raise first.located(field="--optimizer") from None


def shipped_optimizer_names() -> list[str]:
    """Registry names of the optimizers adacli ships: the Optimizer classes ``adacli.optim`` exports.

    Read from the package rather than ``registry.optimizer_names()``, which also lists timm's names and
    so imports timm (seconds of a run whose budget is 15 s); every name must resolve to source "adacli".
    """
    import adacli.optim

    names = []
    for attr in adacli.optim.__all__:
        obj = getattr(adacli.optim, attr)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            resolved = resolve_optimizer(attr.lower())
            if resolved.source == "adacli":
                names.append(attr.lower())
    return names


def default_subjects() -> list[Subject]:
    """Every optimizer adacli ships (defaults) plus the torch baselines in :data:`BASELINES`."""
    subjects = [_subject(n, resolve_optimizer(n), "default") for n in shipped_optimizer_names()]
    subjects += [_subject(label, resolve_optimizer(n, hp), "default") for label, n, hp in BASELINES]
    return subjects


def plan_step_test(optimizers: Sequence[str] = (), recipe: Recipe | None = None) -> StepTestPlan:
    """Resolve what to test; :class:`InputError` (exit 2) on an unknown name.

    No option: :func:`default_subjects`. ``optimizers``: those names with their default hyperparameters.
    ``recipe`` (read and checked by the caller, see :func:`adacli.app.check.step_test`): that recipe's
    optimizers with its hyperparameters and labels, plus its model checks.
    """
    subjects: list[Subject] = []
    if recipe is not None:
        for i, (label, spec) in enumerate(zip(recipe.labels, recipe.optimizers, strict=True)):
            try:
                resolved = resolve_optimizer(spec.name, spec.hparams)
            except InputError as e:
                raise e.located(file=recipe.source_file, field=f"optimizers[{i}]") from None
            subjects.append(_subject(label, resolved, "recipe"))
    for name in optimizers:
        resolved = _resolve_named(name)
        label = name
        taken = {s.label for s in subjects}
        n = 1
        while label in taken:
            n += 1
            label = f"{name}-{n}"
        subjects.append(_subject(label, resolved, "option"))
    if not subjects:
        subjects = default_subjects()
    path = None if recipe is None else recipe.source_file
    return StepTestPlan(subjects=subjects, recipe=recipe, recipe_path=path)


# --- running problems -----------------------------------------------------------------------------------


@contextmanager
def quiet_torch() -> Iterator[None]:
    """One intra-op thread and a private RNG stream while checks run.

    One thread: tiny tensors gain nothing from more, and a second thread spinning on a loaded 2-core CI
    machine costs more than the work. The RNG is forked so the caller's global stream is untouched and
    every run can seed it (an optimizer that draws random numbers is still repeatable).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Run:
    losses: list[float]  # true loss before every step and after the last one (shorter if stopped)
    params: list[Tensor]
    stop: str | None = None  # why the run stopped early, in words
    kind: Literal["nonfinite", "diverged", "error"] | None = None
    short: str = ""  # the stop as a table figure: "NaN @12", "diverged @40", "error"


def _bits(t: Tensor) -> Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _compare_runs(a: _Run, b: _Run) -> tuple[bool, str, float]:
    """(bit-for-bit equal, description, largest absolute difference) of two runs."""
    worst = 0.0
    first_diff: str | None = None
    for i, (x, y) in enumerate(zip(a.losses, b.losses, strict=False)):
        if not _same_float(x, y):
            d = abs(x - y)
            worst = max(worst, d if math.isfinite(d) else math.inf)
            if first_diff is None:
                first_diff = f"loss differs from step {i}: {x!r} vs {y!r}"
    if len(a.losses) != len(b.losses):
        first_diff = (
            first_diff or f"one run stopped at step {len(a.losses) - 1}, the other at {len(b.losses) - 1}"
        )
        return False, first_diff, math.inf
    for p, q in zip(a.params, b.params, strict=True):
        if not torch.equal(_bits(p), _bits(q)):
            d = (p.detach() - q.detach()).abs().max().item()
            worst = max(worst, d if math.isfinite(d) else math.inf)
            first_diff = first_diff or "final parameters differ"
    if first_diff is None:
        return True, "bit-for-bit equal", 0.0
    return False, f"{first_diff} (max |Δ| {worst:.2e})", worst


def _checkpoint_roundtrip(
    build: Callable[[list[Tensor]], torch.optim.Optimizer], params: list[Tensor], opt: torch.optim.Optimizer
) -> tuple[list[Tensor], torch.optim.Optimizer]:
    """Save parameters, optimizer state_dict and RNG through torch.save, then load into fresh objects
    (what a training job restarted from a checkpoint does)."""
    buf = io.BytesIO()
    torch.save(
        {"params": [p.detach() for p in params], "optimizer": opt.state_dict(), "rng": torch.get_rng_state()},
        buf,
    )
    del opt
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    fresh = [t.clone().requires_grad_(True) for t in saved["params"]]
    new_opt = build(fresh)
    new_opt.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    return fresh, new_opt


def run_problem(
    build: Callable[[list[Tensor]], torch.optim.Optimizer],
    problem: Problem,
    lr: float,
    *,
    resume_at: int | None = None,
) -> _Run:
    """Run ``problem.steps`` steps in lr-scaled coordinates (see :mod:`adacli.ci.problems`).

    The parameters are ``z = d * w`` and the loss ``c * F(z / d)`` with ``d = lr / delta`` and
    ``c = eta * lr / delta**2``. ``resume_at=k``: after k steps, checkpoint and continue in a fresh optimizer.
    Exceptions from the optimizer end the run (``stop``) instead of propagating: they are verdicts.
    """
    d = lr / problem.delta
    c = problem.eta * lr / problem.delta**2
    params = [(d * w).requires_grad_(True) for w in problem.initial()]
    losses: list[float] = []
    torch.manual_seed(0)
    try:
        opt = build(params)
        for step in range(problem.steps + 1):
            if step == resume_at and step > 0:
                params, opt = _checkpoint_roundtrip(build, params, opt)
            last = step == problem.steps
            with torch.set_grad_enabled(not last):
                obj, true = problem.objective([p / d for p in params], step)
            loss = float(true.item())
            losses.append(loss)
            if not math.isfinite(loss):
                shown = "NaN" if math.isnan(loss) else str(loss)
                return _Run(losses, params, f"loss {loss} at step {step}", "nonfinite", f"{shown} @{step}")
            if loss > DIVERGENCE_FACTOR * losses[0]:
                why = f"diverged at step {step} (loss ×{loss / losses[0]:.1e} the initial)"
                return _Run(losses, params, why, "diverged", f"diverged @{step}")
            if last:
                break
            opt.zero_grad(set_to_none=True)
            (c * obj).backward()
            opt.step()
    except Exception as e:  # a user's optimizer may raise anything; it is a failed check, not a crash
        where = f" at step {len(losses) - 1}" if losses else " while building the optimizer"
        return _Run(losses, params, f"{type(e).__name__}{where}: {_one_line(e)}", "error", "error")
    return _Run(losses, params)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


REPEATABLE_CRITERION = "two runs bit-for-bit equal"
RESUME_CRITERION = (
    "stop halfway, resume from the state_dict in a fresh optimizer: bit-for-bit the uninterrupted run"
)


@quiet_torch()
def problem_checks(subject: Subject, problem: Problem) -> list[StepCheck]:
    """``descent``, ``repeatable`` and ``resume`` of one optimizer on one problem.

    Cost: two runs when all is well. Run A is plain; run B stops and resumes midway. B equal to A bit for
    bit proves both properties (a non-repeatable optimizer cannot match by chance); only when they differ
    does a third, plain run C tell a non-repeatable optimizer from a broken resume.
    """
    label = subject.label
    t0 = time.perf_counter()
    a = run_problem(subject.build, problem, subject.lr)
    checks = [_descent_check(label, problem, a, time.perf_counter() - t0)]
    if a.kind == "error":  # nothing to compare: the descent check already names the exception
        why = f"not judged: the run raised ({a.stop})"
        return checks + [
            _rr_check(label, problem, k, "skip", "not judged", why) for k in ("repeatable", "resume")
        ]
    half = problem.steps // 2
    t1 = time.perf_counter()
    b = run_problem(subject.build, problem, subject.lr, resume_at=half)
    same_ab, how_ab, diff_ab = _compare_runs(a, b)
    if same_ab:
        dt = (time.perf_counter() - t1) / 2
        checks.append(_rr_check(label, problem, "repeatable", "pass", "equal", how_ab, 0.0, dt))
        if a.stop is None or len(a.losses) - 1 > half:
            checks.append(_rr_check(label, problem, "resume", "pass", "equal", how_ab, 0.0, dt))
        else:
            why = f"not judged: the run stopped before step {half} ({a.stop})"
            checks.append(_rr_check(label, problem, "resume", "skip", "not reached", why, None, dt))
        return checks
    c = run_problem(subject.build, problem, subject.lr)
    dt = (time.perf_counter() - t1) / 2
    return checks + _differing_runs_checks(label, problem, a, b, c, how_ab, diff_ab, dt)


def _differing_runs_checks(
    label: str, problem: Problem, a: _Run, b: _Run, c: _Run, how_ab: str, diff_ab: float, dt: float
) -> list[StepCheck]:
    """The resumed run B differs from A: a plain run C equal to A blames the resume, else repeatability."""
    same_ac, how_ac, diff_ac = _compare_runs(a, c)
    if not same_ac:
        why = "not judged: two plain runs already differ"
        return [
            _rr_check(label, problem, "repeatable", "fail", f"Δ {diff_ac:.1e}", how_ac, diff_ac, dt),
            _rr_check(label, problem, "resume", "skip", "not judged", why, None, dt),
        ]
    if b.kind == "error":
        measured, detail = "error", f"the resumed run failed: {b.stop}"
    else:
        measured, detail = f"Δ {diff_ab:.1e}", how_ab
    return [
        _rr_check(label, problem, "repeatable", "pass", "equal", how_ac, 0.0, dt),
        _rr_check(label, problem, "resume", "fail", measured, detail, diff_ab, dt),
    ]


def _rr_check(
    label: str,
    problem: Problem,
    kind: Literal["repeatable", "resume"],
    status: Status,
    measured: str,
    detail: str,
    value: float | None = None,
    seconds: float = 0.0,
) -> StepCheck:
    """A ``<problem>.repeatable`` or ``<problem>.resume`` verdict with its criterion."""
    crit = REPEATABLE_CRITERION if kind == "repeatable" else RESUME_CRITERION
    return StepCheck(label, f"{problem.name}.{kind}", status, measured, crit, detail, value, seconds)


def _descent_check(label: str, problem: Problem, run: _Run, seconds: float) -> StepCheck:
    crit = f"{problem.title}; finite, {problem.criterion()}"
    name = f"{problem.name}.descent"
    if run.stop is not None:
        return StepCheck(label, name, "fail", run.short, crit, run.stop, None, seconds)
    ratio = run.losses[-1] / run.losses[0] if run.losses[0] != 0 else math.inf
    ok = ratio <= 1.0 / problem.factor
    reached = next((i for i, x in enumerate(run.losses) if x <= run.losses[0] / problem.factor), None)
    detail = f"loss {run.losses[0]:.4g} → {run.losses[-1]:.4g} (×{ratio:.2e}); " + (
        f"reached initial/{problem.factor:g} at step {reached}" if reached is not None else "never reached"
    )
    return StepCheck(label, name, "pass" if ok else "fail", f"×{ratio:.1e}", crit, detail, ratio, seconds)


# --- AdaBelief: paths and golden values -----------------------------------------------------------------


PathName = Literal["single", "foreach", "fused"]
_PATH_FLAGS: dict[str, dict[str, bool]] = {
    "single": {"foreach": False, "fused": False},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
}


def fused_status(mode: FusedMode = "auto") -> tuple[Status | None, str]:
    """Whether to check AdaBelief's fused CPU path: ``(None, why)`` to run it, else the verdict to record.

    The CPU kernel is built once per machine with the system C++ compiler (about a second, cached on disk;
    AdaBelief's default CPU path uses it anyway, so checking it costs no extra build). ``auto``: without a
    compiler the check is skipped, with the reason. ``yes``: unavailable is a failure. ``no``: skipped.
    """
    if mode == "no":
        return "skip", "skipped (--fused no)"
    try:
        from adacli.optim import _fused

        problem = _fused.cpu_kernel_problem()
        if problem is None:
            return None, "CPU kernel built"
        reason = problem
    except Exception as e:  # an import or build problem of the fused path is a finding, not a crash
        reason = f"{type(e).__name__}: {_one_line(e)}"
    reason = _one_line(Exception(reason))
    return ("fail" if mode == "yes" else "skip"), f"unavailable: {reason}"


def _path_build(
    subject_hparams: dict[str, Any], cls: type, path: str
) -> Callable[[Any], torch.optim.Optimizer]:
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in subject_hparams.items()}
    hp.update(_PATH_FLAGS[path])
    return lambda params: cls(params, **hp)


def _field_run(cls: type, case: dict[str, Any], path: str, dtype: torch.dtype, steps: int) -> list[Tensor]:
    """One golden-file case on the closed-form gradient field, in ``dtype`` (gradients computed in
    float64 from the parameters, then rounded to ``dtype`` as autograd would hand them over)."""
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in case["hparams"].items()}
    params = [w.to(dtype).clone() for w in golden_initial()]
    opt = cls(_golden_groups(params, case["groups"]), **hp, **_PATH_FLAGS[path])
    for step in range(steps):
        grads = golden_gradient([q.double() for q in params], step)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.to(dtype)
        opt.step()
    return params


def _scaled_err(got: Sequence[Tensor], ref: Sequence[Tensor], atol_over_rtol: float = 0.01) -> float:
    """max |got - ref| / (|ref| + atol/rtol) over tensors: ≤ rtol exactly when |Δ| ≤ atol + rtol·|ref|."""
    worst = 0.0
    for a, b in zip(got, ref, strict=True):
        a, b = a.detach().double(), b.detach().double()
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            if not torch.equal(_bits(a), _bits(b)):
                return math.inf
            continue
        if a.numel():
            worst = max(worst, ((a - b).abs() / (atol_over_rtol + b.abs())).max().item())
    return worst


FieldRefs = dict[tuple[torch.dtype, str], "list[Tensor] | str"]


@quiet_torch()
def paths_checks(subject: Subject, fused: tuple[Status | None, str]) -> list[StepCheck]:
    """foreach and fused against the single-tensor reference.

    Two parts: (1) float64 runs of three problems with the subject's own hyperparameters (losses and final
    parameters); (2) every flag combination of the golden file on its gradient field in float32, bfloat16
    and float16 (fp32 state), where the fused kernel's low-precision code paths run. Each dtype has its own
    tolerance (:data:`PATHS_RTOL`, :data:`FIELD_RTOL`); the figure is the worst error as a fraction of it.
    """
    cls = subject.resolved.cls
    hp = {k: v for k, v in subject.resolved.hparams.items() if k not in ("foreach", "fused")}
    problems = [p for p in default_problems() if p.name in PATH_PROBLEMS]
    golden = load_golden()
    crit = _paths_criterion(golden)
    t0 = time.perf_counter()
    reference = {p.name: run_problem(_path_build(hp, cls, "single"), p, subject.lr) for p in problems}
    field_ref = _field_references(cls, golden)
    t_ref = (time.perf_counter() - t0) / 2
    checks: list[StepCheck] = []
    for path in ("foreach", "fused"):
        name = f"adabelief.{path}"
        if path == "fused" and fused[0] is not None:
            checks.append(StepCheck(subject.label, name, fused[0], fused[0], crit, f"fused path {fused[1]}"))
            continue
        t1 = time.perf_counter()
        score, where, error = _problem_path_score(hp, cls, path, problems, reference, subject.lr)
        if not error:
            score, where, error = _field_path_score(cls, path, golden, field_ref, score, where)
        seconds = time.perf_counter() - t1 + t_ref
        if error:
            checks.append(StepCheck(subject.label, name, "fail", "error", crit, error, math.inf, seconds))
            continue
        detail = f"worst relative to its tolerance: {score:.2g}" + (
            f" at {where}" if where else " (identical)"
        )
        status: Status = "pass" if score <= 1.0 else "fail"
        checks.append(
            StepCheck(subject.label, name, status, f"{score:.2g} of tol", crit, detail, score, seconds)
        )
    return checks


def _paths_criterion(golden: dict[str, Any]) -> str:
    half = ", ".join(
        f"{str(dt).removeprefix('torch.')} {rt:g}" for dt, rt in FIELD_RTOL.items() if dt != torch.float32
    )
    return (
        f"|Δ| ≤ rtol·(|single| + 0.01): float64 runs of {', '.join(PATH_PROBLEMS)} (rtol {PATHS_RTOL:g}); "
        f"golden-field flag cases × {golden['steps']} steps: all {len(golden['cases'])} in float32 "
        f"(rtol {FIELD_RTOL[torch.float32]:g}), {len(HALF_FIELD_CASES)} in {half}"
    )


def _field_references(cls: type, golden: dict[str, Any]) -> FieldRefs:
    """The single-tensor path's final parameters on the golden field, per (dtype, case); or its error."""
    field_ref: FieldRefs = {}
    for dtype in FIELD_RTOL:
        for case in golden["cases"]:
            if dtype != torch.float32 and case["name"] not in HALF_FIELD_CASES:
                continue
            try:
                field_ref[dtype, case["name"]] = _field_run(cls, case, "single", dtype, golden["steps"])
            except Exception as e:
                field_ref[dtype, case["name"]] = f"{type(e).__name__}: {_one_line(e)}"
    return field_ref


def _problem_path_score(
    hp: dict[str, Any], cls: type, path: str, problems: list[Problem], reference: dict[str, _Run], lr: float
) -> tuple[float, str, str]:
    """(worst error / tolerance, where, error) of ``path`` against the float64 problem references."""
    score, where = 0.0, ""
    for p in problems:
        ref = reference[p.name]
        if ref.kind == "error":
            return score, where, f"{p.name}: the single-tensor reference raised: {ref.stop}"
        run = run_problem(_path_build(hp, cls, path), p, lr)
        if (run.stop and run.stop != ref.stop) or len(run.losses) != len(ref.losses):
            return (
                score,
                where,
                f"{p.name}: {run.stop or 'stopped at a different step'} (single: {ref.stop or 'ran'})",
            )
        err = _scaled_err([torch.tensor(run.losses), *run.params], [torch.tensor(ref.losses), *ref.params])
        if err / PATHS_RTOL > score:
            score, where = err / PATHS_RTOL, f"{p.name} (float64): max {err:.2e}, rtol {PATHS_RTOL:g}"
    return score, where, ""


def _field_path_score(
    cls: type, path: str, golden: dict[str, Any], field_ref: FieldRefs, score: float, where: str
) -> tuple[float, str, str]:
    """(worst error / tolerance, where, error) of ``path`` on the golden field, continuing ``score``."""
    for (dtype, case_name), ref_params in field_ref.items():
        case = next(c for c in golden["cases"] if c["name"] == case_name)
        label = f"{case_name} ({str(dtype).removeprefix('torch.')})"
        if isinstance(ref_params, str):
            return score, where, f"{label}: the single-tensor reference raised: {ref_params}"
        try:
            got = _field_run(cls, case, path, dtype, golden["steps"])
        except Exception as e:
            return score, where, f"{label}: {type(e).__name__}: {_one_line(e)}"
        err = _scaled_err(got, ref_params)
        if err / FIELD_RTOL[dtype] > score:
            score, where = err / FIELD_RTOL[dtype], f"{label}: max {err:.2e}, rtol {FIELD_RTOL[dtype]:g}"
    return score, where, ""


@lru_cache(maxsize=1)
def load_golden(path: str = str(GOLDEN_FILE)) -> dict[str, Any]:
    """The committed golden values (``benchmarks/make_golden.py`` writes them)."""
    return json.loads(Path(path).read_text())


def _golden_groups(params: list[Tensor], groups: list[dict[str, Any]] | None) -> Any:
    if groups is None:
        return params
    return [{**g, "params": [params[i] for i in g["params"]]} for g in groups]


def golden_errors(cls: type, paths: Sequence[str], golden: dict[str, Any] | None = None) -> tuple[float, str]:
    """The worst golden error of ``cls`` over every case and path, and where it occurred.

    Error unit: ``|Δ| / (ATOL/RTOL + |golden|)``, so a value ≤ :data:`GOLDEN_RTOL` passes.
    """
    golden = golden or load_golden()
    record = set(golden["record_steps"])
    worst, where = 0.0, "every case and path (bit-for-bit)"
    for case in golden["cases"]:
        hp = {k: tuple(v) if isinstance(v, list) else v for k, v in case["hparams"].items()}
        for path in paths:
            params = [w.clone() for w in golden_initial()]
            try:
                opt = cls(_golden_groups(params, case["groups"]), **hp, **_PATH_FLAGS[path])
                errors: list[tuple[float, str]] = []
                for step in range(golden["steps"]):
                    for p, g in zip(params, golden_gradient(params, step), strict=True):
                        p.grad = g.clone()
                    opt.step()
                    if step + 1 in record:
                        want = case["params"][str(step + 1)]
                        errors.append((_golden_err(params, want), f"step {step + 1}"))
                for key in ("exp_avg", "exp_avg_var"):
                    got = [opt.state[p][key] for p in params]
                    errors.append((_golden_err(got, case["state"][key]), f"final {key}"))
            except Exception as e:
                return math.inf, f"{case['name']} [{path}]: {type(e).__name__}: {_one_line(e)}"
            err, at = max(errors, key=lambda x: x[0])
            if err > worst or math.isnan(err):
                worst, where = err, f"{case['name']} [{path}] at {at}"
    return worst, where


def _golden_err(tensors: list[Tensor], want: list[list[float]]) -> float:
    worst = 0.0
    for t, w in zip(tensors, want, strict=True):
        got = t.detach().double().reshape(-1)
        ref = torch.tensor(w, dtype=torch.float64)
        if got.shape != ref.shape:
            return math.inf
        err = (
            ((got - ref).abs() / (GOLDEN_ATOL / GOLDEN_RTOL + ref.abs())).max().item() if ref.numel() else 0.0
        )
        if math.isnan(err):
            return math.inf
        worst = max(worst, err)
    return worst


@quiet_torch()
def golden_check(label: str, cls: type, paths: Sequence[str]) -> StepCheck:
    """``adabelief.golden``: every path of ``cls`` against the official trajectory in the golden file."""
    golden = load_golden()
    t0 = time.perf_counter()
    err, where = golden_errors(cls, paths, golden)
    ok = err <= GOLDEN_RTOL
    crit = (
        f"|Δ| ≤ {GOLDEN_ATOL:g} + {GOLDEN_RTOL:g}·|official| ({len(golden['cases'])} cases × "
        f"{golden['steps']} steps, {'/'.join(paths)}; {golden['reference']}, float64)"
    )
    measured = "error" if err == math.inf else f"{err:.1e}"
    scale = f"|Δ|/(|official| + {GOLDEN_ATOL / GOLDEN_RTOL:g})"
    detail = (
        where
        if err == math.inf
        else f"max {scale} = {err:.2e} (limit {GOLDEN_RTOL:g}) at {where}; golden file {GOLDEN_FILE.name}"
    )
    return StepCheck(
        label,
        "adabelief.golden",
        "pass" if ok else "fail",
        measured,
        crit,
        detail,
        err,
        time.perf_counter() - t0,
    )


# --- recipe checks: the real model ----------------------------------------------------------------------


@dataclass
class RecipeContext:
    """What the recipe checks share: the recipe, its device, the seed's initial model and real batches."""

    recipe: Recipe
    device: torch.device
    model: torch.nn.Module  # the seed's initial model, on the CPU
    batch: tuple[Tensor, Tensor]
    eval_batches: dict[str, tuple[Tensor, Tensor]]

    @property
    def channels_last(self) -> bool:
        return self.recipe.model.channels_last

    def autocast(self) -> Autocast:
        return autocast_for(self.device, self.recipe.precision)

    def guard(self) -> contextlib.AbstractContextManager[Any]:
        """The trial's precision guard (oneDNN off for bf16 on the CPU): every check trains under it."""
        return cpu_precision_guard(self.device, self.recipe.precision)

    def fresh_model(self) -> torch.nn.Module:
        """A copy of the initial model on the device, in the recipe's memory format, in training mode."""
        return place_model(copy.deepcopy(self.model), self.device, self.channels_last)


def recipe_context(recipe: Recipe) -> RecipeContext:
    """Load the recipe's data and the first seed's model once for every optimizer's recipe checks."""
    from adacli.train.data import load_data
    from adacli.train.trial import initial_model

    device = resolve_device(recipe.device)
    seed = recipe.seed_list[0]
    data = load_data(recipe.dataset, seed=seed)
    model = initial_model(recipe.model, data, seed)
    batch = next(iter(data.train_batches(recipe.budget.batch_size, seed, device)))
    evals = {}
    for split in ("train_eval", "test"):
        if data.split_size(split):
            evals[split] = next(iter(data.eval_batches(split, recipe.budget.eval_batch_size, device)))
    return RecipeContext(recipe, device, model, batch, evals)


OVERFIT_CRITERION = f"loss on one repeated batch ≤ initial/{OVERFIT_FACTOR:g} within {OVERFIT_STEPS} steps"


def overfit_check(subject: Subject, ctx: RecipeContext) -> StepCheck:
    """``recipe.overfit``: the loss on one repeated batch falls to initial/OVERFIT_FACTOR within
    OVERFIT_STEPS steps (the run stops as soon as it does).

    The factor is modest on purpose: rectified optimizers (RAdam, AdaBelief's default) warm up for their
    first few dozen steps, and a healthy optimizer must not fail a CI job. A broken one (gradients ignored,
    a wrong sign, NaN) does not come close. The steps are the trial's (:mod:`adacli.train.step`), under
    the trial's precision guard.
    """
    name, crit = "recipe.overfit", OVERFIT_CRITERION
    t0 = time.perf_counter()
    try:
        with ctx.guard():
            losses = _overfit_losses(subject, ctx)
    except Exception as e:
        detail = f"{type(e).__name__}: {_one_line(e)}"
        return StepCheck(subject.label, name, "fail", "error", crit, detail, None, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    last = len(losses) - 1
    if not math.isfinite(losses[-1]):
        detail = f"loss {losses[-1]} at step {last}"
        return StepCheck(subject.label, name, "fail", f"{losses[-1]} @{last}", crit, detail, None, seconds)
    ratio = losses[-1] / losses[0]
    ok = ratio <= 1 / OVERFIT_FACTOR
    where = (
        f"{ctx.recipe.model.name} on one {ctx.recipe.dataset.name} batch of {len(ctx.batch[1])} "
        f"({ctx.device}, {ctx.recipe.precision}, constant lr)"
    )
    outcome = f"reached at step {last}" if ok else f"not reached in {OVERFIT_STEPS} steps"
    detail = f"{where}: loss {losses[0]:.4g} → {losses[-1]:.4g} (×{ratio:.2f}); {outcome}"
    measured = f"@{last}" if ok else f"×{ratio:.2f}"
    return StepCheck(
        subject.label, name, "pass" if ok else "fail", measured, crit, detail, float(last), seconds
    )


def _overfit_losses(subject: Subject, ctx: RecipeContext) -> list[float]:
    """The loss before each step on one repeated batch, until it reaches the target, turns non-finite or
    the steps run out (the last loss is then measured without a step after it)."""
    x, y = ctx.batch
    torch.manual_seed(0)
    model = ctx.fresh_model()
    opt = subject.build(model.parameters())
    scaler = grad_scaler(ctx.device, ctx.recipe.precision)
    autocast = ctx.autocast()
    losses: list[float] = []
    for step in range(OVERFIT_STEPS + 1):
        opt.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(step < OVERFIT_STEPS):
            loss = forward_loss(model, x, y, autocast, ctx.channels_last)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or losses[-1] <= losses[0] / OVERFIT_FACTOR or step == OVERFIT_STEPS:
            break
        backward_step(loss, opt, scaler)
    return losses


STEP_EVAL_CRITERION = (
    "one step: finite loss, weights finite and changed; eval: finite loss, accuracy in [0, 1]"
)


@dataclass
class _StepEval:
    """What one training step and one evaluation batch per split measured."""

    train_loss: float
    finite: bool  # every weight finite after the step
    moved: int  # weight tensors the step changed
    tensors: int
    evals: dict[str, tuple[float, float]]  # split -> (loss, accuracy in [0, 1])


def step_eval_check(subject: Subject, ctx: RecipeContext) -> StepCheck:
    """``recipe.step_eval``: one training step (the trial's, under its precision guard) moves the weights,
    then evaluation gives finite losses and accuracies in [0, 1] (one batch of each evaluation split, eval
    mode, no grad)."""
    name, crit = "recipe.step_eval", STEP_EVAL_CRITERION
    t0 = time.perf_counter()
    try:
        with ctx.guard():
            m = _step_and_evaluate(subject, ctx)
    except Exception as e:
        detail = f"{type(e).__name__}: {_one_line(e)}"
        return StepCheck(subject.label, name, "fail", "error", crit, detail, None, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    problems = []
    if not math.isfinite(m.train_loss):
        problems.append(f"training loss {m.train_loss}")
    if not m.finite:
        problems.append("non-finite weights after the step")
    if m.moved == 0:
        problems.append("the step changed no weight")
    for split, (el, acc) in m.evals.items():
        if not math.isfinite(el) or not 0.0 <= acc <= 1.0:
            problems.append(f"{split}: loss {el}, accuracy {acc}")
    evals = "; ".join(f"{s} loss {el:.3g} acc {acc:.2f}" for s, (el, acc) in m.evals.items())
    detail = f"train loss {m.train_loss:.4g}; {m.moved}/{m.tensors} tensors moved; {evals}"
    if problems:
        why = "; ".join(problems) + f" ({detail})"
        return StepCheck(subject.label, name, "fail", problems[0][:24], crit, why, None, seconds)
    test = m.evals.get("test") or next(iter(m.evals.values()), (m.train_loss, math.nan))
    return StepCheck(subject.label, name, "pass", f"loss {test[0]:.2f}", crit, detail, test[0], seconds)


def _step_and_evaluate(subject: Subject, ctx: RecipeContext) -> _StepEval:
    x, y = ctx.batch
    torch.manual_seed(0)
    model = ctx.fresh_model()
    before = [p.detach().clone() for p in model.parameters()]
    opt = subject.build(model.parameters())
    autocast = ctx.autocast()
    scaler = grad_scaler(ctx.device, ctx.recipe.precision)
    loss = train_step(
        model, opt, x, y, autocast=autocast, scaler=scaler, timer=UNTIMED, channels_last=ctx.channels_last
    )
    after = list(model.parameters())
    finite = all(bool(torch.isfinite(p).all()) for p in after)
    moved = sum(not torch.equal(a, b.detach()) for a, b in zip(before, after, strict=True))
    model.eval()
    evals = {}
    with torch.no_grad():
        for split, (xe, ye) in ctx.eval_batches.items():
            logits = forward_logits(model, xe, autocast, ctx.channels_last).float()
            accuracy = (logits.argmax(1) == ye).float().mean().item()
            evals[split] = (torch.nn.functional.cross_entropy(logits, ye).item(), accuracy)
    return _StepEval(loss.item(), finite, moved, len(before), evals)


# --- the whole run --------------------------------------------------------------------------------------


def run_step_test(
    plan: StepTestPlan,
    *,
    fused: FusedMode = "auto",
    on_check: Callable[[StepCheck], None] | None = None,
) -> StepTestReport:
    """Run every check of the plan; failures are verdicts in the report, never exceptions.

    ``on_check`` is called after each check (progress display). Input errors of a recipe's model or data
    (InputError) still propagate: those are exit-2 problems of the input, not of an optimizer.
    """
    t0 = time.perf_counter()
    checks: list[StepCheck] = []
    notes: list[str] = []

    def add(items: Sequence[StepCheck]) -> None:
        for c in items:
            checks.append(c)
            if on_check is not None:
                on_check(c)

    with quiet_torch():
        problems = default_problems()
        ctx = recipe_context(plan.recipe) if plan.recipe is not None else None
        fused_state: tuple[Status | None, str] | None = None
        golden: StepCheck | None = None
        for subject in plan.subjects:
            for problem in problems:
                add(problem_checks(subject, problem))
            if subject.is_adabelief:
                if fused_state is None:
                    fused_state = fused_status(fused)
                    if fused_state[0] is not None:
                        notes.append(f"AdaBelief fused path not checked: {fused_state[1]}")
                add(paths_checks(subject, fused_state))
                if golden is None:
                    paths = ["single", "foreach"] + (["fused"] if fused_state[0] is None else [])
                    golden = golden_check(subject.label, subject.resolved.cls, paths)
                    add([golden])
                else:  # same class, same golden file: the verdict does not depend on the subject
                    add([dataclasses.replace(golden, optimizer=subject.label, seconds=0.0)])
            if ctx is not None:  # the recipe's model checks apply to every optimizer under test
                # one thread here too: measured on a busy 2-core runner, two OpenMP threads made the
                # overfit check 7x slower (spin-waiting), one thread costs little on a tiny model
                add([overfit_check(subject, ctx), step_eval_check(subject, ctx)])
    for s in plan.subjects:
        if s.lr_source != "lr":
            notes.append(f"{s.label}: problems scaled with lr {s.lr:g} ({s.lr_source})")
    return StepTestReport(plan.subjects, checks, time.perf_counter() - t0, notes)


# --- presentation (built here, printed by the CLI) ------------------------------------------------------


_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def results_table(report: StepTestReport) -> Table:
    """Checks × optimizers: PASS/FAIL/SKIP with the measured figure (criteria: :func:`criteria_lines`)."""
    from rich import box
    from rich.table import Table

    labels = [s.label for s in report.subjects]
    table = Table(title="adacli step-test", box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    table.add_column("check", no_wrap=True)
    for label in labels:
        table.add_column(label)
    rows: dict[str, dict[str, StepCheck]] = {}
    for c in report.checks:
        rows.setdefault(c.check, {})[c.optimizer] = c
    for name, by_opt in rows.items():
        cells = []
        for label in labels:
            c = by_opt.get(label)
            cells.append(
                "[dim]·[/]" if c is None else f"[{_STYLE[c.status]}]{c.status.upper()}[/] {c.measured}"
            )
        table.add_row(name, *cells)
    return table


def criteria_lines(report: StepTestReport) -> list[str]:
    """What each check requires, one line per distinct criterion (``*.resume`` for a family)."""
    by_crit: dict[str, list[str]] = {}
    for c in report.checks:
        names = by_crit.setdefault(c.criterion, [])
        if c.check not in names:
            names.append(c.check)
    lines = []
    for crit, names in by_crit.items():
        suffixes = {n.rsplit(".", 1)[-1] for n in names}
        shown = f"*.{suffixes.pop()}" if len(names) > 1 and len(suffixes) == 1 else ", ".join(names)
        lines.append(f"{shown}: {crit}")
    return lines


def junit_xml(report: StepTestReport) -> str:
    """JUnit XML: one testsuite per optimizer, one testcase per check (failure / skipped elements)."""
    from xml.etree import ElementTree as ET

    root = ET.Element(
        "testsuites",
        name="adacli step-test",
        tests=str(len(report.checks)),
        failures=str(len(report.failures)),
        time=f"{report.seconds:.3f}",
    )
    for subject in report.subjects:
        mine = [c for c in report.checks if c.optimizer == subject.label]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"step-test.{subject.label}",
            tests=str(len(mine)),
            failures=str(sum(c.status == "fail" for c in mine)),
            errors="0",
            skipped=str(sum(c.status == "skip" for c in mine)),
            time=f"{sum(c.seconds for c in mine):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="class", value=subject.resolved.qualname)
        ET.SubElement(
            props, "property", name="hparams", value=json.dumps(subject.resolved.hparams, default=repr)
        )
        for c in mine:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"adacli.step-test.{subject.label}",
                name=c.check,
                time=f"{c.seconds:.3f}",
            )
            text = f"measured {c.measured}; criterion: {c.criterion}" + (f"; {c.detail}" if c.detail else "")
            if c.status == "fail":
                ET.SubElement(
                    case, "failure", message=f"{c.measured}: {c.detail}"[:500], type="CheckFailed"
                ).text = text
            elif c.status == "skip":
                ET.SubElement(case, "skipped", message=c.detail or "skipped")
            else:
                ET.SubElement(case, "system-out").text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
