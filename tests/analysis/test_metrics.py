"""Metrics on hand-computed histories: smoothing, divergence, targets, censoring, gaps, aggregation."""

from __future__ import annotations

import math

import pytest

from adacli.analysis import metrics
from adacli.recipe import TargetSpec
from adacli.results import EvalPoint, Target, TrialResult

B = metrics.EMA_BETA


def trial(
    label: str = "a",
    seed: int = 0,
    losses: list[float] | None = None,
    *,
    status: str = "ok",
    evals: list[EvalPoint] | None = None,
    step_ms: float | None = None,
    opt_ms: float | None = None,
    state: int | None = None,
) -> TrialResult:
    losses = list(losses or [])
    return TrialResult(
        label=label,
        optimizer=label,
        optimizer_class=f"pkg.{label}",
        hparams={"lr": 0.1},
        seed=seed,
        status=status,  # type: ignore[arg-type]
        losses=losses,
        times=[0.1 * (i + 1) for i in range(len(losses))],
        evals=evals or [],
        step_time_ms=step_ms,
        optimizer_step_ms=opt_ms,
        state_bytes=state,
    )


def ev(step: int, train_acc: float, test_acc: float, train_loss: float = 0.1, test_loss: float = 0.4):
    return EvalPoint(
        step=step,
        seconds=0.1 * step,
        train_eval_loss=train_loss,
        train_eval_accuracy=train_acc,
        test_loss=test_loss,
        test_accuracy=test_acc,
    )


def target(value: float | None) -> Target:
    return Target(metric="train_loss", value=value, source="recipe", description="t")


# --- smoothing -------------------------------------------------------------------------------------


def test_smoothing_is_debiased_ema_by_hand():
    # beta 0.5, losses 4, 0, 0: averages 2, 1, 0.5 divided by 1-0.5^t = 0.5, 0.75, 0.875
    assert metrics.smooth_losses([4.0, 0.0, 0.0], beta=0.5) == pytest.approx([4.0, 4 / 3, 0.5 / 0.875])
    # a constant curve stays constant (debiasing removes the pull towards the zero start)
    assert metrics.smooth_losses([2.0] * 50) == pytest.approx([2.0] * 50)
    assert metrics.smooth_losses([]) == []
    # default beta 0.9: 2 then 0 -> s_t = 2 * 0.9^(t-1) * 0.1 / (1 - 0.9^t)
    s = metrics.smooth_losses([2.0, 0.0, 0.0, 0.0, 0.0])
    assert s == pytest.approx([2.0, 0.18 / 0.19, 0.162 / 0.271, 0.1458 / 0.3439, 0.13122 / 0.40951])


def test_smoothing_propagates_nan_and_rejects_bad_beta():
    s = metrics.smooth_losses([1.0, math.nan, 1.0])
    assert s[0] == 1.0 and math.isnan(s[1]) and math.isnan(s[2])
    with pytest.raises(ValueError):
        metrics.smooth_losses([1.0], beta=1.0)


# --- divergence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "initial", "diverged"),
    [
        (2.3, 2.3, False),
        (999.0, 1.0, False),
        (1000.0, 1.0, False),  # the rule is strictly greater than 1e3 x initial
        (1000.1, 1.0, True),
        (math.nan, 1.0, True),
        (math.inf, 1.0, True),
        (-math.inf, 1.0, True),
        (5.0, 0.0, False),  # zero initial loss: only the non-finite rule applies
        (math.inf, 0.0, True),
        (1.0, math.nan, False),  # no usable initial loss: a finite loss is not a divergence
    ],
)
def test_is_diverged(loss, initial, diverged):
    assert metrics.is_diverged(loss, initial) is diverged


def test_trial_diverged_from_status_or_history():
    assert metrics.trial_diverged(trial(losses=[1.0, 0.5], status="diverged"))
    assert metrics.trial_diverged(trial(losses=[1.0, 2000.0]))  # status not set by the writer
    assert metrics.trial_diverged(trial(losses=[1.0, math.inf]))
    assert not metrics.trial_diverged(trial(losses=[1.0, 900.0, 0.1]))
    assert not metrics.trial_diverged(trial(losses=[]))
    assert not metrics.usable(trial(losses=[1.0], status="interrupted"))
    assert not metrics.usable(trial(losses=[]))


# --- targets and censoring -------------------------------------------------------------------------


