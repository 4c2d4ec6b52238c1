"""Hyperparameter sweeps: grid / log-range expansion of a recipe's optimizers and selection on ``val``.

Why it is shaped this way (README "Compare optimizers", docs/recipes.md):

* **Fair tuning.** Comparing a tuned optimizer with an untuned one measures the tuning, not the optimizer
  (the AdaBelief paper grid-searched every optimizer; DeepOBS and AlgoPerf made it a rule). So every
  optimizer must get the same number of configurations unless the recipe opts out
  (``sweep: {equal_budget: false}``), and the tables say when budgets differ.
* **Selection never sees the test split.** Each configuration is scored on the ``val`` split, which
  :mod:`adacli.train.data` holds out of ``train`` (``dataset.val_fraction``), at the end of the budget;
  the test accuracy in the summary is then an honest estimate for the chosen configuration.
* **Unambiguous syntax.** A YAML list is a grid, except for a hyperparameter whose default is a tuple
  (``betas``): there a list of numbers is *the value* (``betas: [0.9, 0.999]``) and a list of lists is a
  grid (``betas: [[0.9, 0.999], [0.95, 0.999]]``). ``{grid: [...]}`` is always a grid and
  ``{log_range: [lo, hi], n: N}`` is N log-spaced values from lo to hi (both included, 6 significant
  digits). Several swept hyperparameters of one optimizer form their cross product.

This module computes; it neither runs trials (:mod:`adacli.run.pipeline` does) nor formats output
(:mod:`adacli.report.sweep` does).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adacli.errors import InputError, closest
from adacli.recipe import Recipe
from adacli.results import TrialResult

SWEEP_KEYS = ("grid", "log_range", "n")
SPLIT = "val"  # the split every selection is made on (never "test")


# --- expansion -------------------------------------------------------------------------------------

# Configurations per optimizer: far beyond any useful grid, and a bound on what preflight steps and a
# typo (``n: 1000000``) can ask for.
MAX_CONFIGS = 1000


def _where(recipe: Recipe, file: str | None, *path: str | int) -> dict[str, Any]:
    field_ = "optimizers" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
    return {"file": file or recipe.source_file, "line": recipe.line_of(*path), "field": field_}


def _sig(v: float) -> float:
    """6 significant digits: ``geomspace`` noise (0.0010000000000000002) would leak into labels and keys."""
    return float(f"{v:.6g}")


def log_range(lo: float, hi: float, n: int) -> list[float]:
    """``n`` log-spaced values from ``lo`` to ``hi``, both included (``n == 1``: just ``lo``)."""
    if n == 1:
        return [_sig(lo)]
    a, b = math.log(lo), math.log(hi)
    return [_sig(math.exp(a + (b - a) * i / (n - 1))) for i in range(n)]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _axis(value: Any, tuple_valued: bool, where: dict[str, Any]) -> list[Any] | None:
    """The values of one hyperparameter's sweep axis, or None when ``value`` is a plain (fixed) value."""
    if isinstance(value, dict):
        keys = set(value)
        unknown = sorted(keys - set(SWEEP_KEYS))
        if unknown:
            raise InputError(
                f"unknown sweep key {unknown[0]!r} (a mapping value is a sweep: {{grid: [...]}} or "
                "{log_range: [lo, hi], n: N})",
                allowed=SWEEP_KEYS,
                suggestion=closest(str(unknown[0]), SWEEP_KEYS),
                **where,
            )
        if "grid" in keys:
            if keys != {"grid"}:
                raise InputError("a grid sweep is {grid: [v1, v2, ...]} (no other keys)", **where)
            grid = value["grid"]
            if not isinstance(grid, list) or not grid:
                raise InputError(f"grid must be a non-empty list (got {grid!r})", **where)
            return _unique(grid, where)
        if keys != {"log_range", "n"}:
            raise InputError("a log-range sweep is {log_range: [lo, hi], n: N} (both keys)", **where)
        lr_, n = value["log_range"], value["n"]
        if not (isinstance(lr_, list) and len(lr_) == 2 and all(_is_number(x) for x in lr_)):
            raise InputError(f"log_range must be [lo, hi], two numbers (got {lr_!r})", **where)
        lo, hi = float(lr_[0]), float(lr_[1])
        if not (0 < lo < hi and math.isfinite(hi)):
            raise InputError(f"log_range needs 0 < lo < hi (got [{lo:g}, {hi:g}])", **where)
        if not (isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_CONFIGS):
            msg = f"log_range's n must be an integer >= 2 and <= {MAX_CONFIGS} (got {n!r})"
            raise InputError(msg, **where)
        return log_range(lo, hi, n)
    if isinstance(value, list):
        if not value:
            raise InputError("empty list: a grid needs at least one value", **where)
        if len(value) > MAX_CONFIGS:
            raise InputError(f"a grid of {len(value)} values: at most {MAX_CONFIGS}", **where)
        if tuple_valued:
            lists = [isinstance(x, list) for x in value]
            if not any(lists):
                return None  # betas: [0.9, 0.999] is one tuple value
            if not all(lists):
                raise InputError(
                    "a tuple-valued hyperparameter is one list of numbers (a value) or a list of lists "
                    f"(a grid), not a mix (got {value!r})",
                    **where,
                )
        return _unique(value, where)
    return None


