"""adacli.analysis.stats on hand-computed cases and scipy's / R's documented reference values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from adacli.analysis import stats

# Student's (1908) sleep data, as in R's ``t.test(extra ~ group, data = sleep, paired = TRUE)``:
# extra hours of sleep with drug 1 and drug 2, paired by patient. R prints t = -4.0621, df = 9,
# p-value = 0.002833, 95 percent CI -2.4598858 -0.7001142, mean difference -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_worked_by_hand() -> None:
    # differences d = [1, 1, 1.5]: mean 7/6, sd = sqrt(1/12), se = sd/sqrt(3) = 1/6, t = (7/6)/(1/6) = 7.
    # t(0.975, 2) = 4.302653, so the CI is 7/6 -+ 4.302653/6 = [0.449558, 1.883775].
    # Two-sided p = 2 * (1 - F_t2(7)); F_t2(x) = 1/2 + x / (2 sqrt(2 + x^2)), so p = 1 - 7/sqrt(51).
    r = stats.paired_test([1.0, 2.0, 3.5], [0.0, 1.0, 2.0], metric="m", labels=("x", "y"))
    assert (r.metric, r.a, r.b, r.n, r.test) == ("m", "x", "y", 3, "paired-t")
    assert r.mean_diff == pytest.approx(7 / 6)
    assert r.ci95 == pytest.approx([7 / 6 - 4.302653 / 6, 7 / 6 + 4.302653 / 6], abs=1e-6)
    assert r.p_value == pytest.approx(1 - 7 / math.sqrt(51), rel=1e-9)
    assert r.p_adjusted == r.p_value
    assert r.significant and r.better == "a"
    assert r.wilcoxon_p is None  # fewer than 6 seeds


def test_direction_decides_better() -> None:
    r = stats.paired_test([1.0, 2.0, 3.5], [0.0, 1.0, 2.0], higher_is_better=False)
    assert r.significant and r.better == "b"


def test_paired_t_matches_r_sleep_example() -> None:
    r = stats.paired_test(SLEEP_1, SLEEP_2)
    assert r.n == 10 and r.test == "paired-t"
    assert r.mean_diff == pytest.approx(-1.58)
    assert r.p_value == pytest.approx(0.002833, abs=5e-7)
    assert r.ci95 == pytest.approx([-2.4598858, -0.7001142], abs=1e-7)
    assert r.significant and r.better == "b"
    assert r.wilcoxon_p is not None and r.wilcoxon_p < 0.05  # the cross-check agrees


def test_wilcoxon_matches_scipy_documented_example() -> None:
    # scipy.stats.wilcoxon's docstring: Darwin's corn data (Fisher), two-sided exact p = 0.041259765625.
    d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    r = stats.paired_test([float(x) for x in d], [0.0] * len(d))
    assert r.wilcoxon_p == pytest.approx(0.041259765625, rel=1e-12)
    assert r.mean_diff == pytest.approx(sum(d) / len(d))


def test_identical_is_no_difference_not_nan() -> None:
    a = [97.5, 96.25, 98.0, 95.0, 97.0, 96.5]
    r = stats.paired_test(a, list(a))
    assert r.test == "identical"
    assert (r.mean_diff, r.ci95, r.p_value, r.p_adjusted) == (0.0, [0.0, 0.0], 1.0, 1.0)
    assert not r.significant and r.better is None
    assert r.wilcoxon_p == 1.0


def test_constant_nonzero_difference_takes_the_exact_sign_test() -> None:
    # no spread: the t statistic is infinite and says nothing; every seed agrees in sign, p = 2 / 2**n
    r = stats.paired_test([2.0, 3.0, 5.0], [1.0, 2.0, 4.0])
    assert r.test == "sign" and r.mean_diff == 1.0 and r.ci95 == [1.0, 1.0]
    assert r.p_value == pytest.approx(0.25) and not r.significant and r.better is None  # 3 seeds: too few
    six = stats.paired_test([2.0, 3.0, 5.0, 6.0, 1.0, 0.0], [1.0, 2.0, 4.0, 5.0, 0.0, -1.0])
    assert six.test == "sign" and six.p_value == pytest.approx(2 / 2**6) and six.significant
    assert six.better == "a"
    assert stats.sign_test_seeds(0.05) == 6 and stats.sign_test_seeds(0.05 / 6) == 8  # 2/2**8 < 0.0083


def test_zero_mean_with_spread_is_not_significant() -> None:
    r = stats.paired_test([1.0, -1.0, 2.0, -2.0], [0.0, 0.0, 0.0, 0.0])
    assert r.mean_diff == 0.0 and r.p_value == pytest.approx(1.0)
    assert not r.significant and r.better is None


def test_one_seed_has_no_verdict() -> None:
    r = stats.paired_test([98.0], [50.0])
    assert (r.n, r.test, r.mean_diff, r.ci95, r.p_value, r.p_adjusted) == (1, "none", 48.0, None, None, None)
    assert not r.significant


def test_missing_seed_is_dropped_from_the_pair() -> None:
    r = stats.paired_test([1.0, None, 2.0, 3.5, 9.0], [0.0, 5.0, 1.0, 2.0, math.nan])
    assert r.n == 3 and r.mean_diff == pytest.approx(7 / 6)
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_test([1.0, 2.0], [1.0])


def test_censored_count_is_recorded() -> None:
    r = stats.paired_test([11.0, 11.0, 5.0], [3.0, 4.0, 5.0], censored=2, higher_is_better=False)
    assert r.censored == 2 and r.n == 3


def test_holm_known_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06.
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]  # 2*0.5 = 1, then monotone
    assert stats.holm([]) == []


def test_holm_adjust_can_remove_significance() -> None:
    # Each alone: p = 1 - 7/sqrt(51) = 0.0198 < 0.05. Three of them in one family: 3 * 0.0198 = 0.0594.
    family = [stats.paired_test([1.0, 2.0, 3.5], [0.0, 1.0, 2.0]) for _ in range(3)]
    assert all(r.significant for r in family)
    stats.holm_adjust(family)
    assert [r.p_adjusted for r in family] == pytest.approx([3 * (1 - 7 / math.sqrt(51))] * 3)
    assert not any(r.significant for r in family) and all(r.better is None for r in family)
    pair = stats.holm_adjust([stats.paired_test([1.0, 2.0, 3.5], [0.0, 1.0, 2.0]),
                              stats.paired_test([1.0, 2.0], [1.0, 2.0])])  # fmt: skip
    assert pair[0].p_adjusted == pytest.approx(2 * (1 - 7 / math.sqrt(51))) and pair[0].significant
    assert pair[1].p_adjusted == 1.0 and pair[1].test == "identical"


def test_mean_ci_by_hand() -> None:
    # [1, 2, 3]: mean 2, sd 1, CI = 2 -+ 4.302653 / sqrt(3)
    half = 4.302653 / math.sqrt(3)
    assert stats.mean_ci([1.0, 2.0, 3.0]) == pytest.approx([2 - half, 2 + half], abs=1e-6)
    assert stats.mean_ci([1.0, None, 2.0, 3.0, math.inf]) == pytest.approx([2 - half, 2 + half], abs=1e-6)
    assert stats.mean_ci([5.0]) is None
    assert stats.ci_from_stats(2.0, 1.0, 3) == stats.mean_ci([1.0, 2.0, 3.0])
    assert stats.ci_from_stats(2.0, 0.0, 1) is None


def test_power_reference_values() -> None:
    # G*Power / R power.t.test(n = 10, delta = 1, sd = 1, type = "paired") gives power = 0.8030962.
    assert stats.paired_power(1.0, 10) == pytest.approx(0.8030962, abs=1e-6)
    # R: power.t.test(power = 0.8, delta = 0.5, sd = 1, type = "paired") -> n = 33.36713, i.e. 34 seeds.
    assert stats.seeds_needed(0.5, 1.0) == 34
    assert stats.seeds_needed(-0.5, 1.0) == 34  # two-sided: the sign does not matter
    assert stats.seeds_needed(1.0, 1.0) == 10


def test_seeds_needed_edge_cases() -> None:
    assert stats.seeds_needed(0.0, 1.0) is None
    assert stats.seeds_needed(1.0, 0.0) == 2
    assert stats.seeds_needed(1e-6, 1.0, max_n=1000) is None
    assert stats.seeds_needed(0.5, 1.0, alpha=0.05 / 3) > 34  # a stricter threshold needs more seeds


def test_result_round_trips_through_json() -> None:
    r = stats.paired_test(SLEEP_1, SLEEP_2, metric="final_test_accuracy", labels=("d1", "d2"))
    assert stats.PairedResult.from_dict(r.to_dict()) == r


def test_batch_equals_one_by_one() -> None:
    pairs = [
        (SLEEP_1, SLEEP_2),
        ([1.0, 2.0, 3.5], [0.0, 1.0, 2.0]),
        ([1.0, 2.2, 3.5], [0.0, 1.0, 2.0]),  # same n as the previous: stacked with it
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),  # identical
        ([2.0, 3.0, 5.0], [1.0, 2.0, 4.0]),  # constant difference
        ([4.0], [1.0]),  # one seed
        ([*SLEEP_2[:7], None, 1.0, 2.0], [*SLEEP_1[:7], 1.0, None, 2.5]),  # missing seeds, n = 8
    ]
    labels = [(f"a{i}", f"b{i}") for i in range(len(pairs))]
    batch = stats.paired_tests(pairs, metric="m", labels=labels, censored=list(range(len(pairs))))
    singles = [
        stats.paired_test(a, b, metric="m", labels=lab, censored=i)
        for i, ((a, b), lab) in enumerate(zip(pairs, labels, strict=True))
    ]
    assert batch == singles
    tests = ["paired-t", "paired-t", "paired-t", "identical", "sign", "none", "paired-t"]
    assert [r.test for r in batch] == tests
    assert batch[-1].n == 8 and batch[-1].wilcoxon_p is not None


def test_wilcoxon_with_ties_uses_the_normal_approximation():
    # censored times tie at budget + 1: scipy's "auto" would run a slow permutation test here
    from scipy.stats import wilcoxon

    a = [101.0, 101.0, 101.0, 101.0, 101.0, 60.0, 101.0]
    b = [40.0, 50.0, 40.0, 101.0, 45.0, 55.0, 30.0]  # one zero difference, tied |differences|
    d = [x - y for x, y in zip(a, b, strict=True)]
    r = stats.paired_test(a, b, higher_is_better=False)
    assert r.wilcoxon_p == pytest.approx(wilcoxon(d, method="asymptotic").pvalue, rel=1e-12)


def _floats():
    from hypothesis import strategies as hs

    return hs.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


def test_holm_properties():
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    @settings(max_examples=200, deadline=None)
    @given(hs.lists(hs.floats(min_value=0.0, max_value=1.0), max_size=12))
    def check(ps: list[float]) -> None:
        adj = stats.holm(ps)
        assert all(p <= a <= 1.0 for p, a in zip(ps, adj, strict=True))  # never below the raw p-value
        order = sorted(range(len(ps)), key=lambda i: ps[i])
        assert all(adj[i] <= adj[j] for i, j in itertools.pairwise(order))  # order kept
        assert all(a <= min(1.0, len(ps) * p) for p, a in zip(ps, adj, strict=True))  # Bonferroni bound

    check()


def test_paired_test_is_antisymmetric_and_never_nan():
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    @settings(max_examples=150, deadline=None)
    @given(hs.lists(hs.tuples(_floats(), _floats()), min_size=0, max_size=9))
    def check(pairs: list[tuple[float, float]]) -> None:
        a, b = [x for x, _ in pairs], [y for _, y in pairs]
        ab, ba = stats.paired_test(a, b), stats.paired_test(b, a)
        assert ab.n == ba.n == len(pairs) and ab.test == ba.test
        assert ab.p_value == ba.p_value and ab.significant == ba.significant
        if ab.mean_diff is not None:
            assert ba.mean_diff == pytest.approx(-ab.mean_diff, abs=1e-9)
        for x in (ab.mean_diff, ab.p_value, ab.wilcoxon_p, *(ab.ci95 or [])):
            assert x is None or math.isfinite(x)
        if ab.significant:
            assert {ab.better, ba.better} == {"a", "b"}

    check()


def test_differences_equal_but_for_rounding_behave_like_constant_ones(recwarn):
    # accuracies on a 359-image test set: 97.21 - 98.05 and 96.94 - 97.77 differ only in the last bits
    r = stats.paired_test([97.214484679665745, 96.935933147632312, 98.050139275766014],
                          [98.050139275766014, 97.771587743732589, 98.885793871866298])  # fmt: skip
    assert r.test == "sign" and r.p_value == pytest.approx(0.25) and not r.significant
    assert not [w for w in recwarn if "Precision loss" in str(w.message)]  # no scipy noise on the terminal


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
    from adacli.analysis import outcomes

    acc = outcomes.with_rule(outcomes.DEFAULT_RULES["final_test_accuracy"], resolution=IMAGE)
    base = [97.0, 96.0, 98.0]
    verdicts = set()
    for images in ([5, 5, 5], [5, 5, 6], [5, 6, 5], [6, 5, 5], [5, 5, 4]):
        better = [b + IMAGE * k for b, k in zip(base, images, strict=True)]
        verdicts.add(outcomes.compare_pairs({"a": better, "b": base}, acc)[0].outcome)
    assert verdicts == {"better"}
    # the test above can fail: the legacy rule switched to the sign test at zero spread (p = 0.25, a tie)
    # and to the t-test one image later (p = 0.004, a win)
    old = [stats.paired_test([b + IMAGE * k for b, k in zip(base, images, strict=True)], base)
           for images in ([5, 5, 5], [5, 5, 6])]  # fmt: skip
    assert [o.significant for o in old] == [False, True]

    steps = outcomes.DEFAULT_RULES["steps_to_target"]
    never = [81.0, 81.0, 81.0]  # budget + 1: never reached the target
    got = {outcomes.compare_pairs({"x": never, "adam": a}, steps)[0].outcome
           for a in ([40.0, 40.0, 40.0], [40.0, 39.0, 40.0], [41.0, 40.0, 40.0])}  # fmt: skip
    assert got == {"worse"}
    old = [stats.paired_test(never, a, higher_is_better=False).significant
           for a in ([40.0, 40.0, 40.0], [40.0, 39.0, 40.0])]  # fmt: skip
    assert old == [False, True]


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
