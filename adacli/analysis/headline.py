"""The verdict in one or two sentences: what the primary comparisons decided, and which label is best.

Printed first in the terminal, report.html and the Markdown, and stored as results.json ``headline``:

    Test accuracy vs adam (6 seeds): sgd-m worse: -2.1 [-3.9, -0.3] pts; adabelief and adamw
    equivalent within ±0.5 pts. Best test accuracy: adam, adabelief, adamw; sgd-m reaches the target
    1.7× faster than adam [1.5, 1.9].

Every number comes from the primary family's comparisons (their simultaneous intervals), formatted by
:mod:`adacli.analysis.numfmt`; nothing here decides anything. Pure text: no adacli imports beyond the
analysis stage's own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adacli.analysis import numfmt
from adacli.analysis.outcomes import MetricRule
from adacli.analysis.stats import PairedResult

NAMES = {
    "final_test_accuracy": "test accuracy",
    "best_test_accuracy": "best test accuracy",
    "generalization_gap": "generalization gap",
    "loss_gap": "loss gap",
    "steps_to_target": "steps to target",
    "seconds_to_target": "seconds to target",
    "final_train_loss": "final training loss",
    "mean_train_loss": "mean training loss",
    "step_time_ms": "step time",
    "optimizer_step_ms": "optimizer step time",
}
_TIMES = ("steps_to_target", "seconds_to_target", "step_time_ms", "optimizer_step_ms")


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _margin(r: PairedResult, rule: MetricRule) -> str:
    if r.scale == "ratio":
        return f"±{numfmt.short((r.margin or 0.0) * 100)} %"
    return f"±{numfmt.short(r.margin or 0.0)} {rule.unit}".rstrip()


def size(r: PairedResult, rule: MetricRule, than: str = "") -> str:
    """How large a decided difference of ``r.a`` against ``r.b`` is: ``+1.2 [+0.3, +2.1] pts``, for
    times ``1.7× faster [1.5, 1.9]`` (the ratio read as a speed-up), for other ratios ``×0.81 [0.7, 0.9]``.
    ``than`` is inserted after faster/slower (``than adam``)."""
    lo, hi = (r.ci95 or [None, None])[:2]
    if r.scale == "ratio" and r.metric in _TIMES and r.estimate and lo and hi:
        if r.estimate < 1:
            x, lo, hi, word = 1 / r.estimate, 1 / hi, 1 / lo, "faster"
        else:
            x, word = r.estimate, "slower"
        d = max(1, numfmt.interval_decimals(lo, hi))
        than = f" {than}" if than else ""
        return f"{numfmt.fixed(x, d)}× {word}{than} {numfmt.interval(lo, hi, d)}"
    if r.scale == "ratio":
        return "×" + numfmt.ratio(r.estimate, lo, hi).replace("×", "", 1)
    unit = f" {rule.unit}" if rule.unit else ""
    cut = (bool(r.ci_clipped[0]), bool(r.ci_clipped[1])) if r.ci_clipped else (False, False)
    return f"{numfmt.estimate(r.estimate, lo, hi, clipped=cut)}{unit}"


def _against(results: Sequence[PairedResult], rule: MetricRule) -> list[str]:
    """One clause per outcome: decided differences one by one, equivalent and undecided grouped."""
    parts: list[str] = []
    for r in results:
        if r.outcome in ("better", "worse"):
            grown = size(r, rule)
            timed = "faster" in grown or "slower" in grown
            parts.append(f"{r.a} {grown}" if timed else f"{r.a} {r.outcome}: {grown}")
    same = [r for r in results if r.outcome == "equivalent"]
    if same:
        parts.append(f"{_join([r.a for r in same])} equivalent within {_margin(same[0], rule)}")
    open_ = [r for r in results if r.outcome == "undecided"]
    if open_:
        need = [r.seeds_to_decide for r in open_]
        known = [str(n) for n in need if n is not None]
        hint = f" (about {_join(known)} seeds would decide)" if len(known) == len(need) else ""
        if not known:
            hint = " (a difference about the size of the margin: no feasible number of seeds decides it)"
        parts.append(f"{_join([r.a for r in open_])} undecided{hint}")
    untested = [r.a for r in results if r.outcome == "untested"]
    if untested:
        parts.append(f"{_join(untested)} untested (fewer than 2 seeds)")
    return parts


def _how_many(seeds: dict[str, Any] | None, n_seeds: int) -> str:
    text = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if seeds and seeds.get("mode") == "sequential":
        text += ", sequential: " + ("decided" if seeds.get("stopped") == "decided" else "stopped at max")
    return text


def headline(verdict: Any, rule: MetricRule, *, n_seeds: int) -> str:
    """One or two sentences: the primary comparisons (against the reference when there is one) and the
    best labels, plus how much faster a decidedly faster optimizer reaches the target."""
    metric = verdict.primary
    name = NAMES.get(metric, metric)
    family = [r for r in verdict.comparisons if r.metric == metric]
    if not any(r.test != "none" for r in family):
        return _values_only(family, name, n_seeds)
    ref = verdict.reference
    if ref is not None:
        vs = [p for label in _labels(family) if label != ref and (p := verdict.pair(metric, label, ref))]
        first = f"{name.capitalize()} vs {ref} ({_how_many(verdict.seeds, n_seeds)}): " + "; ".join(
            _against(vs, rule)
        )
    else:
        undecided = [r for r in family if r.outcome == "undecided"]
        first = f"{name.capitalize()} ({_how_many(verdict.seeds, n_seeds)}): {len(family)} pair(s) compared"
        if undecided:
            first += f", {len(undecided)} undecided"
    best = verdict.best.get(metric) or []
    second = f"Best {name}: {', '.join(best)}" if best else f"No optimizer is decidedly best in {name} yet"
    speed = _speed(verdict, rule) if metric not in _TIMES else ""
    return f"{first}. {second}{'; ' + speed if speed else ''}."


def _labels(family: Sequence[PairedResult]) -> list[str]:
    return list(dict.fromkeys(x for r in family for x in (r.a, r.b)))


def _values_only(family: Sequence[PairedResult], name: str, n_seeds: int) -> str:
    labels = _labels(family)
    if len(labels) < 2:
        seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
        return f"One optimizer ({seeds}): values only, nothing to compare."
    return (
        f"{n_seeds} seed{'s' if n_seeds != 1 else ''} per optimizer: values only, no verdict on {name}; "
        "run 3 or more seeds, or seeds: {until: decided}, to decide."
    )


def _speed(verdict: Any, rule: MetricRule) -> str:
    """``sgd-m reaches the target 1.7× faster than adam [1.5, 1.9]`` for decided speed-ups (at most 2;
    a faster label reached the target, so its figure is not a censoring bound)."""
    ref = verdict.reference
    if ref is None:
        return ""
    found = []
    for r in verdict.comparisons:
        if r.metric == "steps_to_target" and ref in (r.a, r.b) and r.outcome in ("better", "worse"):
            mine = verdict.pair("steps_to_target", r.b if r.a == ref else r.a, ref)
            if mine.outcome == "better":  # slower ones are in the table; the headline names speed-ups
                found.append(f"{mine.a} reaches the target {size(mine, rule, than=f'than {ref}')}")
    return "; ".join(found[:2])
