"""Error rates, power and seeds used of adacli's decisions, fixed seeds against seeds until decided.

    python benchmarks/bench_sequential.py                 # 20,000 simulated runs per row
    python benchmarks/bench_sequential.py --runs 100000 --spending obrien-fleming

Each row simulates the whole decision procedure (adacli.analysis.sequential.run_rounds: the floored paired
t-test, its interval at the design's level, the four outcomes, the stopping rule) on final test accuracies of
a digits-sized test set (one image = 100/359 points, margin 0.5 points): two optimizers (the reference first)
with the given true difference and per-trial noise. "false" is the rate of wrong outcomes (better/worse
without that true difference, equivalent when the true difference is at or beyond the margin); the other
columns the rate of each outcome of the reference against the other optimizer (so "better" means the reference
was found better); "seeds" the mean number of seeds used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adacli.analysis import outcomes, sequential

ACC = outcomes.with_rule(outcomes.DEFAULT_RULES["final_test_accuracy"], resolution=100 / 359)
SCENARIOS = [  # (name, true difference in points, per-trial noise sd in points)
    ("no difference, sd 1.0", 0.0, 1.0),
    ("no difference, sd 0.3", 0.0, 0.3),
    ("difference = margin 0.5, sd 0.3", 0.5, 0.3),
    ("difference 1.0, sd 0.3", 1.0, 0.3),
    ("difference 1.0, sd 1.0", 1.0, 1.0),
    ("difference 2.0, sd 1.0", 2.0, 1.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--spending", default="pocock", choices=sequential.SPENDING)
    ap.add_argument("--min", type=int, default=3)
    ap.add_argument("--max", type=int, default=20)
    ap.add_argument("--step", type=int, default=3)
    args = ap.parse_args()
    designs = {
        f"fixed {args.min}": sequential.Design(args.min, args.min, 1),
        f"fixed {args.max}": sequential.Design(args.max, args.max, 1),
        f"rounds {args.min}..{args.max} +{args.step}": sequential.Design(
            args.min, args.max, args.step, spending=args.spending
        ),
    }
    print(f"{args.runs} runs per row, alpha 0.05, margin 0.5 points, spending {args.spending}")
    cols = ("false", "better", "worse", "equiv", "undec", "seeds")
    print(f"{'scenario':34} {'design':18} " + " ".join(f"{c:>6}" for c in cols))
    for name, diff, sd in SCENARIOS:
        effects = [0.0, -diff]  # the second optimizer is worse by `diff` points
        for label, design in designs.items():
            t0 = time.perf_counter()
            codes, used = sequential.simulate(design, ACC, effects=effects, sd=sd, runs=args.runs)
            wrong = sequential.false_decisions(codes, effects, ACC).mean()
            r = sequential.rates(codes)
            print(
                f"{name:34} {label:18} {wrong:6.4f} {r['better']:6.3f} {r['worse']:6.3f} "
                f"{r['equivalent']:6.3f} {r['undecided']:6.3f} {used.mean():6.2f}"
                f"   ({time.perf_counter() - t0:.2f} s)"
            )


if __name__ == "__main__":
    main()
