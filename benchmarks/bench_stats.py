"""What the statistics stage (``adacli.analysis.verdict.analyze``) adds to a comparison: its wall time on
realistic trials, and its share of a real run.

    python benchmarks/bench_stats.py                          # 100 trials in three shapes, 1000 steps each
    python benchmarks/bench_stats.py --steps 5000 --repeat 20
    python benchmarks/bench_stats.py --run runs/quickstart/20260101-120000   # a real run folder too

Synthetic trials: every label × seed gets a 1000-step loss curve (a noisy decaying exponential whose rate
depends on the label and the seed, a few of them never reaching the target), per-step training-clock
times, an evaluation every 100 steps, step timings and state sizes, so every metric has realistic
values and the to-target metrics have censored seeds. Shapes with 100 trials: 10 optimizers × 10 seeds
(45 pairs, the most pairs per trial), 5 × 20 and 4 × 25.

What is timed: ``verdict.analyze`` (ci95 on the summaries, the paired values of every metric, every
pair's paired t-test and Wilcoxon test, Holm per metric, best sets, power line), median of ``--repeat``
calls after one warm-up call (reported separately, as is importing the module, which imports scipy.stats
once per process).
``metrics.summarize`` (which a run computes anyway) is timed alongside for scale. With ``--run``, the
same for a saved run folder, against the sum of its trials' training seconds: a lower bound of the
run's wall time (evaluation, data loading and start-up come on top), so the share printed is an upper
bound.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adacli.analysis import metrics
from adacli.results import EvalPoint, TrialResult
from adacli.run.store import load_run


def make_trial(label_index: int, seed: int, steps: int, rng: random.Random) -> TrialResult:
    """One plausible trial: loss 2.3 * exp(-rate * step) + noise; accuracy follows the final loss."""
    rate = (1.5 + 0.3 * label_index + rng.gauss(0.0, 0.2)) / steps * (0.3 if label_index == 9 else 1.0)
    losses = [2.3 * math.exp(-rate * i) + 0.05 + abs(rng.gauss(0.0, 0.05)) for i in range(steps)]
    step_s = 0.01 * (1.0 + 0.05 * label_index) * (1.0 + rng.gauss(0.0, 0.02))
    times = [step_s * (i + 1) for i in range(steps)]
    evals = []
    for k in range(1, 11):
        i = k * steps // 10 - 1
        acc = max(5.0, min(99.0, 100.0 - 40.0 * losses[i] + rng.gauss(0.0, 1.0)))
        evals.append(EvalPoint(step=i + 1, seconds=times[i], train_eval_loss=losses[i] * 0.9,
                               train_eval_accuracy=min(100.0, acc + 2.0), test_loss=losses[i],
                               test_accuracy=acc))  # fmt: skip
    return TrialResult(
        label=f"opt{label_index}", optimizer="adam", optimizer_class="torch.optim.Adam",
        hparams={"lr": 1e-3}, seed=seed, losses=losses, times=times, evals=evals,
        step_time_ms=step_s * 1e3, optimizer_step_ms=step_s * 200, state_bytes=1 << 20,
        peak_memory_bytes=1 << 24,
    )  # fmt: skip


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first call, median of ``repeat`` later calls), in seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return first, statistics.median(runs)


def bench(trials: list[TrialResult], repeat: int, target_spec=None) -> tuple[float, float, float]:
    from adacli.analysis import verdict

    target = metrics.resolve_target(trials, target_spec)
    _, summarize_s = timed(lambda: metrics.summarize(trials, target), repeat)
    summaries = metrics.summarize(trials, target)
    first, analyze_s = timed(lambda: verdict.analyze(trials, summaries, target), repeat)
    return first, analyze_s, summarize_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--run", help="also time a saved run folder")
    args = p.parse_args()
    rng = random.Random(0)
    t0 = time.perf_counter()
    from adacli.analysis import verdict  # noqa: F401  (scipy.stats comes with it)

    ms = (time.perf_counter() - t0) * 1e3
    print(f"import adacli.analysis.verdict (scipy.stats): {ms:.0f} ms, once per process")
    print(f"statistics stage on 100 synthetic trials of {args.steps} steps (median of {args.repeat})")
    for n_labels, n_seeds in ((10, 10), (5, 20), (4, 25)):
        trials = [make_trial(j, s, args.steps, rng) for s in range(n_seeds) for j in range(n_labels)]
        first, analyze_s, summarize_s = bench(trials, args.repeat)
        pairs = n_labels * (n_labels - 1) // 2
        print(f"  {n_labels:2d} optimizers x {n_seeds:2d} seeds ({pairs:2d} pairs): "
              f"analyze {analyze_s * 1e3:6.1f} ms (first call {first * 1e3:6.1f} ms), "
              f"metrics.summarize {summarize_s * 1e3:6.1f} ms")  # fmt: skip
    if args.run:
        run = load_run(args.run)
        from adacli.recipe import TargetSpec

        spec = run.recipe.get("target") if isinstance(run.recipe.get("target"), dict) else None
        first, analyze_s, _ = bench(run.trials, args.repeat, TargetSpec(**spec) if spec else None)
        train_s = sum(t.train_seconds for t in run.trials)
        print(f"run {args.run}: {len(run.trials)} trials, analyze {analyze_s * 1e3:.1f} ms (first call "
              f"{first * 1e3:.1f} ms) vs {train_s:.1f} s of training: {100 * analyze_s / train_s:.3f}% "
              "of the run at most")  # fmt: skip


if __name__ == "__main__":
    main()
