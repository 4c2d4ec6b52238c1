"""adacli.analysis.suite_stats against AlgoPerf's published scoring formulas on a fixed time-to-target matrix.

Formulas (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms", section 4.5; AlgoPerf's
scoring/performance_profile.py and scoring/compute_speedups.py):

* t[s, w] = median over studies (here: seeds) of the time to target, a miss counting as inf;
* r[s, w] = t[s, w] / min_s t[s, w], and r > r_max = 4 counts as never;
* rho_s(tau) = |{w : r[s, w] <= tau}| / |W|;  B_s = 1 / (r_max - 1) * integral_1^r_max rho_s(tau) dtau;
* speed-up: geometric mean over workloads of the time ratio, inf replaced by the budget + 1.

Every expected number below was worked out by hand from those formulas (shown in the comments).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adacli.analysis import outcomes, suite_stats

INF = math.inf
# steps to target per seed (None = never reached), 3 optimizers x 4 workloads x 3 seeds
PER_SEED: dict[str, dict[str, list[float | None]]] = {
    "w1": {"A": [40, 44, 42], "B": [30, None, 33], "C": [80, 90, None]},
    "w2": {"A": [100, 120, 110], "B": [None, None, 150], "C": [55, 50, 60]},
    "w3": {"A": [60, 66, 63], "B": [70, 72, 75], "C": [None, None, None]},
    "w4": {"A": [200, 210, 190], "B": [100, 110, 90], "C": [260, 250, 270]},
}
BUDGET_PLUS_ONE = {"w1": 101.0, "w2": 201.0, "w3": 151.0, "w4": 301.0}


def times() -> dict[str, dict[str, float]]:
    return {w: {s: suite_stats.time_to_target(v) for s, v in row.items()} for w, row in PER_SEED.items()}


def test_time_per_workload_is_the_median_with_misses_as_infinity():
    # w1 B: median(30, inf, 33) = 33 (one miss in three seeds still scores); w2 B: median(inf, inf, 150) = inf
    assert times() == {
        "w1": {"A": 42.0, "B": 33.0, "C": 90.0},
        "w2": {"A": 110.0, "B": INF, "C": 55.0},
        "w3": {"A": 63.0, "B": 72.0, "C": INF},
        "w4": {"A": 200.0, "B": 100.0, "C": 260.0},
    }
    assert suite_stats.time_to_target([10, None]) == INF  # median of (10, inf) with two seeds
    assert suite_stats.time_to_target([10, 20, 30, None]) == 25.0
    assert suite_stats.time_to_target([]) == INF


def test_profiles_and_scores_match_algoperf():
    # ratios: w1 A 42/33, B 1, C 90/33; w2 A 2, B never, C 1; w3 A 1, B 72/63, C never; w4 A 2, B 1, C 2.6
    r = suite_stats.ratios(times())
    assert r["w1"] == pytest.approx({"A": 42 / 33, "B": 1.0, "C": 90 / 33})
    curves = suite_stats.performance_profiles(times(), taus=[1.0, 2.0, 2.7, 3.0, 4.0])
    assert curves == {"A": [0.25, 1.0, 1.0, 1.0, 1.0], "B": [0.5, 0.75, 0.75, 0.75, 0.75],
                      "C": [0.25, 0.25, 0.5, 0.75, 0.75]}  # fmt: skip
    # B_s = sum over reached workloads of (4 - r) / 3, divided by 4 workloads
    expected = {
        "A": ((4 - 42 / 33) + (4 - 2) + (4 - 1) + (4 - 2)) / 3 / 4,  # 0.810606
        "B": ((4 - 1) + 0 + (4 - 72 / 63) + (4 - 1)) / 3 / 4,  # 0.738095
        "C": ((4 - 90 / 33) + (4 - 1) + 0 + (4 - 2.6)) / 3 / 4,  # 0.472727
    }
    s = suite_stats.scores(times())
    assert s == pytest.approx(expected, abs=1e-12)
    assert s == pytest.approx({"A": 0.8106060606, "B": 0.7380952381, "C": 0.4727272727}, abs=1e-9)
    # AlgoPerf integrates a sampled profile with the trapezoid rule: the same area in the limit
    taus = np.linspace(1.0, 4.0, 30_001)
    sampled = suite_stats.performance_profiles(times(), taus=taus.tolist())
    for label, curve in sampled.items():
        assert np.trapezoid(curve, taus) / 3.0 == pytest.approx(s[label], abs=1e-4)


def test_a_ratio_above_four_is_never():
    t = {"w": {"A": 10.0, "B": 41.0, "C": 40.0}}
    assert suite_stats.scores(t) == {"A": 1.0, "B": 0.0, "C": 0.0}
    assert suite_stats.performance_profiles(t, taus=[4.0])["C"] == [1.0]  # exactly 4 still counts


def test_speedups_count_misses_as_budget_plus_one():
    sp = suite_stats.speedups(times(), "A", censor=BUDGET_PLUS_ONE)
    # B: (42/33 * 110/201 * 63/72 * 200/100) ** (1/4); w2 is a miss: 201 steps, not dropped
    assert sp["B"][0] == pytest.approx((42 / 33 * 110 / 201 * 63 / 72 * 200 / 100) ** 0.25)
    assert sp["B"][0] == pytest.approx(1.0507333, abs=1e-7) and sp["B"][1] == 3
    # C: (42/90 * 110/55 * 63/151 * 200/260) ** (1/4) = 0.7398
    assert sp["C"][0] == pytest.approx((42 / 90 * 110 / 55 * 63 / 151 * 200 / 260) ** 0.25)
    assert sp["C"][0] == pytest.approx(0.7397999, abs=1e-7) and sp["C"][1] == 3
    assert sp["A"] == (1.0, 4)
    # the rule the issue reported: dropping the missed workloads flatters an optimizer that misses
    dropped = suite_stats.speedups(times(), "A")
    assert dropped["C"][0] == pytest.approx((42 / 90 * 110 / 55 * 200 / 260) ** (1 / 3))


def test_mean_ranks():
    # w1: B A C; w2: C A B; w3: A B C; w4: B A C
    assert suite_stats.mean_ranks(times()) == pytest.approx({"A": 7 / 4, "B": 7 / 4, "C": 10 / 4})


def test_win_tie_loss_from_the_four_outcomes():
    per_seed = {
        "w4": {k: [float(x) for x in v] for k, v in PER_SEED["w4"].items()},  # B about 2x faster than A
        # within 1 %: equivalent, a tie
        "same": {"A": [100, 101, 99, 100, 100], "B": [100] * 5, "C": [100, 101, 99, 100, 100]},
        "noisy": {"A": [50.0, 90.0, 70.0], "B": [80.0, 60.0, 75.0], "C": [70.0, 70.0, 72.0]},
        "one-seed": {"A": [10.0], "B": [20.0], "C": [30.0]},
    }
    wins = suite_stats.win_tie_loss(per_seed, {w: suite_stats.TIME_RULE for w in per_seed})
    assert wins["A"]["B"] == {"win": 0, "tie": 1, "loss": 1, "undecided": 1, "untested": 1}
    assert wins["B"]["A"] == {"win": 1, "tie": 1, "loss": 0, "undecided": 1, "untested": 1}
    verdicts = suite_stats.workload_verdicts(per_seed["one-seed"], suite_stats.TIME_RULE)
    assert set(verdicts.values()) == {"untested"}  # one seed: nothing was tested, not a "tie"
    rule = outcomes.DEFAULT_RULES["steps_to_target"]
    assert rule == suite_stats.TIME_RULE and rule.scale == "ratio" and rule.margin == 0.05
