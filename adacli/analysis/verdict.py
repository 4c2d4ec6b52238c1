"""The statistics stage of a run: paired outcomes, families, "best" sets and the headline (DESIGN.md §4).

It runs after :mod:`adacli.analysis.metrics` (which defines every per-trial figure) and before the report
(which renders and stores what this module decides). The numbers come from
:mod:`adacli.analysis.outcomes` (the floored paired t-test of :mod:`adacli.analysis.stats`, its
simultaneous intervals and the four outcomes); this module decides *which* numbers are paired and how:

* **Paired by seed.** For each metric, each label contributes one value per seed, and each pair of labels
  ``(a, b)`` (in table order, ``a`` above ``b``) is compared on the seeds where both have a value.
* **Which trials give a value.** Accuracy, gap, loss and timing figures: trials that finished without
  diverging (the same trials as the table's means). Steps/seconds-to-target: those trials plus the
  diverged ones. A failed or interrupted trial gives no value, so its seed drops out of every pair of its
  label (``n`` shrinks and says so).
* **Censoring** (:func:`adacli.analysis.metrics.censor_values`, one rule for compare and suite): a trial
  that never reached the target, or diverged, counts as budget + 1 step, and as the run's longest
  training time + one step in seconds; such values are counted in ``censored``.
* **Families.** Each metric's pairs form one family, adjusted together (Bonferroni: simultaneous
  intervals). The recipe's ``verdict.primary`` metric (default final test accuracy) is the *primary*
  family: it gives the headline, "best" and the Δ column; the others are *secondary*. ``families`` in
  results.json says so. With seeds until decided, the primary family's intervals are the repeated
  confidence intervals of the group-sequential design (:mod:`adacli.analysis.sequential`).
* **Resolution** (the variance floor of the test): one test image (``100 / test_size`` points) for the
  accuracy metrics and the gap, one step for steps-to-target, one median step time for seconds.
* **Best** of a metric: the *eligible* labels (at least 2 usable seeds, usable on more than half of
  their seeds) that are ``better`` or ``equivalent`` against every other eligible label and ``worse``
  than none. So a label is never best by absence of evidence, by having diverged, or with one seed. In a
  secondary column only the primary metric's best labels may be best (best is a recommendation).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adacli.analysis import headline as headline_text
from adacli.analysis import metrics, outcomes, sequential, stats
from adacli.analysis.stats import PairedResult
from adacli.errors import InputError
from adacli.recipe import VERDICT_METRICS
from adacli.results import OptimizerSummary, Stat, Target, TrialResult

#: metric -> higher is better, in table order
METRICS: dict[str, bool] = {m: outcomes.DEFAULT_RULES[m].higher_is_better for m in VERDICT_METRICS}
PRIMARY = VERDICT_METRICS[0]
ACCURACY = "final_test_accuracy"
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
_IMAGE_METRICS = ("final_test_accuracy", "best_test_accuracy", "generalization_gap")
_TO_TARGET = ("steps_to_target", "seconds_to_target")


@dataclass
class Settings:
    """What a verdict is asked to decide: the recipe's ``verdict`` keys and reference, the test-set size
    (the accuracies' resolution) and, for seeds until decided, the design and its looks so far."""

    primary: str = PRIMARY
    margins: dict[str, float] = field(default_factory=dict)
    reference: str | None = None
    test_size: int | None = None
    design: sequential.Design | None = None
    looks: list[int] = field(default_factory=list)  # seeds run at each look (sequential)
    stopped: str | None = None  # why the rounds stopped: decided | max | interrupted

    @classmethod
    def of_run(
        cls, recipe: Mapping[str, Any], environment: Mapping[str, Any], seeds: Mapping[str, Any] | None = None
    ) -> Settings:
        """The settings of a saved or running run: its recipe's dict, environment and ``seeds`` record."""
        spec = recipe.get("verdict") if isinstance(recipe.get("verdict"), dict) else {}
        data = environment.get("data") if isinstance(environment.get("data"), dict) else {}
        ref = recipe.get("reference")
        out = cls(
            primary=str(spec.get("primary") or PRIMARY),
            margins={str(k): float(v) for k, v in (spec.get("margins") or {}).items()},
            reference=ref if isinstance(ref, str) else None,
            test_size=data.get("test_size") if isinstance(data.get("test_size"), int) else None,
        )
        if isinstance(seeds, Mapping) and seeds.get("mode") == "sequential":
            out.design = sequential.Design(
                int(seeds["min"]), int(seeds["max"]), int(seeds["step"]),
                spending=str(seeds.get("spending", "pocock")),
            )  # fmt: skip
            out.looks = [int(n) for n in seeds.get("looks") or []]
            out.stopped = seeds.get("stopped")
        return out


def rules_for(
    settings: Settings, trials: Sequence[TrialResult], ok: Sequence[bool] | None = None
) -> dict[str, outcomes.MetricRule]:
    """Each metric's rule: the default direction, scale and range, the recipe's margin, the resolution.
    ``ok``: :func:`adacli.analysis.metrics.usable` of each trial, when the caller has it already."""
    ok = ok if ok is not None else [metrics.usable(t) for t in trials]
    pairs = zip(trials, ok, strict=True)
    step_times = [t.train_seconds / t.steps_done for t, u in pairs if u and t.steps_done]
    resolution = {
        **dict.fromkeys(_IMAGE_METRICS, 100.0 / settings.test_size if settings.test_size else 0.0),
        "steps_to_target": 1.0,
        "seconds_to_target": statistics.median(step_times) if step_times else 0.0,
    }
    out = {}
    for metric, rule in outcomes.DEFAULT_RULES.items():
        changes: dict[str, Any] = {"resolution": resolution.get(metric, rule.resolution)}
        if metric in settings.margins:
            changes["margin"] = settings.margins[metric]
        out[metric] = outcomes.with_rule(rule, **changes)
    return out


# --- the values a paired comparison uses -------------------------------------------------------------


@dataclass
class SeedValues:
    """Per metric, per label, per seed: the value a paired test uses; and which of them are censored."""

    labels: list[str]
    seeds: list[int]
    values: dict[str, dict[str, dict[int, float]]]
    censored: dict[str, set[int]] = field(default_factory=dict)  # label -> seeds censored (to-target)

    def row(self, metric: str, label: str, seeds: Sequence[int] | None = None) -> list[float | None]:
        by_seed = self.values[metric].get(label, {})
        return [by_seed.get(s) for s in (self.seeds if seeds is None else seeds)]

    def positions(self, label: str) -> set[int]:
        """The positions (in ``seeds``) of the label's censored seeds."""
        return {i for i, s in enumerate(self.seeds) if s in self.censored.get(label, set())}


def seed_values(
    trials: Sequence[TrialResult], target: Target | None, usable: Sequence[bool] | None = None
) -> SeedValues:
    """The paired values of every metric (see the module docstring for which trial gives what);
    ``usable``: :func:`adacli.analysis.metrics.usable` of each trial, when the caller has it already."""
    usable = usable if usable is not None else [metrics.usable(t) for t in trials]
    labels = list(dict.fromkeys(t.label for t in trials))
    seeds = sorted({t.seed for t in trials})
    values: dict[str, dict[str, dict[int, float]]] = {m: {} for m in METRICS}
    censored: dict[str, set[int]] = {label: set() for label in labels}
    budget_steps, budget_secs = metrics.censor_values(trials)
    tgt = target or Target(metric="train_loss", value=None, source="default", description="")
    for t, ok in zip(trials, usable, strict=True):
        if ok:
            for name, fn in _PER_TRIAL.items():
                v = fn(t)
                if v is not None and math.isfinite(v):
                    values[name].setdefault(t.label, {})[t.seed] = float(v)
        if not ok and not metrics.trial_diverged(t):
            continue  # failed or interrupted: no value, the seed drops out of this label's pairs
        steps = metrics.steps_to_target(t, tgt) if ok else None
        if steps is None:
            steps_v, secs_v = budget_steps, budget_secs
            censored[t.label].add(t.seed)
        else:  # metrics.seconds_to_target, without smoothing the curve a second time
            steps_v, secs_v = float(steps), (float(t.times[steps - 1]) if steps <= len(t.times) else None)
        values["steps_to_target"].setdefault(t.label, {})[t.seed] = steps_v
        if secs_v is not None and secs_v > 0:
            values["seconds_to_target"].setdefault(t.label, {})[t.seed] = float(secs_v)
    return SeedValues(labels, seeds, values, censored)


# --- the verdict --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the statistics stage decided about a run; stored in ``results.json`` as the top-level keys
    ``comparisons``, ``best``, ``reference``, ``primary``, ``headline``, ``families`` and ``seeds``."""

    comparisons: list[PairedResult]
    best: dict[str, list[str]]
    reference: str | None = None
    primary: str = PRIMARY
    headline: str = ""
    families: list[dict[str, Any]] = field(default_factory=list)
    seeds: dict[str, Any] | None = None

    @property
    def has_verdict(self) -> bool:
        """False when no pair has two paired seeds (one seed, or a single label): values only."""
        return any(r.test != "none" for r in self.comparisons)

    def pair(self, metric: str, a: str, b: str) -> PairedResult | None:
        """The comparison of ``a`` against ``b``, whichever order it is stored in."""
        for r in self.comparisons:
            if r.metric == metric and (r.a, r.b) == (a, b):
                return r
            if r.metric == metric and (r.a, r.b) == (b, a):
                return flipped(r)
        return None

    def top(self) -> set[str]:
        """The labels best in the primary metric: the only ones any column may mark as best."""
        return set(self.best.get(self.primary) or [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "comparisons": [r.to_dict() for r in self.comparisons],
            "best": {k: list(v) for k, v in self.best.items()},
            "reference": self.reference,
            "primary": self.primary,
            "headline": self.headline,
            "families": self.families,
            "seeds": self.seeds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            comparisons=[PairedResult.from_dict(r) for r in data.get("comparisons") or []],
            best={str(k): list(v) for k, v in (data.get("best") or {}).items()},
            reference=data.get("reference"),
            primary=str(data.get("primary") or PRIMARY),
            headline=str(data.get("headline") or ""),
            families=list(data.get("families") or []),
            seeds=data.get("seeds"),
        )


def flipped(r: PairedResult) -> PairedResult:
    """``r`` seen from ``b``: the difference negated (or the ratio inverted), the outcome mirrored."""
    swap = {"a": "b", "b": "a", None: None}
    if r.scale == "ratio":
        est = None if not r.estimate else 1.0 / r.estimate
        ci = None if r.ci95 is None else [1.0 / r.ci95[1], 1.0 / r.ci95[0]]
    else:
        est = None if r.estimate is None else -r.estimate + 0.0
        ci = None if r.ci95 is None else [-r.ci95[1] + 0.0, -r.ci95[0] + 0.0]
    return dataclasses.replace(
        r, a=r.b, b=r.a, mean_diff=None if r.mean_diff is None else -r.mean_diff + 0.0, estimate=est,
        ci95=ci, better=swap[r.better], outcome=outcomes.flip(r.outcome),
        ci_clipped=None if r.ci_clipped is None else [r.ci_clipped[1], r.ci_clipped[0]],
    )  # fmt: skip


def add_ci95(summaries: Sequence[OptimizerSummary], rules: Mapping[str, outcomes.MetricRule]) -> None:
    """Fill ``ci95`` of every :class:`Stat` of the summaries (in place): Student-t with the metric's
    resolution floor, clipped to its range (``ci95_clipped`` says which end was cut)."""
    for s in summaries:
        for f in dataclasses.fields(s):
            v = getattr(s, f.name)
            if not isinstance(v, Stat):
                continue
            rule = rules.get(f.name) or rules.get(f.name.replace("train_eval", "test"))
            lower = rule.lower if rule is not None else None
            upper = rule.upper if rule is not None else None
            resolution = rule.resolution if rule is not None else 0.0
            iv = stats.interval_from_stats(
                v.mean, v.std, v.n, resolution=resolution, lower=lower, upper=upper
            )
            v.ci95 = None if iv is None else iv.to_list()
            v.ci95_clipped = None if iv is None or not any(iv.clipped) else list(iv.clipped)


def analyze(
    trials: Sequence[TrialResult],
    summaries: Sequence[OptimizerSummary],
    target: Target | None,
    reference: str | None = None,
    settings: Settings | None = None,
) -> Verdict:
    """The statistics stage: ``ci95`` on every summary Stat (in place), every metric's comparisons (one
    family each), the best set of each metric, the families, the seeds record and the headline."""
    settings = settings or Settings()
    if reference is not None:
        settings = dataclasses.replace(settings, reference=reference)
    usable = [metrics.usable(t) for t in trials]  # read every loss curve once
    rules = rules_for(settings, trials, usable)
    add_ci95(summaries, rules)
    sv = seed_values(trials, target, usable)
    by_metric = {metric: compare_metric(sv, metric, rules[metric], settings) for metric in METRICS}
    ok = eligible(trials, usable)
    top = set(best_labels(ok, by_metric[settings.primary], sv.labels))
    best: dict[str, list[str]] = {}
    families: list[dict[str, Any]] = []
    for metric, family in by_metric.items():
        primary = metric == settings.primary
        seq = _sequential_record(settings, sv) if primary and settings.design is not None else None
        role = "primary" if primary else "secondary"
        families.append(outcomes.describe_family(metric, family, role=role, sequential=seq))
        best[metric] = best_labels(ok, family, sv.labels, among=None if primary else top)
    comparisons = [r for family in by_metric.values() for r in family]
    seeds = seeds_record(settings, sv)
    v = Verdict(comparisons, best, settings.reference, settings.primary, "", families, seeds)
    v.headline = headline_text.headline(v, rules[settings.primary], n_seeds=len(sv.seeds))
    return v


def compare_metric(
    sv: SeedValues, metric: str, rule: outcomes.MetricRule, settings: Settings, plan_seeds: bool | None = None
) -> list[PairedResult]:
    """Every pair of labels on one metric: one family (Bonferroni), or for the primary metric of a
    seeds-until-decided run the group-sequential levels of each pair."""
    primary = metric == settings.primary
    rows = {label: sv.row(metric, label) for label in sv.labels}
    censored = {label: sv.positions(label) for label in sv.labels} if metric in _TO_TARGET else None
    levels = _sequential_levels(sv, metric, settings) if primary and settings.design is not None else None
    return outcomes.compare_pairs(
        rows, rule, metric=metric, family=metric, alpha_pair=levels, censored=censored,
        plan_seeds=primary if plan_seeds is None else plan_seeds,
    )  # fmt: skip


def _pairs(labels: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]


def _sequential_levels(sv: SeedValues, metric: str, settings: Settings) -> dict[tuple[str, str], float]:
    """Each pair's nominal level at the last look: the design shared by the family's pairs (Bonferroni),
    the pair's own seed counts at each look (a seed where either trial failed does not count)."""
    assert settings.design is not None
    pairs = _pairs(sv.labels)
    design = dataclasses.replace(settings.design, pairs=max(1, len(pairs)))
    looks = settings.looks or [len(sv.seeds)]
    out = {}
    for a, b in pairs:
        ra, rb = sv.row(metric, a), sv.row(metric, b)
        both = [x is not None and y is not None for x, y in zip(ra, rb, strict=True)]
        out[(a, b)] = design.level([sum(both[:n]) for n in looks])
    return out