def _unique(values: list[Any], where: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise InputError(f"grid value {v!r} appears twice (each configuration costs a trial)", **where)
        seen.append(v)
    return list(values)


@dataclass
class OptimizerSweep:
    """One recipe optimizer's configurations: the fixed hyperparameters and the swept axes."""

    index: int  # position in recipe.optimizers
    label: str
    name: str
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]  # swept hyperparameter -> values, in the recipe's order
    configs: list[dict[str, Any]] = field(default_factory=list)  # the given hyperparameters per config

    @property
    def n(self) -> int:
        return len(self.configs)

    def swept_values(self, j: int) -> dict[str, Any]:
        return {k: self.configs[j][k] for k in self.axes}

    def config_label(self, j: int) -> str:
        """``adam[lr=0.001]`` (only the swept values); the plain label when nothing is swept."""
        if not self.axes:
            return self.label
        return f"{self.label}[{format_values(self.swept_values(j))}]"


def format_values(values: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, (list, tuple)):
            return "(" + ",".join(one(x) for x in v) + ")"
        return str(v)

    return ",".join(f"{k}={one(v)}" for k, v in values.items())


def _expand(recipe: Recipe, i: int, file: str | None) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(fixed hyperparameters, sweep axes) of optimizer ``i``; InputError located at the bad key."""
    from adacli.optim.registry import resolve_optimizer

    spec = recipe.optimizers[i]
    given = spec.hparams
    tuple_keys: set[str] = set()
    if any(isinstance(v, list) for v in given.values()):
        # registry coercion tells which keys take tuples: a list given where the default is a tuple
        # comes back as a tuple (name and key errors are check_environment's, reported before this)
        try:
            resolved = resolve_optimizer(spec.name, given)
            tuple_keys = {
                k
                for k, v in given.items()
                if isinstance(v, list) and isinstance(resolved.hparams.get(k), tuple)
            }
        except InputError:
            pass
    fixed: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    for k, v in given.items():
        values = _axis(v, k in tuple_keys, _where(recipe, file, "optimizers", i, k))
        if values is None:
            fixed[k] = v
        else:
            axes[k] = values
    n = math.prod(len(v) for v in axes.values())
    if n > MAX_CONFIGS:
        shown = " x ".join(f"{len(v)} {k}" for k, v in axes.items())
        raise InputError(
            f"{n} configurations ({shown}): at most {MAX_CONFIGS} per optimizer (each one is a trial)",
            **_where(recipe, file, "optimizers", i),
        )
    return fixed, axes


def optimizer_configs(recipe: Recipe, i: int, *, file: str | None = None) -> list[dict[str, Any]]:
    """The concrete hyperparameter dicts of optimizer ``i``: its cross product of sweep axes, in order
    (one dict, equal to ``spec.hparams``, when nothing is swept)."""
    fixed, axes = _expand(recipe, i, file)
    if not axes:
        return [dict(recipe.optimizers[i].hparams)]
    out = []
    for point in itertools.product(*axes.values()):
        config = dict(recipe.optimizers[i].hparams)
        config.update(fixed)
        config.update(dict(zip(axes, point, strict=True)))
        out.append(config)
    return out


def covering_configs(recipe: Recipe, i: int, *, file: str | None = None) -> list[dict[str, Any]]:
    """Configurations of optimizer ``i`` in which every value of every swept hyperparameter appears at
    least once (as many as its longest axis; the first is the first configuration): what a check that
    cannot afford every point of a large sweep runs (a 100 x 10 grid: 100 configurations, not 1,000)."""
    fixed, axes = _expand(recipe, i, file)
    if not axes:
        return [dict(recipe.optimizers[i].hparams)]
    out = []
    for k in range(max(len(v) for v in axes.values())):
        config = dict(recipe.optimizers[i].hparams)
        config.update(fixed)
        config.update({key: values[k % len(values)] for key, values in axes.items()})
        out.append(config)
    return out


def expand(recipe: Recipe, *, file: str | None = None) -> list[OptimizerSweep]:
    """Every optimizer of the recipe with its configurations (checks the budget rule too)."""
    from adacli.recipe import assign_labels

    labels = assign_labels(recipe.optimizers)
    out = []
    for i, spec in enumerate(recipe.optimizers):
        fixed, axes = _expand(recipe, i, file)
        sw = OptimizerSweep(index=i, label=labels[i], name=spec.name, fixed=fixed, axes=axes)
        sw.configs = optimizer_configs(recipe, i, file=file)
        out.append(sw)
    check_budgets(recipe, file=file, sweeps=out)
    return out


def is_sweep(recipe: Recipe) -> bool:
    """Whether any optimizer hyperparameter of the recipe is swept."""
    return any(sw.axes for sw in expand(recipe))


def check_budgets(
    recipe: Recipe, *, file: str | None = None, sweeps: Sequence[OptimizerSweep] | None = None
) -> None:
    """Equal tuning budgets: every optimizer gets the same number of configurations, unless
    ``sweep.equal_budget`` is false (InputError, exit 2, otherwise)."""
    if sweeps is None:
        counts = [len(optimizer_configs(recipe, i, file=file)) for i in range(len(recipe.optimizers))]
        names = [s.label or s.name for s in recipe.optimizers]
    else:
        counts = [sw.n for sw in sweeps]
        names = [sw.label for sw in sweeps]
    if len(set(counts)) > 1 and recipe.sweep.equal_budget:
        shown = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
        raise InputError(
            f"optimizers get different numbers of configurations ({shown}): a fair comparison tunes each "
            "with the same budget; give every optimizer a grid of the same size, or set "
            "sweep: {equal_budget: false} (the tables then say so)",
            file=file or recipe.source_file,
            line=recipe.line_of("optimizers"),
            field="optimizers",
        )


# --- selection -------------------------------------------------------------------------------------


def val_of(trial: TrialResult) -> dict[str, Any] | None:
    """The trial's final validation figures (``extra["val"]``: loss, accuracy, split, size), if any."""
    val = trial.extra.get("val")
    return val if isinstance(val, dict) and val.get("split") == SPLIT else None


