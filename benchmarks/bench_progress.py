"""Cost of one ``RunProgress.event()`` call for a training step (the per-step progress of every run).

A worker reports a step at most every 0.1 s, and the serial executor calls the display from the trial's
own process, so it must stay far below a step's time (a small model's step on a CPU takes about a
millisecond): target < 20 µs per call. A benchmark, not a test: on a loaded machine the figure moves,
and a test must not fail because the machine is busy.

    python benchmarks/bench_progress.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import io
import time

from rich.console import Console

from adacli.report.progress import RunProgress
from adacli.run.executors import ProgressEvent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    with RunProgress(console) as progress:
        progress.plan(1)
        progress.event(ProgressEvent("start", "main", 0, "adabelief", 0))
        steps = [
            ProgressEvent("step", "main", 0, "adabelief", 0, i + 1, args.calls, 0.5)
            for i in range(args.calls)
        ]
        t0 = time.perf_counter()
        for ev in steps:
            progress.event(ev)
        per_call = (time.perf_counter() - t0) / args.calls
    verdict = "OK" if per_call < 20e-6 else "SLOWER THAN THE 20 µs TARGET"
    print(f"RunProgress.event(step): {per_call * 1e6:.2f} µs per call over {args.calls} calls: {verdict}")


if __name__ == "__main__":
    main()