def _sequential_record(settings: Settings, sv: SeedValues) -> dict[str, Any]:
    assert settings.design is not None
    design = dataclasses.replace(settings.design, pairs=max(1, len(_pairs(sv.labels))))
    return {**design.describe(), "looks": list(settings.looks or [len(sv.seeds)])}


def seeds_record(settings: Settings, sv: SeedValues) -> dict[str, Any]:
    """The ``seeds`` key of results.json: fixed or sequential, and why a sequential run stopped."""
    if settings.design is None:
        return {"mode": "fixed", "n": len(sv.seeds)}
    stopped = settings.stopped or "max"
    why = {
        "decided": "every primary comparison it waits for is decided",
        "max": f"reached max = {settings.design.n_max} seeds before every primary comparison was decided",
        "interrupted": "interrupted before the rounds ended",
    }.get(stopped, stopped)
    return {"mode": "sequential", **_sequential_record(settings, sv), "n": len(sv.seeds), "stopped": stopped,
            "why": why}  # fmt: skip


# --- best ---------------------------------------------------------------------------------------------


def eligible(trials: Sequence[TrialResult], ok: Sequence[bool] | None = None) -> set[str]:
    """Labels that may be best: at least 2 usable seeds, and usable on more than half of their seeds
    (a label that diverged or failed on most seeds is never best, whatever its surviving seeds say)."""
    ok = ok if ok is not None else [metrics.usable(t) for t in trials]
    counts: dict[str, list[int]] = {}
    for t, u in zip(trials, ok, strict=True):
        c = counts.setdefault(t.label, [0, 0])
        c[0] += u
        c[1] += 1
    return {label for label, (ok, n) in counts.items() if ok >= 2 and 2 * ok > n}