def test_steps_and_seconds_to_target_with_censoring():
    t = trial(losses=[2.0, 0.0, 0.0, 0.0, 0.0])  # smoothed: 2, .947, .598, .424, .320
    assert metrics.steps_to_target(t, target(0.6)) == 3
    assert metrics.seconds_to_target(t, target(0.6)) == pytest.approx(0.3)
    assert metrics.steps_to_target(t, target(0.5)) == 4
    assert metrics.steps_to_target(t, target(2.0)) == 1  # <= : reaching exactly counts
    assert metrics.steps_to_target(t, target(0.1)) is None  # never reached: censored
    assert metrics.seconds_to_target(t, target(0.1)) is None
    assert metrics.steps_to_target(t, target(None)) is None
    # the raw loss hits 0 at step 2, but the smoothed one does not: a lucky batch is not convergence
    assert metrics.steps_to_target(t, target(0.9)) == 3
    untimed = trial(losses=[2.0, 0.0, 0.0])
    untimed.times = []
    assert metrics.steps_to_target(untimed, target(0.6)) == 3
    assert metrics.seconds_to_target(untimed, target(0.6)) is None


def test_default_target_is_a_level_a_working_optimizer_reaches_on_every_seed():
    a = trial("a", losses=[2.0, 0.0, 0.0, 0.0, 0.0])  # final smoothed 0.2 * 0.9^4 / (1 - 0.9^5) = 0.3204
    b = trial("b", losses=[1.0] * 5)  # final smoothed 1.0: never learned (a broken optimizer)
    c = trial("c", losses=[1.0, 5.0, math.nan], status="diverged")  # excluded
    d = trial("d", losses=[9.0, 9.0], status="interrupted")  # shorter budget: excluded
    # two labels: the lower median of the levels, a's: the broken b does not set it
    tg = metrics.resolve_target([a, b, c, d], TargetSpec())
    assert tg.source == "default" and tg.value == pytest.approx(0.2 * 0.9**4 / (1 - 0.9**5))
    assert "lower median" in tg.description and "a's" in tg.description
    assert metrics.steps_to_target(a, tg) == 5 and metrics.steps_to_target(b, tg) is None
    # with a reference: the level the reference reached on every seed (its worst seed)
    a2 = trial("a", losses=[2.0, 1.0, 0.5, 0.5, 0.5], seed=1)  # final smoothed 0.8087: a's worst seed
    ref = metrics.resolve_target([a, a2, b], TargetSpec(), reference="a")
    assert ref.value == pytest.approx(metrics.final_train_loss(a2)) and "(the reference)" in ref.description
    assert metrics.steps_to_target(a, ref) is not None and metrics.steps_to_target(a2, ref) == 5
    # three labels, one broken: the middle level, never the broken one's
    e = trial("e", losses=[2.0, 0.5, 0.5, 0.5, 0.5])
    mid = metrics.resolve_target([a, b, e], TargetSpec())
    assert mid.value == pytest.approx(metrics.final_train_loss(e)) and mid.value < 1.0
    # a target at the initial loss still warns that the to-target columns cannot rank speed
    only_b = metrics.resolve_target([b], TargetSpec())
    assert "WARNING: 1/1 trials start at or below it" in only_b.description
    # recipe value wins
    tr = metrics.resolve_target([a, b], TargetSpec(value=0.5))
    assert (tr.value, tr.source) == (0.5, "recipe")
    assert "0.5" in tr.description and "WARNING" not in tr.description
    # no usable trial: no target, every crossing censored
    none = metrics.resolve_target([c], None)
    assert none.value is None and "none" in none.description
    assert metrics.steps_to_target(a, none) is None


def test_censor_values_are_budget_plus_one_step_and_longest_time_plus_one_step():
    a = trial("a", losses=[1.0] * 4)  # 4 steps
    b = trial("b", losses=[1.0] * 6)  # 6 steps
    b.times = [0.5 * (i + 1) for i in range(6)]  # 3.0 s: the longest; one step of it = 0.5 s
    assert metrics.censor_values([a, b]) == (7.0, pytest.approx(3.5))
    assert metrics.censor_values([]) == (1.0, 0.0)


# --- run-level figures -----------------------------------------------------------------------------


def test_mean_train_loss_accuracy_and_gaps_by_hand():
    t = trial(
        losses=[2.0, 0.0, 0.0, 0.0, 0.0],
        evals=[ev(2, 80.0, 70.0), ev(4, 96.0, 92.0), ev(5, 97.5, 91.0, train_loss=0.05, test_loss=0.35)],
    )
    assert metrics.mean_train_loss(t) == pytest.approx(0.4)
    assert metrics.final_test_accuracy(t) == 91.0
    assert metrics.best_test_accuracy(t) == 92.0
    assert metrics.final_train_eval_accuracy(t) == 97.5
    assert metrics.generalization_gap(t) == pytest.approx(6.5)  # points, at the final eval
    assert metrics.loss_gap(t) == pytest.approx(0.30)
    empty = trial(losses=[])
    assert math.isnan(metrics.mean_train_loss(empty))
    assert metrics.final_test_accuracy(empty) is None
    assert metrics.best_test_accuracy(empty) is None
    assert metrics.generalization_gap(empty) is None
    assert metrics.loss_gap(empty) is None
    assert metrics.median_ms([0.003, 0.001, 0.1]) == pytest.approx(3.0)
    assert metrics.median_ms([]) is None


