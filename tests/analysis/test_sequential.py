"""Seeds until decided (adacli.analysis.sequential): boundaries against published values and Monte Carlo,
and the whole decision procedure simulated 20,000 times per case: false-decision rates <= alpha for fixed and
sequential seeds, with and without a real difference, one pair or a family of six."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adacli.analysis import outcomes, sequential

IMAGE = 100 / 359
ACC = outcomes.with_rule(outcomes.DEFAULT_RULES["final_test_accuracy"], resolution=IMAGE)
RUNS = 20_000
ALPHA = 0.05
# the simulated rate of a procedure whose true rate is alpha stays below this with 99 % probability
TOLERANCE = ALPHA + 2.33 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)
SEQ = sequential.Design(3, 20, 3)


def test_pocock_type_boundaries_match_published_values_and_monte_carlo():
    # Lan-DeMets Pocock-type spending, 5 equally spaced looks, two-sided 0.05 (Jennison & Turnbull 2000;
    # R gsDesign sfLDPocock): 2.438, 2.427, 2.410, 2.397, 2.386
    c = sequential.boundaries((0.2, 0.4, 0.6, 0.8, 1.0), 0.05, "pocock")
    assert c == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=6e-4)
    # O'Brien-Fleming-type, unequal looks: every look's crossing probability equals the spending
    fractions = (0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0)
    c = np.array(sequential.boundaries(fractions, 0.05, "obrien-fleming"))
    rng = np.random.default_rng(1)
    steps = rng.normal(size=(400_000, 7)) * np.sqrt(np.diff((0.0, *fractions)))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    crossed = np.maximum.accumulate(np.abs(z) >= c, axis=1).mean(axis=0)
    spent = [sequential.spent(t, 0.05, "obrien-fleming") for t in fractions]
    assert crossed == pytest.approx(spent, abs=3 * math.sqrt(0.05 / 400_000))
    with pytest.raises(ValueError, match="allowed: pocock, obrien-fleming"):
        sequential.spent(0.5, 0.05, "haybittle")


def test_t_levels_start_exact_and_approach_the_normal_ones_with_many_seeds():
    levels = sequential.t_levels((3, 6, 9), 9, 0.05, "pocock")
    assert levels[0] == pytest.approx(sequential.spent(3 / 9, 0.05, "pocock"), rel=1e-9)
    assert all(0 < x < 0.05 for x in levels)
    # with many seeds the t statistics are nearly normal: the levels agree within 3 %; with 3-20 seeds the
    # calibrated ones are 12-18 % stricter than the normal-theory ones
    big = sequential.t_levels((30, 60, 90), 90, 0.05, "pocock")
    assert big == pytest.approx(sequential.normal_levels((30, 60, 90), 90, 0.05, "pocock"), rel=0.03)
    few = np.array(sequential.t_levels(tuple(SEQ.looks()), 20)) / sequential.normal_levels(SEQ.looks(), 20)
    assert few[0] == pytest.approx(1.0) and (few[1:] < 0.92).all()
    assert SEQ.looks() == [3, 6, 9, 12, 15, 18, 20]
    assert SEQ.level([3, 6, 6]) == SEQ.level([3, 6])  # a round that added no seed to the pair: no new look
    assert sequential.Design(3, 20, 3, pairs=6).level([3]) == pytest.approx(SEQ.level([3]) / 6)


def _false_rate(design: sequential.Design, effects: list[float], sd: float, rule=ACC, seed: int = 0):
    codes, used = sequential.simulate(design, rule, effects=effects, sd=sd, runs=RUNS, seed=seed)
    return float(sequential.false_decisions(codes, effects, rule).mean()), float(used.mean()), codes


@pytest.mark.parametrize(
    "design",
    [sequential.Design(3, 3, 1), sequential.Design(20, 20, 1), SEQ, sequential.Design(3, 20, 1)],
    ids=["fixed-3", "fixed-20", "rounds-of-3", "rounds-of-1"],
)
def test_false_decisions_stay_below_alpha_with_no_difference(design):
    # 20,000 runs of the whole procedure, two equal optimizers (1 point per-trial noise): a "better" or
    # "worse" is a false decision (equivalence is right here)
    rate, seeds, _ = _false_rate(design, [0.0, 0.0], sd=1.0)
    assert rate <= TOLERANCE, (rate, seeds)
    # discrete accuracies (0.3 points of noise: many ties and zero spreads), the floor keeps it valid
    rate, _, _ = _false_rate(design, [0.0, 0.0], sd=0.3, seed=1)
    assert rate <= TOLERANCE


def test_the_textbook_shortcut_fails_the_same_check():
    class NormalLevels(sequential.Design):
        def level(self, ns):  # normal-theory boundaries applied as t-test levels
            k = len({n for n in ns if n >= 2})  # spending boundaries of a prefix of looks are its own
            levels = sequential.normal_levels(self.looks(), self.n_max, self.alpha, self.spending)
            return levels[k - 1]

    rate, _, _ = _false_rate(NormalLevels(3, 20, 1), [0.0, 0.0], sd=1.0)
    assert rate > TOLERANCE  # about 0.058: the check above can fail


def test_false_equivalence_at_the_margin_stays_below_alpha():
    # a true difference of exactly the margin (0.5 points): "equivalent" is a false decision
    for design in (sequential.Design(20, 20, 1), SEQ):
        rate, _, codes = _false_rate(design, [0.0, ACC.margin], sd=0.3, seed=2)
        assert rate <= TOLERANCE
        assert sequential.rates(codes)["worse"] > 0.9  # and the difference itself is found


def test_a_family_of_six_pairs_keeps_the_family_wise_rate():
    # four optimizers, all pairs adjusted together; the run stops when the 3 pairs with the reference are
    # decided; any wrong outcome among the 6 pairs counts
    design = sequential.Design(3, 20, 3, pairs=6)
    rate, _, _ = _false_rate(design, [0.0, 0.0, 0.0, 0.0], sd=1.0, seed=3)
    assert rate <= TOLERANCE
    rate, seeds, _ = _false_rate(design, [0.0, 0.0, 2.0, -0.25], sd=0.5, seed=4)
    assert rate <= TOLERANCE and seeds < 20


def test_sequential_seeds_decide_a_real_difference_with_fewer_seeds():
    fixed, seq = sequential.Design(20, 20, 1), SEQ
    _, seeds_fixed, codes_fixed = _false_rate(fixed, [0.0, 1.0], sd=0.3, seed=5)
    _, seeds_seq, codes_seq = _false_rate(seq, [0.0, 1.0], sd=0.3, seed=5)
    assert sequential.rates(codes_seq)["worse"] > 0.99 and sequential.rates(codes_fixed)["worse"] > 0.99
    assert seeds_seq < 8 < seeds_fixed == 20  # about 6 seeds on average instead of 20
    _, seeds_null, codes_null = _false_rate(seq, [0.0, 0.0], sd=0.3, seed=6)
    assert sequential.rates(codes_null)["equivalent"] > 0.9 and seeds_null < 15
