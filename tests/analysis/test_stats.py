"""adacli.analysis.stats (and the pairing of adacli.analysis.outcomes) on hand-computed cases, R's and
scipy's documented reference values, an exhaustive continuity check, and scipy's exact Wilcoxon values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adacli.analysis import outcomes, stats

# Student's (1908) sleep data, as in R's ``t.test(extra ~ group, data = sleep, paired = TRUE)``:
# extra hours of sleep with drug 1 and drug 2, paired by patient. R prints t = -4.0621, df = 9,
# p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142, mean difference -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
PLAIN = outcomes.MetricRule(higher_is_better=True)  # a continuous metric: no floor, no margin, no range


def compare(a, b, rule=PLAIN, **kw):
    return outcomes.compare_pairs({"a": a, "b": b}, rule, **kw)[0]


def test_paired_t_worked_by_hand() -> None:
    # differences d = [1, 1, 1.5]: mean 7/6, sd = sqrt(1/12), se = sd/sqrt(3) = 1/6, t = (7/6)/(1/6) = 7.
    # t(0.975, 2) = 4.302653, so the CI is 7/6 -+ 4.302653/6 = [0.449558, 1.883775].
    # Two-sided p = 2 * (1 - F_t2(7)); F_t2(x) = 1/2 + x / (2 sqrt(2 + x^2)), so p = 1 - 7/sqrt(51).
    r = compare([1.0, 2.0, 3.5], [0.0, 1.0, 2.0], metric="m")
    assert (r.metric, r.a, r.b, r.n, r.test) == ("m", "a", "b", 3, "paired-t")
    assert r.mean_diff == pytest.approx(7 / 6) and r.estimate == pytest.approx(7 / 6)
    assert r.ci95 == pytest.approx([7 / 6 - 4.302653 / 6, 7 / 6 + 4.302653 / 6], abs=1e-6)
    assert r.p_value == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-9)
    assert r.p_adjusted == pytest.approx(r.p_value) and r.significant and r.better == "a"
    assert r.outcome == "better" and r.wilcoxon_p is None  # fewer than 6 seeds
    lower = compare([1.0, 2.0, 3.5], [0.0, 1.0, 2.0], outcomes.MetricRule(higher_is_better=False))
    assert lower.outcome == "worse" and lower.better == "b"


def test_paired_t_matches_r_sleep_example() -> None:
    r = compare(SLEEP_1, SLEEP_2)
    assert r.n == 10 and r.mean_diff == pytest.approx(-1.58)
    assert r.p_value == pytest.approx(0.002833, abs=5e-7)
    assert r.ci95 == pytest.approx([-2.4598858, -0.7001142], abs=1e-7)
    assert r.significant and r.better == "b" and r.outcome == "worse"
    assert r.wilcoxon_p is not None and r.wilcoxon_p < 0.05  # the exact cross-check agrees


def test_wilcoxon_matches_scipy_documented_example() -> None:
    # scipy.stats.wilcoxon's docstring: Darwin's corn data (Fisher), two-sided exact p = 0.041259765625.
    d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    r = compare([float(x) for x in d], [0.0] * len(d))
    assert r.wilcoxon_p == pytest.approx(0.041259765625, rel=1e-12)


def test_one_seed_is_untested_and_missing_seeds_drop_out() -> None:
    r = compare([98.0], [50.0])
    assert (r.n, r.test, r.mean_diff, r.ci95, r.p_value) == (1, "none", 48.0, None, None)
    assert r.outcome == "untested"
    assert not r.significant
    r = compare([1.0, None, 2.0, 3.5, 9.0], [0.0, 5.0, 1.0, 2.0, math.nan])
    assert r.n == 3 and r.mean_diff == pytest.approx(7 / 6)


def test_constant_differences_of_a_continuous_metric_are_the_tests_limit() -> None:
    # no resolution and no spread: t is infinite, p = 0, the interval the point: decided, never NaN
    r = compare([2.0, 3.0, 5.0], [1.0, 2.0, 4.0])
    assert r.p_value == 0.0 and r.ci95 == [1.0, 1.0] and r.outcome == "better"
    same = compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.identical and same.p_value == 1.0 and same.ci95 == [0.0, 0.0] and same.outcome == "undecided"


def test_paired_comparison_is_antisymmetric_and_never_nan():
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    floats = hs.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
    rule = outcomes.MetricRule(higher_is_better=True, margin=0.5, resolution=0.25)

    @settings(max_examples=150, deadline=None)
    @given(hs.lists(hs.tuples(floats, floats), min_size=0, max_size=9))
    def check(pairs: list[tuple[float, float]]) -> None:
        a, b = [x for x, _ in pairs], [y for _, y in pairs]
        ab, ba = compare(a, b, rule), compare(b, a, rule)
        assert ab.n == ba.n == len(pairs) and ab.test == ba.test
        assert ab.p_value == ba.p_value and ab.significant == ba.significant
        assert ba.outcome == outcomes.flip(ab.outcome)
        if ab.mean_diff is not None:
            assert ba.mean_diff == pytest.approx(-ab.mean_diff, abs=1e-9)
        for x in (ab.mean_diff, ab.p_value, ab.wilcoxon_p, *(ab.ci95 or [])):
            assert x is None or math.isfinite(x)

    check()


# --- the floored paired t-test (the test every verdict uses) ---------------------------------------------

IMAGE = 100 / 359  # one test image of the digits test split, in accuracy points


def test_floored_t_by_hand():
    # d = [1, 1, 1.5], resolution 0.5: s^2 = 1/12, floor 0.25/6 = 1/24,
    # se = sqrt((1/12 + 1/24) / 3) = sqrt(1/24)
    # t = (7/6) / sqrt(1/24) = 7 * sqrt(24) / 6 = 5.7155; two-sided p with 2 df: 1 - t / sqrt(2 + t^2)
    t = stats.floored_t(np.array([[1.0, 1.0, 1.5]]), stats.difference_floor(0.5))
    tval = 7 * math.sqrt(24) / 6
    assert t.se[0] == pytest.approx(math.sqrt(1 / 24)) and t.mean[0] == pytest.approx(7 / 6)
    assert t.p[0] == pytest.approx(1 - tval / math.sqrt(2 + tval**2), rel=1e-9)
    assert t.half_width(0.05)[0] == pytest.approx(4.302653 * math.sqrt(1 / 24), rel=1e-6)
    # no floor: the plain paired t-test, as scipy's ttest_rel (R's sleep data)
    from scipy.stats import ttest_rel

    plain = stats.floored_t(np.array([SLEEP_1]) - np.array([SLEEP_2]))
    assert plain.p[0] == pytest.approx(ttest_rel(SLEEP_1, SLEEP_2).pvalue, rel=1e-12)
    assert plain.half_width(0.05)[0] == pytest.approx((-0.7001142 + 2.4598858) / 2, abs=1e-7)


def test_floored_t_without_spread_or_floor_is_the_limit_not_nan():
    t = stats.floored_t(np.array([[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]))
    assert t.p.tolist() == [0.0, 1.0] and t.se.tolist() == [0.0, 0.0]


def _t(d: list[float], floor: float) -> float:
    r = stats.floored_t(np.array([d]), floor)
    return float(abs(r.mean[0]) / r.se[0])


def test_nudging_one_seed_of_a_zero_spread_sample_always_lowers_t():
    # The continuity promise (docs/statistics.md): with the floor delta^2/6, c units on every one of n seeds
    # gives |t| = c sqrt(6 n); moving one seed by one unit either way gives a strictly smaller |t|, so at
    # any level a tie can never turn into a win that way. Exhaustive over n = 2..12, c = 1..80.
    floor = stats.difference_floor(1.0)
    for n in range(2, 13):
        for c in range(1, 81):
            const = _t([float(c)] * n, floor)
            assert const == pytest.approx(c * math.sqrt(6 * n))
            for step in (1.0, -1.0):
                assert _t([float(c)] * (n - 1) + [c + step], floor) < const


def test_the_issue_cases_get_one_verdict_and_the_old_switch_did_not():
    acc = outcomes.with_rule(outcomes.DEFAULT_RULES["final_test_accuracy"], resolution=IMAGE)
    base = [97.0, 96.0, 98.0]
    verdicts = set()
    for images in ([5, 5, 5], [5, 5, 6], [5, 6, 5], [6, 5, 5], [5, 5, 4]):
        better = [b + IMAGE * k for b, k in zip(base, images, strict=True)]
        verdicts.add(outcomes.compare_pairs({"a": better, "b": base}, acc)[0].outcome)
    assert verdicts == {"better"}
    # the test above can fail: the former rule switched to the sign test at zero spread (p = 0.25, a tie)
    # and to the t-test one image later (p = 0.004, a win)
    former = [_former_rule_p([IMAGE * k for k in images]) < 0.05 for images in ([5, 5, 5], [5, 5, 6])]
    assert former == [False, True]

    steps = outcomes.DEFAULT_RULES["steps_to_target"]
    never = [81.0, 81.0, 81.0]  # budget + 1: never reached the target
    got = {outcomes.compare_pairs({"x": never, "adam": a}, steps)[0].outcome
           for a in ([40.0, 40.0, 40.0], [40.0, 39.0, 40.0], [41.0, 40.0, 40.0])}  # fmt: skip
    assert got == {"worse"}
    old = [_former_rule_p([n - x for n, x in zip(never, a, strict=True)]) < 0.05
           for a in ([40.0, 40.0, 40.0], [40.0, 39.0, 40.0])]  # fmt: skip
    assert old == [False, True]


def _former_rule_p(d: list[float]) -> float:
    """What adacli did before: the exact sign test when the differences have no spread, else the t-test."""
    from scipy.stats import binomtest, ttest_1samp

    if max(d) - min(d) <= 1e-9 * max(1.0, max(abs(x) for x in d)):
        return float(binomtest(len(d), len(d), 0.5).pvalue)
    return float(ttest_1samp(d, 0.0).pvalue)


# --- exact Wilcoxon, intervals, power --------------------------------------------------------------------


def test_wilcoxon_exact_equals_scipys_exact_values():
    from scipy.stats import PermutationMethod, wilcoxon

    rng = np.random.default_rng(7)
    for _ in range(40):  # integer differences: ties and zeros everywhere (censored times, accuracies)
        d = rng.integers(-4, 7, size=int(rng.integers(2, 11))).astype(float)
        if (d != 0).sum() < 2:
            continue
        exact = wilcoxon(d, method=PermutationMethod(n_resamples=np.inf)).pvalue
        assert stats.wilcoxon_exact(d.tolist()) == pytest.approx(exact, rel=1e-12, abs=1e-15)
    d = rng.normal(size=14)  # no ties: scipy's method="exact"
    assert stats.wilcoxon_exact(d.tolist()) == pytest.approx(wilcoxon(d, method="exact").pvalue, rel=1e-12)
    # the issue's case: with 6 non-zero differences the smallest two-sided p is 2/64, never 0.043
    assert stats.wilcoxon_exact([61, 61, 61, 0, 56, 5, 71]) == pytest.approx(2 / 64)
    assert stats.wilcoxon_exact([0.0, 0.0]) is None


def test_mean_intervals_stay_in_the_metric_range_and_say_so():
    iv = stats.mean_interval([99.7, 100.0, 93.0], lower=0.0, upper=100.0)
    assert iv is not None and iv.hi == 100.0 and iv.clipped == (False, True) and iv.lo < 93.0
    times = stats.mean_interval([0.2, 9.0, 0.5], lower=0.0)
    assert times is not None and times.lo == 0.0 and times.clipped == (True, False)
    # three seeds at exactly 100 %: the resolution floor gives an interval, clipped at 100
    full = stats.mean_interval([100.0] * 3, resolution=IMAGE, lower=0.0, upper=100.0)
    assert full is not None and full.lo < 100.0 and full.hi == 100.0
    half = 4.302653 * IMAGE / math.sqrt(12) / math.sqrt(3)
    assert full.lo == pytest.approx(100.0 - half, rel=1e-6)
    assert stats.mean_interval([5.0]) is None
    assert [str(x) for x in stats.Interval(-0.0, 0.0).to_list()] == ["0.0", "0.0"]  # no negative zero


def test_decision_power_and_seeds_to_decide():
    # far from the margin: the t-test's power (R: power.t.test(n = 10, delta = 1, sd = 1, type = "paired"))
    assert stats.decision_power(1.0, 1.0, 0.0, 10) == pytest.approx(0.8030962, abs=1e-6)
    assert stats.seeds_to_decide(1.0, 1.0, 0.0) == 10
    # no difference at all: decided by equivalence once the interval fits inside the margin
    n = stats.seeds_to_decide(0.0, 1.0, 0.5)
    assert n is not None
    assert stats.decision_power(0.0, 1.0, 0.5, n) >= 0.8 > stats.decision_power(0.0, 1.0, 0.5, n - 1)
    # a difference equal to the margin is never decided by equivalence and barely by the t-test: many seeds
    assert stats.seeds_to_decide(0.5, 1.0, 0.5, max_n=20) is None
    assert stats.seeds_to_decide(None, 1.0, 0.5) is None
