"""Metrics on measured trials: targets, convergence speed, accuracy, generalization gap, seed statistics.

Everything here works on :class:`~adacli.results.TrialResult` records (plain lists of floats), never on
torch models, so the same definitions serve the live ``compare`` run, ``adacli report`` on a saved run
folder and the regression gate (DESIGN.md section 4 is the specification; this module is its one
implementation).

Definitions and constants, in one place because tables, files and the gate must agree:

* **Smoothed training loss**: a debiased exponential moving average with ``EMA_BETA = 0.9`` (about a
  10-step horizon). Per-batch losses are noisy, so "the first step where the raw loss is below the
  target" would reward a lucky batch; an EMA removes that luck at the cost of a lag of roughly
  ``1 / (1 - beta)`` steps, which is the same for every optimizer and so does not bias comparisons.
  Debiasing (dividing by ``1 - beta**t``, as in Adam) makes the first steps meaningful instead of being
  pulled towards zero. A window mean would do too; the EMA needs no window edge rule and is O(1) per step.
* **Divergence**: a loss that is not finite, or larger than ``DIVERGENCE_FACTOR = 1e3`` times the initial
  loss.
* **Target**: a smoothed training-loss level. From the recipe, or by default a level a *working*
  optimizer reaches on every seed: each label's "level" is the highest final smoothed loss among its
  usable trials (what it reached on all of them); the target is the reference's level when the run has a
  reference, else the lower median of the labels' levels. One broken optimizer (a learning rate of 1e-6
  that never learns) can no longer make the target trivial, as "the highest final loss of any trial" did.
* **Censoring** (one rule for compare, suite and the gate): a trial that never reaches the target counts
  as budget + 1 step in steps, and as the run's longest training time + one step of it in seconds
  (:func:`censor_values`).
* **Steps/seconds-to-target**: the first step at which the smoothed loss is ``<= target``; seconds are read
  from the trial's training clock (evaluation excluded). Never reached -> ``None`` (censored).
* **Mean training loss**: the mean of the raw per-step training loss over the run, i.e. the area under the
  loss curve divided by the number of steps (a target-free convergence measure).
* **Generalization gap**: train-eval accuracy - test accuracy at the final evaluation, in percentage points;
  **loss gap**: test loss - train-eval loss at the same evaluation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from adacli.recipe import TargetSpec
from adacli.results import OptimizerSummary, Stat, Target, TrialResult

EMA_BETA = 0.9
DIVERGENCE_FACTOR = 1e3


# --- per-step curves -------------------------------------------------------------------------------


def smooth_losses(losses: Sequence[float], beta: float = EMA_BETA) -> list[float]:
    """Debiased EMA of a loss curve: ``avg_t = beta*avg_{t-1} + (1-beta)*x_t``, reported as
    ``avg_t / (1 - beta**t)``.

    The first value equals the first loss (the debiasing divides out the zero start). A non-finite loss
    makes every later value non-finite, which is right: a trial with a NaN loss has diverged from there on.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    out: list[float] = []
    avg = 0.0
    correction = 1.0
    for x in losses:
        avg = beta * avg + (1.0 - beta) * float(x)
        correction *= beta
        out.append(avg / (1.0 - correction))
    return out


def is_diverged(loss: float, initial_loss: float) -> bool:
    """True when ``loss`` means the run has blown up: not finite, or > ``DIVERGENCE_FACTOR`` x the initial.

    The ratio rule needs a positive, finite initial loss to be meaningful (cross-entropy always is); with
    a zero or negative initial loss only the non-finite rule applies, because "1000 x 0" would call every
    positive loss a divergence.
    """
    if not math.isfinite(loss):
        return True
    if math.isfinite(initial_loss) and initial_loss > 0.0:
        return loss > DIVERGENCE_FACTOR * initial_loss
    return False


def trial_diverged(trial: TrialResult) -> bool:
    """Whether a trial diverged: its status says so, or its recorded losses break the divergence rule.

    The history check is a safety net for results written by other tools (or an older adacli) that did not
    set the status; a trial from ``run_trial`` already stops and says ``diverged``.
    """
    if trial.status == "diverged":
        return True
    if not trial.losses:
        return False
    first = trial.losses[0]
    return any(is_diverged(x, first) for x in trial.losses)


def usable(trial: TrialResult) -> bool:
    """A trial whose numbers enter the means: it finished (status ``ok``) and did not diverge.

    ``failed`` and ``interrupted`` trials ran a different (shorter) budget, so averaging them with complete
    ones would be unfair; they are still counted in ``n_trials``.
    """
    return trial.status == "ok" and bool(trial.losses) and not trial_diverged(trial)


# --- targets and convergence speed ----------------------------------------------------------------


