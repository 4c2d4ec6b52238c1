"""One sweep, run serially and with ``--jobs N`` local workers: wall time, trials per hour, speed-up.

    python benchmarks/bench_sweep.py                      # CPU: serial (all cores) vs --jobs 2
    python benchmarks/bench_sweep.py --jobs 2 4 --steps 300
    python benchmarks/bench_sweep.py --device cuda --model resnet18 --dataset synthetic --image-size 32

The sweep: adam and sgd (momentum 0.9), each over ``--configs`` log-spaced learning rates, selected on
the validation split on seed 0, then the chosen configuration on ``--seeds`` seeds; the chosen config's
seed-0 trial is the sweep trial, so ``configs * 2 + (seeds - 1) * 2`` trials run.

What is timed: ``adacli.run.pipeline.run_recipe`` end to end (data loading, worker start-up, every trial,
evaluations, selection, saving the run folder), in this already-warm process. Serial uses every core
for one trial (torch threads = cores); ``--jobs N`` gives each worker cores // N threads (the same
rule the CLI applies). The workers' cold start (spawn + importing torch and timm) is included, because a
user pays it too. The script checks that every executor chose the same configurations and reports
the largest per-step loss difference of the sweep trials. With different thread counts (serial: all
cores, workers: cores // N) float reductions run in another order; that noise can grow over a run and
flip a near-tie between configurations. ``--threads 1`` pins every run to one thread: then the numbers
are bit for bit the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


def recipe_text(args: argparse.Namespace) -> str:
    ds = f"{{name: {args.dataset}, image_size: {args.image_size}"
    if args.dataset == "synthetic":
        ds += ", num_classes: 10, channels: 3, train_size: 5000, test_size: 1000"
    ds += "}"
    return (
        f"name: bench_sweep\nmodel: {{name: {args.model}}}\ndataset: {ds}\n"
        f"budget: {{steps: {args.steps}, batch_size: {args.batch_size}, eval_every: {args.steps}}}\n"
        f"seeds: {args.seeds}\ndevice: {args.device}\n"
        "optimizers:\n"
        f"  - {{name: adam, lr: {{log_range: [1.0e-4, 1.0e-2], n: {args.configs}}}}}\n"
        f"  - {{name: sgd, momentum: 0.9, lr: {{log_range: [1.0e-3, 1.0e-1], n: {args.configs}}}}}\n"
    )


def run_once(recipe, out: Path, executor: str, jobs: int, threads: int) -> dict:
    from adacli.run.pipeline import run_recipe

    t0 = time.perf_counter()
    outcome = run_recipe(recipe, out_dir=out, executor=executor, jobs=jobs, threads=threads)
    wall = time.perf_counter() - t0
    trials = outcome.trials + [_trial(t) for t in (outcome.sweep or {}).get("trials", [])]
    train = sum(t.train_seconds for t in trials if not t.extra.get("reused"))
    return {
        "executor": executor,
        "jobs": jobs,
        "threads_per_trial": threads,
        "wall_s": wall,
        "trials_run": outcome.ran,
        "trials_per_hour": outcome.ran / wall * 3600,
        "train_seconds_sum": train,
        "chosen": [o["chosen"] for o in (outcome.sweep or {}).get("optimizers", [])],
        "losses": {(t.label, t.seed): t.losses for t in trials},
    }


def _trial(d: dict):
    from adacli.results import trial_from_json

    return trial_from_json(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, nargs="+", default=[2])
    ap.add_argument("--model", default="test_resnet")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--configs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--cores", type=int, default=None, help="CPU cores to divide (default: all usable)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="pin torch threads per trial in every run (bit-for-bit check)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from adacli.recipe import load_recipe
    from adacli.run.executors import cpu_cores

    cores = args.cores or cpu_cores()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    try:
        path = tmp / "sweep.yaml"
        path.write_text(recipe_text(args))
        recipe = load_recipe(path)
        runs = [run_once(recipe, tmp / "serial", "serial", 1, args.threads or cores)]
        for jobs in args.jobs:
            runs.append(
                run_once(recipe, tmp / f"jobs{jobs}", "local", jobs, args.threads or max(1, cores // jobs))
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = runs[0]
    rows = []
    for r in runs:
        # sweep trials only (same hyperparameters in every run; finals follow each run's choice)
        diff = max(
            (
                max(
                    (abs(a - b) for a, b in zip(base["losses"][k], r["losses"][k], strict=False)), default=0.0
                )
                for k in base["losses"]
                if k in r["losses"] and "[" in k[0]
            ),
            default=0.0,
        )
        rows.append(
            {
                **{k: v for k, v in r.items() if k != "losses"},
                "speedup": base["wall_s"] / r["wall_s"],
                "same_choices": r["chosen"] == base["chosen"],
                "max_loss_diff_vs_serial": diff,
            }
        )
    meta = {
        "device": args.device,
        "cuda": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "cores": cores,
        "model": args.model,
        "dataset": f"{args.dataset} {args.image_size}px",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "configs_per_optimizer": args.configs,
        "seeds": args.seeds,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps({"meta": meta, "runs": rows}, indent=1, default=str))
        return 0
    print(
        f"sweep: {args.model} on {meta['dataset']}, {args.steps} steps x batch {args.batch_size}, "
        f"2 optimizers x {args.configs} lrs, {args.seeds} seeds; {args.device}, {cores} cores, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'executor':<10}{'jobs':>5}{'threads':>8}{'wall s':>9}{'trials':>7}{'trials/h':>10}"
        f"{'speed-up':>9}  same"
    )
    for r in rows:
        print(
            f"{r['executor']:<10}{r['jobs']:>5}{r['threads_per_trial']:>8}{r['wall_s']:>9.1f}{r['trials_run']:>7}"
            f"{r['trials_per_hour']:>10.0f}{r['speedup']:>8.2f}x  {'yes' if r['same_choices'] else 'NO'} "
            f"(sweep trials: max loss diff {r['max_loss_diff_vs_serial']:.1e})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
