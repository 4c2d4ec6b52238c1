"""Throughput of adacli's trial loop against a minimal hand-written training loop (DESIGN.md section 6).

Both run in this one process on the same model (the same initial weights), the same batches (the same
``DataBundle.train_batches`` iterator and seed), the same optimizer class and hyperparameters, and the
same number of steps. Rounds alternate (minimal, trial, minimal, trial, ...) so a machine whose load
changes over time affects both alike; the reported figures are medians over the rounds.

The minimal loop is what anyone would write: next batch, forward, cross-entropy, ``zero_grad``,
``backward``, ``step``; no logging, no clock reads, no evaluation; a device sync only at the very end.
The trial's time is its own training clock (``TrialResult.train_seconds``: evaluation excluded, device
synchronised), and, as a cross-check that the clock is honest, the wall time of the whole ``run_trial``
call minus the time of its one (final) evaluation is printed too.

Target: trial throughput >= 0.9x the minimal loop.

    .venv/bin/python benchmarks/bench_loop.py                     # CPU, test_resnet, digits 16 px
    .venv/bin/python benchmarks/bench_loop.py --device cuda --model resnet18 --image-size 32 \
        --dataset synthetic --batch-size 256 --precision bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from adacli.data import load_data
from adacli.optim.registry import resolve_optimizer
from adacli.recipe import BudgetSpec, DatasetSpec, ModelSpec
from adacli.trial import TrialConfig, evaluate, initial_model, resolve_device, run_trial


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def minimal_loop(model, data, resolved, *, steps, batch_size, seed, device, precision) -> float:
    """The hand-written baseline; returns its training seconds."""
    net = copy.deepcopy(model).to(device).train()
    opt = resolved.build(net.parameters())
    batches = data.train_batches(batch_size, seed, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    ctx = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    torch.manual_seed(seed)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        with ctx():
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="test_resnet")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--optimizer", default="adabelief")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    data = load_data(DatasetSpec(name=args.dataset, image_size=args.image_size))
    model = initial_model(ModelSpec(name=args.model), data, seed=0)
    resolved = resolve_optimizer(args.optimizer, {})
    budget = BudgetSpec(steps=args.steps, batch_size=args.batch_size, eval_every=args.steps)
    config = TrialConfig(budget=budget, device=device, precision=args.precision)

    # warm-up (allocator, kernels, first-touch), not measured
    minimal_loop(
        model,
        data,
        resolved,
        steps=10,
        batch_size=args.batch_size,
        seed=0,
        device=device,
        precision=args.precision,
    )
    run_trial(
        model,
        data,
        resolved,
        TrialConfig(
            budget=BudgetSpec(steps=10, batch_size=args.batch_size), device=device, precision=args.precision
        ),
        seed=0,
    )

    minimal_s, trial_s, trial_wall_s = [], [], []
    kw = dict(steps=args.steps, batch_size=args.batch_size, device=device, precision=args.precision)

    def one_minimal(r: int) -> None:
        minimal_s.append(minimal_loop(model, data, resolved, seed=r, **kw))

    def one_trial(r: int) -> None:
        t0 = time.perf_counter()
        res = run_trial(model, data, resolved, config, seed=r)
        trial_wall_s.append(time.perf_counter() - t0)
        assert res.status == "ok" and res.steps_done == args.steps, (res.status, res.error)
        trial_s.append(res.train_seconds)

    for r in range(args.rounds):  # alternate which loop goes first, so neither always runs "warmer"
        first, second = (one_minimal, one_trial) if r % 2 == 0 else (one_trial, one_minimal)
        first(r)
        second(r)
    # one evaluation's cost, to read the wall-clock cross-check (wall - eval ~ clock + setup)
    net = copy.deepcopy(model).to(device)
    t0 = time.perf_counter()
    for split in ("train_eval", "test"):
        evaluate(net, data, split, batch_size=budget.eval_batch_size, device=device, precision=args.precision)
    _sync(device)
    eval_s = time.perf_counter() - t0

    m, t, w = statistics.median(minimal_s), statistics.median(trial_s), statistics.median(trial_wall_s)
    # paired per-round ratios: robust to load that drifts between rounds on a shared machine
    paired = statistics.median(a / b for a, b in zip(minimal_s, trial_s, strict=True))
    figures = {
        "device": str(device),
        "model": args.model,
        "dataset": f"{args.dataset}@{args.image_size}px",
        "batch_size": args.batch_size,
        "optimizer": resolved.qualname,
        "precision": args.precision,
        "steps": args.steps,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "minimal_steps_per_s": args.steps / m,
        "trial_steps_per_s": args.steps / t,
        "ratio": m / t,
        "ratio_paired_median": paired,
        "trial_wall_minus_eval_steps_per_s": args.steps / max(1e-9, w - eval_s),
        "ratio_wall_minus_eval": m / max(1e-9, w - eval_s),
        "minimal_s": minimal_s,
        "trial_clock_s": trial_s,
        "trial_wall_s": trial_wall_s,
        "eval_s": eval_s,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(
            f"{figures['dataset']}, {args.model}, batch {args.batch_size}, {resolved.qualname}, "
            f"{args.precision}, {args.steps} steps x {args.rounds} rounds on {device} "
            f"({figures['threads']} threads)"
        )
        print(f"  minimal loop : {figures['minimal_steps_per_s']:8.1f} steps/s  (median {m:.3f} s)")
        print(f"  adacli trial : {figures['trial_steps_per_s']:8.1f} steps/s  (median clock {t:.3f} s)")
        print(
            f"  ratio trial/minimal: {m / t:.3f}x (medians), {paired:.3f}x (median of paired rounds);"
            " target >= 0.9x"
        )
        print(
            f"  cross-check, trial wall - one eval ({eval_s:.3f} s), setup included: "
            f"{figures['ratio_wall_minus_eval']:.3f}x"
        )
    return 0 if max(figures["ratio"], paired) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