def final_train_loss(trial: TrialResult) -> float | None:
    """The smoothed training loss at the last step (None for an empty history)."""
    if not trial.losses:
        return None
    return smooth_losses(trial.losses)[-1]


def resolve_target(
    trials: Iterable[TrialResult], spec: TargetSpec | None = None, reference: str | None = None
) -> Target:
    """The training-loss target of a run: the recipe's value, or the default level.

    Default: each label's level is the highest final smoothed training loss among its usable trials
    (status ``ok``, not diverged), the level it reached on every one of them; the target is the
    ``reference`` label's level when it has one, else the lower median of the labels' levels (with two
    labels the better one's: "how fast to where the better optimizer got"). So a broken optimizer, whose
    final loss stays near the initial one, never sets the target unless half the labels are broken.
    ``value`` is None when no trial finished without diverging (every steps-to-target is then censored).
    """
    trials = list(trials)
    spec = spec or TargetSpec()
    if spec.value is not None:
        return Target(
            metric=spec.metric,
            value=float(spec.value),
            source="recipe",
            description=f"target: smoothed training loss <= {spec.value:.4g} (from the recipe)"
            + _too_loose(trials, float(spec.value)),
        )
    levels = _label_levels(trials)
    if not levels:
        return Target(
            metric=spec.metric,
            value=None,
            source="default",
            description="target: none (no trial finished without diverging)",
        )
    if reference in levels:
        value, rule = levels[reference], f"the level {reference} (the reference) reached on every seed"
    else:
        ordered = sorted(levels.items(), key=lambda kv: kv[1])
        label, value = ordered[(len(ordered) - 1) // 2]
        rule = f"the lower median of the levels each optimizer reached on every seed: {label}'s"
    return Target(
        metric=spec.metric,
        value=value,
        source="default",
        description=f"target: smoothed training loss <= {value:.4g} (default: {rule})"
        + _too_loose(trials, value),
    )


def _label_levels(trials: Sequence[TrialResult]) -> dict[str, float]:
    """Per label, the highest final smoothed loss among its usable trials (the level it always reached)."""
    levels: dict[str, float] = {}
    for t in trials:
        f = final_train_loss(t) if usable(t) else None
        if f is not None and math.isfinite(f):
            levels[t.label] = max(levels.get(t.label, -math.inf), f)
    return levels


def censor_values(trials: Sequence[TrialResult]) -> tuple[float, float]:
    """What a trial that never reached the target counts as: (budget + 1 step, the run's longest training
    time + one step of that trial). The budget is the most steps any trial of the run took. Used by the
    paired comparisons of ``compare`` and by the suite alike (DESIGN.md section 4: one rule)."""
    steps = max((t.steps_done for t in trials), default=0)
    longest = max(trials, key=lambda t: t.train_seconds, default=None)
    if longest is None or longest.train_seconds <= 0:
        return float(steps + 1), 0.0
    step = longest.train_seconds / longest.steps_done if longest.steps_done else 0.0
    return float(steps + 1), float(longest.train_seconds + step)


def _too_loose(trials: Sequence[TrialResult], value: float) -> str:
    """A warning for the description when trials start at or below the target (reached at step 1).

    It happens by definition when some optimizer barely learns within the budget (the default target is
    then about the initial loss): the to-target columns cannot rank speed, and the reader must know.
    """
    at_start = [t for t in trials if usable(t) and t.losses[0] <= value]
    if not at_start:
        return ""
    n = sum(usable(t) for t in trials)
    return (
        f"; WARNING: {len(at_start)}/{n} trials start at or below it (reached at step 1), so steps/secs to "
        "target do not rank speed: set target.value in the recipe, or a longer budget"
    )


def _target_index(trial: TrialResult, target: Target) -> int | None:
    """Index of the first step whose smoothed loss is <= the target, or None."""
    if target.value is None or not trial.losses:
        return None
    for i, s in enumerate(smooth_losses(trial.losses)):
        if s <= target.value:  # NaN compares False: a diverged tail never "reaches"
            return i
    return None


def steps_to_target(trial: TrialResult, target: Target) -> int | None:
    """The first step (1-based, as counted by the trainer) at which the smoothed loss is <= the target.

    None means censored: the trial never reached it within its budget. Computed from the history alone;
    :func:`summarize` additionally treats diverged trials as censored.
    """
    i = _target_index(trial, target)
    return None if i is None else i + 1


def seconds_to_target(trial: TrialResult, target: Target) -> float | None:
    """Training-clock seconds at the step of :func:`steps_to_target` (None when censored or untimed)."""
    i = _target_index(trial, target)
    if i is None or i >= len(trial.times):
        return None
    return float(trial.times[i])


def mean_train_loss(trial: TrialResult) -> float:
    """Mean raw training loss over the run: the area under the loss curve / number of steps.

    Target-free: it rewards getting low early and staying low. NaN for an empty history.
    """
    if not trial.losses:
        return math.nan
    return math.fsum(trial.losses) / len(trial.losses)


# --- accuracy and generalization -------------------------------------------------------------------


def final_test_accuracy(trial: TrialResult) -> float | None:
    """Test accuracy (percent) at the final evaluation."""
    e = trial.final_eval
    return None if e is None else e.test_accuracy


def best_test_accuracy(trial: TrialResult) -> float | None:
    """Best test accuracy (percent) over all evaluations of the run."""
    accs = [e.test_accuracy for e in trial.evals if math.isfinite(e.test_accuracy)]
    return max(accs) if accs else None


def final_train_eval_accuracy(trial: TrialResult) -> float | None:
    """Train-eval accuracy (percent) at the final evaluation."""
    e = trial.final_eval
    return None if e is None else e.train_eval_accuracy


def generalization_gap(trial: TrialResult) -> float | None:
    """Train-eval accuracy - test accuracy at the final evaluation, in percentage points."""
    e = trial.final_eval
    return None if e is None else e.train_eval_accuracy - e.test_accuracy


def loss_gap(trial: TrialResult) -> float | None:
    """Test loss - train-eval loss at the final evaluation."""
    e = trial.final_eval
    return None if e is None else e.test_loss - e.train_eval_loss


def median_ms(durations_s: Sequence[float]) -> float | None:
    """Median of per-step durations given in seconds, in milliseconds (robust to a slow first step)."""
    if not durations_s:
        return None
    return statistics.median(durations_s) * 1e3


# --- aggregation over seeds -------------------------------------------------------------------------


def stat(values: Iterable[float | None]) -> Stat:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of the finite values.

    None and non-finite values are skipped, so ``n`` says how many seeds the figure stands on.
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return Stat(mean=None, std=None, n=0)
    mean = math.fsum(vals) / len(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return Stat(mean=mean, std=std, n=len(vals))


def summarize(trials: Sequence[TrialResult], target: Target) -> list[OptimizerSummary]:
    """One :class:`OptimizerSummary` per label, in order of first appearance, mean ± std over seeds.

    Which trials enter which figure:

    * accuracy, gap, loss, AUC and timing figures: the usable trials only (status ``ok``, not diverged);
      diverged trials are counted in ``n_diverged``, failed or interrupted ones in ``n_failed``, both in
      ``n_trials``, so a row whose means rest on fewer seeds says so;
    * steps/seconds-to-target: mean ± std over the usable trials that reached the target; every other
      trial (censored, diverged, failed) is "not reached", and ``reached_fraction`` = reached / n_trials;
    * ``state_bytes`` and ``peak_memory_bytes``: the largest value recorded by any trial of the label
      (the state size does not depend on the seed; peak memory is a worst case).
    """
    groups: dict[str, list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(t.label, []).append(t)

    summaries: list[OptimizerSummary] = []
    for label, group in groups.items():
        ok = [t for t in group if usable(t)]
        steps = [steps_to_target(t, target) for t in ok]
        secs = [seconds_to_target(t, target) for t in ok]
        reached = sum(s is not None for s in steps)
        states = [t.state_bytes for t in group if t.state_bytes is not None]
        peaks = [t.peak_memory_bytes for t in group if t.peak_memory_bytes is not None]
        first = group[0]
        summaries.append(
            OptimizerSummary(
                optimizer=label,
                optimizer_class=first.optimizer_class,
                hparams=dict(first.hparams),
                n_trials=len(group),
                n_diverged=sum(trial_diverged(t) for t in group),
                final_test_accuracy=stat(final_test_accuracy(t) for t in ok),
                best_test_accuracy=stat(best_test_accuracy(t) for t in ok),
                final_train_eval_accuracy=stat(final_train_eval_accuracy(t) for t in ok),
                generalization_gap=stat(generalization_gap(t) for t in ok),
                loss_gap=stat(loss_gap(t) for t in ok),
                steps_to_target=stat(steps),
                seconds_to_target=stat(secs),
                reached_fraction=reached / len(group),
                mean_train_loss=stat(mean_train_loss(t) for t in ok),
                final_train_loss=stat(final_train_loss(t) for t in ok),
                step_time_ms=stat(t.step_time_ms for t in ok),
                optimizer_step_ms=stat(t.optimizer_step_ms for t in ok),
                state_bytes=max(states) if states else None,
                peak_memory_bytes=max(peaks) if peaks else None,
                n_failed=sum(t.status in ("failed", "interrupted") and not trial_diverged(t) for t in group),
            )
        )
    return summaries
