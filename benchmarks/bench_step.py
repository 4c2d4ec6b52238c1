"""Step benchmark script: the same measurement as ``adacli bench`` (``adacli.ci.bench.run_bench``), for CI.

Usage: python benchmarks/bench_step.py [--model resnet18 ...] [--device cpu|cuda] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from adacli.ci.bench import DEFAULT_MODELS, results_table, run_bench


def main() -> None:
    """Parse options, run the benchmark, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="timm model name (repeatable)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_bench(
        args.model or DEFAULT_MODELS,
        device=args.device,
        rounds=args.rounds,
        steps_per_round=args.steps_per_round,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        Console(width=160).print(results_table(result))


if __name__ == "__main__":
    main()