def best_labels(
    ok: set[str],
    family: Sequence[PairedResult],
    labels: Sequence[str],
    among: set[str] | None = None,
) -> list[str]:
    """The eligible labels (``ok``, :func:`eligible`) decided not worse than any other: ``better`` or
    ``equivalent`` against every other eligible label, ``worse`` than none at all ([] when none qualifies,
    or with a single label).

    ``among``: for a secondary metric, the labels best in the primary one; only they may be best here
    ("best" is a recommendation, and it comes from the primary metric: an optimizer that never learned
    has the smallest generalization gap and the cheapest step, which makes it no one's best choice, and
    neither is one that may still turn out worse in test accuracy). They are still compared with every
    eligible label."""
    if len(labels) < 2:
        return []
    outcome: dict[tuple[str, str], str | None] = {}
    for r in family:
        outcome[(r.a, r.b)], outcome[(r.b, r.a)] = r.outcome, outcomes.flip(r.outcome)
    best = []
    for label in labels:
        if label not in ok or (among is not None and label not in among):
            continue
        others = [m for m in labels if m != label]
        if any(outcome.get((label, m)) == "worse" for m in others):
            continue
        if all(outcome.get((label, m)) in ("better", "equivalent") for m in others if m in ok):
            best.append(label)
    return best


# --- seeds until decided: the stopping rule ----------------------------------------------------------


def undecided_pairs(
    trials: Sequence[TrialResult], target: Target | None, settings: Settings
) -> list[tuple[str, str]]:
    """The primary comparisons a seeds-until-decided run still waits for, at its last look: the pairs
    with the reference (every pair without one) that are not yet better, worse or equivalent."""
    sv = seed_values(trials, target)
    rule = rules_for(settings, trials)[settings.primary]
    family = compare_metric(sv, settings.primary, rule, settings, plan_seeds=False)
    ref = settings.reference
    waited = [r for r in family if ref is None or ref in (r.a, r.b)]
    return [(r.a, r.b) for r in waited if not sequential.decided(r.outcome)]


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
