"""The statistics stage of a run: paired comparisons, "best" sets and the power line (DESIGN.md section 4).

It runs after :mod:`adacli.analysis.metrics` (which defines every per-trial figure) and before the report
(which renders and stores what this module decides). The numbers come from :mod:`adacli.analysis.stats`;
this module decides *which* numbers are paired and how:

* **Paired by seed.** For each metric, each label contributes one value per seed, and each pair of labels
  ``(a, b)`` (in table order, ``a`` above ``b``) is compared on the seeds where both have a value:
  ``mean_diff = mean(a - b)``.
* **Which trials give a value.** Accuracy, gap, loss and timing figures: trials that finished without
  diverging (the same trials as the table's means). Steps/seconds-to-target: those trials plus the
  diverged ones. A failed or interrupted trial gives no value, so its seed drops out of every pair of its
  label (``n`` shrinks and says so): it ran a different budget, and guessing its value would be
  inventing data.
* **Censoring.** A trial that never reached the target, or diverged, counts as ``budget + 1`` steps
  (AlgoPerf's convention), where the budget is the largest number of steps any trial of the run took; for
  seconds it counts as the longest total training time of any trial of the run. (Not the trial's own
  total time: an optimizer whose steps are cheap would otherwise look "faster" than one that did reach
  the target.) Such values are counted in ``censored``. Both conventions make "not reached" worse than
  any reached value, so the test ranks correctly, but the size of a censored difference is a lower
  bound, not a measurement.
* **Families.** Holm's correction runs over the pairs of one metric.
* **Best** of a metric: the label with the best mean (over the values above) and every label not
  significantly worse than it (adjusted p >= 0.05, or significantly *better* on the seeds they share).
  Empty when there is no verdict: a single label, or no pair with two paired seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adacli.analysis import metrics, stats
from adacli.errors import InputError
from adacli.results import OptimizerSummary, Stat, Target, TrialResult

# metric -> higher is better. The first five are the ones every consumer can rely on; the others give
# every mean ± std column of the table the same "best" rule.
METRICS: dict[str, bool] = {
    "final_test_accuracy": True,
    "generalization_gap": False,
    "steps_to_target": False,
    "seconds_to_target": False,
    "final_train_loss": False,
    "best_test_accuracy": True,
    "loss_gap": False,
    "mean_train_loss": False,
    "step_time_ms": False,
    "optimizer_step_ms": False,
}
_PER_TRIAL: dict[str, Callable[[TrialResult], float | None]] = {
    "final_test_accuracy": metrics.final_test_accuracy,
    "generalization_gap": metrics.generalization_gap,
    "final_train_loss": metrics.final_train_loss,
    "best_test_accuracy": metrics.best_test_accuracy,
    "loss_gap": metrics.loss_gap,
    "mean_train_loss": metrics.mean_train_loss,
    "step_time_ms": lambda t: t.step_time_ms,
    "optimizer_step_ms": lambda t: t.optimizer_step_ms,
}
POWER = 0.8
ACCURACY = "final_test_accuracy"


@dataclass
class SeedValues:
    """Per metric, per label, per seed: the value a paired test uses; and which of them are censored."""

    labels: list[str]
    seeds: list[int]
    values: dict[str, dict[str, dict[int, float]]]
    censored: dict[str, set[int]] = field(default_factory=dict)  # label -> seeds censored (to-target)

    def row(self, metric: str, label: str) -> list[float | None]:
        by_seed = self.values[metric].get(label, {})
        return [by_seed.get(s) for s in self.seeds]


def seed_values(trials: Sequence[TrialResult], target: Target | None) -> SeedValues:
    """The paired values of every metric (see the module docstring for which trial gives what)."""
    labels = list(dict.fromkeys(t.label for t in trials))
    seeds = sorted({t.seed for t in trials})
    values: dict[str, dict[str, dict[int, float]]] = {m: {} for m in METRICS}
    censored: dict[str, set[int]] = {label: set() for label in labels}
    budget_steps = max((t.steps_done for t in trials), default=0) + 1
    budget_secs = max((t.train_seconds for t in trials), default=0.0)
    tgt = target or Target(metric="train_loss", value=None, source="default", description="")
    for t in trials:
        ok = metrics.usable(t)
        if ok:
            for name, fn in _PER_TRIAL.items():
                v = fn(t)
                if v is not None and math.isfinite(v):
                    values[name].setdefault(t.label, {})[t.seed] = float(v)
        if not ok and not metrics.trial_diverged(t):
            continue  # failed or interrupted: no value, the seed drops out of this label's pairs
        steps = metrics.steps_to_target(t, tgt) if ok else None
        if steps is None:
            steps_v, secs_v = float(budget_steps), budget_secs
            censored[t.label].add(t.seed)
        else:  # metrics.seconds_to_target, without smoothing the curve a second time
            steps_v, secs_v = float(steps), (float(t.times[steps - 1]) if steps <= len(t.times) else None)
        values["steps_to_target"].setdefault(t.label, {})[t.seed] = steps_v
        if secs_v is not None:
            values["seconds_to_target"].setdefault(t.label, {})[t.seed] = float(secs_v)
    return SeedValues(labels, seeds, values, censored)


@dataclass
class Verdict:
    """What the statistics stage decided about a run; stored in ``results.json`` as the top-level keys
    ``comparisons``, ``best``, ``reference`` and ``power``."""

    comparisons: list[stats.PairedResult]
    best: dict[str, list[str]]
    reference: str | None = None
    power: dict[str, Any] | None = None  # the "how many seeds" line, when nothing is significant

    @property
    def has_verdict(self) -> bool:
        """False when no pair has two paired seeds (one seed, or a single label): values only."""
        return any(r.test != "none" for r in self.comparisons)

    def pair(self, metric: str, a: str, b: str) -> stats.PairedResult | None:
        """The comparison of ``a`` against ``b`` (``mean_diff = a - b``), whichever order it is stored in."""
        for r in self.comparisons:
            if r.metric == metric and (r.a, r.b) == (a, b):
                return r
            if r.metric == metric and (r.a, r.b) == (b, a):
                return _flipped(r)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparisons": [r.to_dict() for r in self.comparisons],
            "best": {k: list(v) for k, v in self.best.items()},
            "reference": self.reference,
            "power": self.power,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            comparisons=[stats.PairedResult.from_dict(r) for r in data.get("comparisons") or []],
            best={str(k): list(v) for k, v in (data.get("best") or {}).items()},
            reference=data.get("reference"),
            power=data.get("power"),
        )


def _flipped(r: stats.PairedResult) -> stats.PairedResult:
    swap = {"a": "b", "b": "a", None: None}
    return dataclasses.replace(
        r,
        a=r.b,
        b=r.a,
        mean_diff=None if r.mean_diff is None else -r.mean_diff + 0.0,
        ci95=None if r.ci95 is None else [-r.ci95[1] + 0.0, -r.ci95[0] + 0.0],
        better=swap[r.better],
    )


def add_ci95(summaries: Sequence[OptimizerSummary]) -> None:
    """Fill ``ci95`` of every :class:`Stat` of the summaries from its mean, std and n (in place)."""
    for s in summaries:
        for f in dataclasses.fields(s):
            v = getattr(s, f.name)
            if isinstance(v, Stat):
                v.ci95 = stats.ci_from_stats(v.mean, v.std, v.n)


def analyze(
    trials: Sequence[TrialResult],
    summaries: Sequence[OptimizerSummary],
    target: Target | None,
    reference: str | None = None,
) -> Verdict:
    """The statistics stage: ``ci95`` on every summary Stat (in place), the paired comparisons of every
    metric (Holm-adjusted per metric), the best set of each metric and, when no difference in test
    accuracy is significant, the number of seeds that would resolve the largest one."""
    add_ci95(summaries)
    sv = seed_values(trials, target)
    comparisons: list[stats.PairedResult] = []
    best: dict[str, list[str]] = {}
    for metric, higher in METRICS.items():
        family = compare_metric(sv, metric, higher)
        comparisons += family
        best[metric] = best_labels(sv, metric, higher, family)
    accuracy = [r for r in comparisons if r.metric == ACCURACY]
    return Verdict(comparisons, best, reference, power_line(sv, accuracy))


def compare_metric(sv: SeedValues, metric: str, higher_is_better: bool) -> list[stats.PairedResult]:
    """Every pair of labels on one metric, Holm-adjusted together."""
    pairs, names, censored = [], [], []
    timed = metric in ("steps_to_target", "seconds_to_target")
    for i, a in enumerate(sv.labels):
        for b in sv.labels[i + 1 :]:
            ra, rb = sv.row(metric, a), sv.row(metric, b)
            pairs.append((ra, rb))
            names.append((a, b))
            cens = sv.censored[a] | sv.censored[b] if timed else set()
            both = [s for s, x, y in zip(sv.seeds, ra, rb, strict=True) if x is not None and y is not None]
            censored.append(sum(s in cens for s in both))
    family = stats.paired_tests(
        pairs, metric=metric, labels=names, higher_is_better=higher_is_better, censored=censored
    )
    return stats.holm_adjust(family, higher_is_better)


def _mean(values: dict[int, float]) -> float | None:
    return math.fsum(values.values()) / len(values) if values else None


def best_labels(
    sv: SeedValues, metric: str, higher_is_better: bool, family: Sequence[stats.PairedResult]
) -> list[str]:
    """The label with the best mean and every label not significantly worse than it ([] = no verdict)."""
    if not any(r.test != "none" for r in family):
        return []
    means = {label: m for label in sv.labels if (m := _mean(sv.values[metric].get(label, {}))) is not None}
    if not means:
        return []
    top = (max if higher_is_better else min)(means, key=lambda label: means[label])
    out = []
    for label in means:
        r = next((r for r in family if {r.a, r.b} == {label, top}), None)
        worse = r is not None and r.significant and (r.a if r.better == "a" else r.b) == top
        if not worse:
            out.append(label)
    return out


def power_line(sv: SeedValues, family: Sequence[stats.PairedResult]) -> dict[str, Any] | None:
    """When no pair differs significantly in test accuracy: how many seeds would detect the largest
    observed difference with 80% power (paired t-test at the observed spread of the differences, at the
    Holm threshold of the smallest p-value, ``0.05 / m`` for ``m`` tested pairs). None when something is
    significant or nothing could be tested."""
    tested = [r for r in family if r.test != "none" and r.mean_diff is not None]
    if not tested or any(r.significant for r in family):
        return None
    largest = max(tested, key=lambda r: abs(r.mean_diff or 0.0))
    alpha = stats.ALPHA / len(tested)
    out: dict[str, Any] = {
        "metric": ACCURACY,
        "a": largest.a,
        "b": largest.b,
        "mean_diff": largest.mean_diff,
        "sd_diff": None,
        "seeds_needed": None,
        "power": POWER,
        "alpha": alpha,
    }
    if largest.test == "identical":
        out["text"] = "no difference in test accuracy: every pair of optimizers scored the same on every seed"
        return out
    sd = stats.diff_sd(sv.row(ACCURACY, largest.a), sv.row(ACCURACY, largest.b))
    needed = stats.seeds_needed(largest.mean_diff or 0.0, sd or 0.0, power=POWER, alpha=alpha)
    out.update(sd_diff=sd, seeds_needed=needed)
    if not largest.mean_diff:
        out["text"] = "no significant difference in test accuracy; every mean paired difference is zero"
        return out
    size = abs(largest.mean_diff)
    diff = f"{largest.a} − {largest.b}, " + (f"{size:.1f} pts" if size >= 0.1 else f"{size:.2g} pts")
    if largest.test == "sign":  # no spread: the t-test's power says nothing; the sign test's reach does
        needed = stats.sign_test_seeds(alpha)
        out["seeds_needed"] = needed
        out["text"] = (
            f"no significant difference in test accuracy; the largest difference ({diff}) is the same on "
            f"every seed, which the exact sign test calls significant from {needed} seeds that all agree"
        )
        return out
    how_many = f"about {needed} seeds" if needed is not None else "more than 100000 seeds"
    out["text"] = (
        f"no significant difference in test accuracy; at the observed spread {how_many} would detect the "
        f"largest difference ({diff}) with {POWER:.0%} power"
    )
    return out


def check_reference(
    reference: str | None,
    labels: Sequence[str],
    *,
    file: str | None = None,
    line: int | None = None,
    field_name: str = "reference",
) -> None:
    """An unknown reference label is bad input (exit 2), naming the labels allowed."""
    if reference is not None and reference not in labels:
        from adacli.errors import closest

        raise InputError(
            f"unknown optimizer label {reference!r}",
            file=file,
            line=line,
            field=field_name,
            allowed=list(labels),
            suggestion=closest(reference, labels),
        )
