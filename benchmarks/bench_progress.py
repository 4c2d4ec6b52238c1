"""Cost of one ``CompareProgress.step()`` call (the per-step progress callback of a serial compare).

The trial loop calls it after every optimizer step, so it must stay far below a step's time (a small
model's step on a CPU takes about a millisecond): target < 20 µs per call. A benchmark, not a test: on
a loaded machine the figure moves, and a test must not fail because the machine is busy.

    .venv/bin/python benchmarks/bench_progress.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import io
import time

from rich.console import Console

from adacli.report import tables as report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    with report.CompareProgress(console) as progress:
        progress.trial_started(0, 1, "adabelief", 0)
        t0 = time.perf_counter()
        for i in range(args.calls):
            progress.step(i + 1, args.calls, 0.5)
        per_call = (time.perf_counter() - t0) / args.calls
    verdict = "OK" if per_call < 20e-6 else "SLOWER THAN THE 20 µs TARGET"
    print(f"CompareProgress.step(): {per_call * 1e6:.2f} µs per call over {args.calls} calls: {verdict}")


if __name__ == "__main__":
    main()