def _usable(trial: TrialResult) -> bool:
    val = val_of(trial)
    return (
        trial.status == "ok"
        and val is not None
        and isinstance(val.get("accuracy"), (int, float))
        and isinstance(val.get("loss"), (int, float))
        and math.isfinite(val["loss"])
    )


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclass
class ConfigScore:
    """A configuration's validation figures over the selection seeds."""

    index: int
    label: str
    hparams: dict[str, Any]  # the swept values only
    val_accuracy: float | None  # mean over the usable selection trials
    val_loss: float | None
    n: int  # selection trials
    n_usable: int  # of which finished (status ok) with finite validation figures
    statuses: list[str]


@dataclass
class Choice:
    """The configuration selected for one optimizer, and why."""

    sweep: OptimizerSweep
    index: int
    scores: list[ConfigScore]
    note: str | None = None

    @property
    def chosen(self) -> dict[str, Any]:
        return self.sweep.swept_values(self.index)

    @property
    def config(self) -> dict[str, Any]:
        return self.sweep.configs[self.index]


def score_configs(sweep: OptimizerSweep, trials_by_config: dict[int, list[TrialResult]]) -> list[ConfigScore]:
    out = []
    for j in range(sweep.n):
        trials = trials_by_config.get(j, [])
        good = [t for t in trials if _usable(t)]
        out.append(
            ConfigScore(
                index=j,
                label=sweep.config_label(j),
                hparams=sweep.swept_values(j),
                val_accuracy=_mean([float(val_of(t)["accuracy"]) for t in good]),  # type: ignore[index]
                val_loss=_mean([float(val_of(t)["loss"]) for t in good]),  # type: ignore[index]
                n=len(trials),
                n_usable=len(good),
                statuses=[t.status for t in trials],
            )
        )
    return out


def select(
    sweep: OptimizerSweep, trials_by_config: dict[int, list[TrialResult]], metric: str = "val_accuracy"
) -> Choice:
    """The best configuration by ``metric`` on the validation split over the selection seeds.

    Rule: configurations whose every selection trial finished (status ``ok``, finite validation loss)
    rank first; then ``val_accuracy`` highest (ties: lower val loss) or ``val_loss`` lowest (ties: higher
    accuracy); remaining ties go to the earlier configuration in the recipe's order. The test split is
    never read. When no configuration finished, the first one is kept and the choice says so.
    """
    scores = score_configs(sweep, trials_by_config)

    def key(s: ConfigScore) -> tuple[Any, ...]:
        complete = s.n > 0 and s.n_usable == s.n
        acc = s.val_accuracy if s.val_accuracy is not None else -math.inf
        loss = s.val_loss if s.val_loss is not None else math.inf
        primary = (-acc, loss) if metric == "val_accuracy" else (loss, -acc)
        return (not complete, -s.n_usable, *primary, s.index)

    best = min(scores, key=key)
    note = None
    if best.n_usable == 0:
        note = "no configuration finished without diverging or failing; the first one is kept"
        best = scores[0]
    elif best.n_usable < best.n:
        note = "every configuration diverged or failed on some selection seed; chosen among the finished ones"
    return Choice(sweep=sweep, index=best.index, scores=scores, note=note)


__all__ = [
    "SPLIT",
    "Choice",
    "ConfigScore",
    "OptimizerSweep",
    "check_budgets",
    "covering_configs",
    "expand",
    "format_values",
    "is_sweep",
    "log_range",
    "optimizer_configs",
    "select",
    "val_of",
]
