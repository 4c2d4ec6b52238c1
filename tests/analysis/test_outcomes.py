"""adacli.analysis.outcomes: the four outcomes, margins, scales and Bonferroni families on hand-computed
cases, and adacli.analysis.numfmt: how every table prints a number."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adacli.analysis import numfmt, outcomes, stats

ACC = outcomes.with_rule(outcomes.DEFAULT_RULES["final_test_accuracy"], resolution=100 / 359)
STEPS = outcomes.DEFAULT_RULES["steps_to_target"]


def test_outcome_rule_significance_first_then_the_margin():
    assert outcomes.outcome_of(0.1, 0.3, 0.5, True) == "better"  # excludes 0: better, although inside
    assert outcomes.outcome_of(-0.3, -0.1, 0.5, True) == "worse"
    assert outcomes.outcome_of(-0.3, -0.1, 0.5, False) == "better"  # lower is better
    assert outcomes.outcome_of(-0.4, 0.4, 0.5, True) == "equivalent"
    assert outcomes.outcome_of(-0.6, 0.4, 0.5, True) == "undecided"
    assert outcomes.outcome_of(-0.5, 0.4, 0.5, True) == "undecided"  # touching the margin is not inside
    codes = outcomes.outcome_codes(
        np.array([0.1, -0.3, -0.4, -0.6]), np.array([0.3, -0.1, 0.4, 0.4]), 0.5, True
    )
    assert [outcomes.OUTCOMES[c] for c in codes] == ["better", "worse", "equivalent", "undecided"]
    assert [outcomes.flip(o) for o in ("better", "worse", "equivalent", None)] == [
        "worse",
        "better",
        "equivalent",
        None,
    ]


def test_difference_comparison_by_hand():
    # d = [1, 2, 3] points, resolution 0: mean 2, s = 1, se = 1/sqrt(3); one pair: level 0.05
    r = outcomes.compare_pairs({"a": [91.0, 92.0, 93.0], "b": [90.0, 90.0, 90.0]},
                               outcomes.DEFAULT_RULES["final_test_accuracy"], metric="acc")[0]  # fmt: skip
    half = 4.302653 / math.sqrt(3)
    assert (r.a, r.b, r.n, r.scale, r.test, r.family, r.family_size) == (
        "a",
        "b",
        3,
        "difference",
        "paired-t",
        "acc",
        1,
    )
    assert r.estimate == pytest.approx(2.0) and r.mean_diff == pytest.approx(2.0)
    assert r.ci95 == pytest.approx([2 - half, 2 + half], abs=1e-6)
    assert r.outcome == "undecided" and not r.significant and r.better is None  # [-0.48, 4.48]
    assert r.ci_level == pytest.approx(0.95) and r.p_adjusted == r.p_value
    assert r.seeds_to_decide is not None and r.seeds_to_decide > 3


def test_ratio_comparison_of_times_by_hand():
    # log ratios log(50/100), log(60/100), log(40/100); the interval is exponentiated back: a ratio
    x, y = [50.0, 60.0, 40.0], [100.0, 100.0, 100.0]
    r = outcomes.compare_pairs({"fast": x, "ref": y}, STEPS)[0]
    d = np.log(np.array(x) / np.array(y))
    floor = (1 / 12) * np.mean(1 / np.array(x) ** 2 + 1 / np.array(y) ** 2)
    se = math.sqrt((d.var(ddof=1) + floor) / 3)
    assert r.scale == "ratio" and r.estimate == pytest.approx(math.exp(d.mean()))
    assert r.ci95 == pytest.approx(
        [math.exp(d.mean() - 4.302653 * se), math.exp(d.mean() + 4.302653 * se)], rel=1e-6
    )
    assert r.outcome == "better" and r.better == "a" and r.ci95[1] < 1.0 and r.margin == 0.05
    # equal times within 5 %: equivalent; a value <= 0 falls back to differences with a relative margin
    eq = outcomes.compare_pairs({"a": [100.0, 101.0, 99.0, 100.0, 100.0], "b": [100.0] * 5}, STEPS)[0]
    assert eq.outcome == "equivalent" and 1 / 1.05 < eq.ci95[0] < eq.ci95[1] < 1.05
    zero = outcomes.compare_pairs({"a": [0.0, 1.0, 2.0], "b": [10.0, 10.0, 10.0]}, STEPS)[0]
    assert zero.scale == "difference" and zero.margin == pytest.approx(0.5)  # 5 % of mean(b) = 10


def test_family_intervals_are_simultaneous_and_agree_with_the_adjusted_p():
    rng = np.random.default_rng(3)
    rows = {f"o{i}": (90 + i * 0.7 + rng.normal(0, 0.8, 5)).tolist() for i in range(5)}
    family = outcomes.compare_pairs(rows, outcomes.DEFAULT_RULES["final_test_accuracy"], metric="acc")
    assert len(family) == 10 and {r.family_size for r in family} == {10}
    for r in family:
        assert r.ci_level == pytest.approx(1 - 0.05 / 10)
        assert r.p_adjusted == pytest.approx(min(1.0, 10 * r.p_value))
        excludes_zero = r.ci95[0] > 0 or r.ci95[1] < 0
        assert excludes_zero == (r.p_adjusted < 0.05) == r.significant  # the '*' and the interval agree
    assert stats.bonferroni([0.01, None, 0.03]) == [0.02, None, 0.06]


def test_simultaneous_coverage_by_simulation():
    # all 6 pairs of 4 equal labels: with Bonferroni intervals, P(any wrong outcome) <= 5 %
    rng = np.random.default_rng(5)
    wrong = 0
    for _ in range(400):
        rows = {f"o{i}": (90 + rng.normal(0, 1.0, 4)).tolist() for i in range(4)}
        fam = outcomes.compare_pairs(rows, outcomes.DEFAULT_RULES["final_test_accuracy"], plan_seeds=False)
        wrong += any(r.outcome in ("better", "worse") for r in fam)
    assert wrong / 400 <= 0.05 + 2.33 * math.sqrt(0.05 * 0.95 / 400)


def test_pairs_missing_seeds_censoring_and_untested():
    rows = {"a": [1.0, None, 3.0, 4.0], "b": [1.5, 2.0, math.nan, 4.5], "c": [7.0, None, None, None]}
    fam = outcomes.compare_pairs(rows, outcomes.DEFAULT_RULES["loss_gap"], censored={"a": {3}})
    ab, ac, bc = fam
    assert ab.n == 2 and ab.censored == 1 and ab.outcome in outcomes.OUTCOMES
    assert ac.n == 1 and ac.outcome == "untested" and ac.ci95 is None and ac.mean_diff == -6.0
    assert bc.n == 1 and bc.test == "none" and bc.family_size == 1  # only a-b was tested
    with pytest.raises(ValueError, match="one value per seed"):
        outcomes.compare_pairs({"a": [1.0, 2.0], "b": [1.0]}, ACC)


def test_identical_labels_are_equivalent_with_enough_seeds_and_never_negative_zero():
    a = [97.0, 96.5, 98.1, 97.2, 96.9]
    r = outcomes.compare_pairs({"a": a, "b": list(a), "c": [x - 30 for x in a]}, ACC)
    same = r[0]
    assert same.identical and same.outcome == "equivalent" and same.p_value == 1.0
    assert same.mean_diff == 0.0 and math.copysign(1.0, same.mean_diff) == 1.0
    assert all(math.copysign(1.0, x) == 1.0 or x != 0 for x in same.ci95)
    assert r[1].outcome == "better" and r[1].ci95[0] > 0
    # the difference interval of accuracies never leaves [-100, 100]
    wild = outcomes.compare_pairs({"a": [100.0, 0.0], "b": [0.0, 100.0]}, ACC)[0]
    assert wild.ci95[0] >= -100.0 and wild.ci95[1] <= 100.0


def test_describe_family():
    fam = outcomes.compare_pairs({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.5, 3.5], "c": [0.0, 0.0, 0.1]}, ACC,
                                 metric="final_test_accuracy", family="primary")  # fmt: skip
    d = outcomes.describe_family("primary", fam, role="primary")
    assert d["name"] == "primary" and d["role"] == "primary" and d["tested"] == 3 and d["alpha"] == 0.05
    assert d["metrics"] == ["final_test_accuracy"] and d["pairs"] == [["a", "b"], ["a", "c"], ["b", "c"]]
    assert d["method"] == "bonferroni"
    seq = outcomes.describe_family("primary", fam, role="primary", sequential={"spending": "pocock"})
    assert seq["method"] == "group-sequential+bonferroni" and seq["sequential"] == {"spending": "pocock"}
    assert (
        outcomes.wtl("better") == "win"
        and outcomes.wtl("equivalent") == "tie"
        and outcomes.wtl(None) == "untested"
    )


# --- numfmt -----------------------------------------------------------------------------------------


def test_numbers_print_with_fixed_significant_digits_and_no_negative_zero():
    assert [numfmt.sig(x) for x in (97.46, 0.03521, 1234.5, 2.0, -0.0, 4.737e-15, None, math.inf)] == [
        "97.5", "0.0352", "1234", "2.00", "0", "0", "–", "∞"]  # fmt: skip
    assert numfmt.fixed(-0.004, 2) == "0.00" and numfmt.fixed(-0.006, 2) == "-0.01"
    assert numfmt.fixed(0.0, 1, signed=True) == "0.0" and numfmt.fixed(0.5, 1, signed=True) == "+0.5"
    assert numfmt.estimate(-0.4821, -1.5432, 0.5893) == "-0.5 [-1.5, +0.6]"
    assert numfmt.estimate(4.7e-15, -0.3, 0.3) == "0.00 [-0.30, +0.30]"
    assert numfmt.estimate(10.7, 7.84, 13.5) == "+10.7 [+7.8, +13.5]"  # half-width 2.8: 1 decimal
    assert numfmt.interval(96.1, 100.0, 1, clipped=(False, True)) == "[96.1, 100.0†]"
    assert numfmt.ratio(1.7123, 1.51, 1.93) == "1.71× [1.51, 1.93]" and numfmt.ratio(2.0) == "2.00×"
    assert [numfmt.pvalue(p) for p in (0.0004, 0.01234, 0.25, 1.0, None)] == [
        "<0.001",
        "0.012",
        "0.25",
        "1.0",
        "–",
    ]
    for x in np.linspace(-1e-3, 1e-3, 41):
        for d in range(4):
            assert (
                not numfmt.fixed(float(x), d).startswith("-0") or numfmt.fixed(float(x), d).strip("-0.") != ""
            )