def test_stat_mean_and_sample_std_skip_missing():
    s = metrics.stat([90.0, 92.0, None, math.nan])
    assert (s.mean, s.n) == (91.0, 2)
    assert s.std == pytest.approx(math.sqrt(2.0))
    one = metrics.stat([5.0])
    assert (one.mean, one.std, one.n) == (5.0, 0.0, 1)
    none = metrics.stat([None])
    assert (none.mean, none.std, none.n) == (None, None, 0)


def test_summarize_aggregates_over_seeds_and_counts_divergence_and_censoring():
    drop = [2.0, 0.0, 0.0, 0.0, 0.0]
    fast = [
        trial("fast", 0, drop, evals=[ev(5, 95.0, 90.0)], step_ms=10.0, opt_ms=2.0, state=800),
        trial("fast", 1, drop, evals=[ev(5, 97.0, 92.0)], step_ms=12.0, opt_ms=4.0, state=800),
        trial("fast", 2, [2.0, 1e9], status="diverged", evals=[ev(2, 10.0, 10.0)], step_ms=99.0, state=800),
    ]
    slow = [
        trial("slow", 0, [1.0] * 5, evals=[ev(5, 80.0, 79.0)], step_ms=5.0),
        trial("slow", 1, [1.5] * 5, evals=[ev(5, 81.0, 78.0)], step_ms=7.0),
    ]
    trials = [fast[0], slow[0], fast[1], slow[1], fast[2]]
    tg = metrics.resolve_target(trials, TargetSpec(value=1.0))
    out = metrics.summarize(trials, tg)
    assert [s.optimizer for s in out] == ["fast", "slow"]  # order of first appearance
    f, s = out
    assert (f.n_trials, f.n_diverged) == (3, 1)
    assert f.optimizer_class == "pkg.fast" and f.hparams == {"lr": 0.1}
    # accuracy means exclude the diverged seed
    assert f.final_test_accuracy.mean == pytest.approx(91.0)
    assert f.final_test_accuracy.std == pytest.approx(math.sqrt(2.0))
    assert f.final_test_accuracy.n == 2
    assert f.generalization_gap.mean == pytest.approx(5.0)
    assert f.loss_gap.mean == pytest.approx(0.3)
    assert f.step_time_ms.mean == pytest.approx(11.0)  # the diverged trial's 99 ms is left out
    assert f.optimizer_step_ms.mean == pytest.approx(3.0)
    assert f.state_bytes == 800
    # target 1.0: both good seeds at step 2 (0.947); the diverged seed counts as not reached
    assert f.steps_to_target.mean == 2.0 and f.steps_to_target.n == 2
    assert f.seconds_to_target.mean == pytest.approx(0.2)
    assert f.reached_fraction == pytest.approx(2 / 3)
    assert f.mean_train_loss.mean == pytest.approx(0.4)
    # slow: seed 0 sits at 1.0 (reached at step 1), seed 1 at 1.5 never reaches: censored
    assert s.steps_to_target.mean == 1.0 and s.steps_to_target.n == 1
    assert s.reached_fraction == pytest.approx(0.5)
    assert s.n_diverged == 0 and s.n_failed == 0
    # a failed trial: counted, not averaged, not diverged
    failed = trial("slow", 2, [1.0], status="failed", evals=[ev(1, 0.0, 0.0)])
    (s3,) = [x for x in metrics.summarize([*slow, failed], tg) if x.optimizer == "slow"]
    assert (s3.n_trials, s3.n_failed, s3.n_diverged) == (3, 1, 0)
    assert s3.final_test_accuracy.n == 2 and s3.reached_fraction == pytest.approx(1 / 3)
    assert s.generalization_gap.mean == pytest.approx(2.0)  # (1 + 3) / 2
    assert s.final_train_loss.mean == pytest.approx(1.25)
    assert s.state_bytes is None


def test_summarize_all_diverged_gives_empty_stats():
    ts = [trial("x", i, [1.0, math.nan], status="diverged") for i in range(2)]
    tg = metrics.resolve_target(ts)
    (s,) = metrics.summarize(ts, tg)
    assert (s.n_trials, s.n_diverged, s.reached_fraction) == (2, 2, 0.0)
    assert s.final_test_accuracy.mean is None and s.steps_to_target.n == 0
