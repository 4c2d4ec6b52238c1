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

On CUDA two more loops run in the same rounds (skip them with ``--no-graph``): the trial with
``model.compile: graph`` (forward, backward and optimizer step replayed as one CUDA graph) and a minimal
hand-written graphed loop (static input buffers, a side-stream warm-up, one capture, copy-and-replay per
step). Targets: the graphed trial >= 3x the eager trial and >= 0.9x the hand-written graphed loop.

    .venv/bin/python benchmarks/bench_loop.py                     # CPU, test_resnet, digits 16 px
    .venv/bin/python benchmarks/bench_loop.py --device cuda --model resnet18 --image-size 32 \
        --dataset synthetic --batch-size 128 --precision bf16
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

from adacli.optim.registry import resolve_optimizer
from adacli.recipe import BudgetSpec, DatasetSpec, ModelSpec
from adacli.train.data import load_data
from adacli.train.graph import GRAPH_WARMUP_STEPS, graph_problem, make_capturable
from adacli.train.step import evaluate, resolve_device
from adacli.train.trial import TrialConfig, initial_model, run_trial


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


def minimal_graphed_loop(model, data, resolved, *, steps, batch_size, seed, device, precision) -> float:
    """The hand-written graphed baseline (torch's whole-network capture recipe); its training seconds.

    The capture is setup, not training, and is not timed (as the trial's capture is not on its clock).
    """
    net = copy.deepcopy(model).to(device).train()
    opt = resolved.build(net.parameters())
    make_capturable(opt, device, scheduled=False)
    batches = data.train_batches(batch_size, seed, device)
    x0, y0 = next(batches)
    static_x, static_y = x0.clone(), y0.clone()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    ctx = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext

    def train_step() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)
        with ctx():
            loss = F.cross_entropy(net(static_x), static_y)
        loss.backward()
        opt.step()
        return loss

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_STEPS):
            train_step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        train_step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    _sync(device)
    return time.perf_counter() - t0


def _graph_figures(args, minimal_s, trial_s, graphed_min_s, graphed_trial_s) -> dict:
    """Steps per second and the two graph targets (paired per round, medians)."""
    med = statistics.median
    return {
        "minimal_graphed_steps_per_s": args.steps / med(graphed_min_s),
        "trial_graphed_steps_per_s": args.steps / med(graphed_trial_s),
        "graphed_vs_eager_trial": med(trial_s) / med(graphed_trial_s),
        "graphed_vs_eager_trial_paired": med(a / b for a, b in zip(trial_s, graphed_trial_s, strict=True)),
        "graphed_trial_vs_minimal_graphed": med(graphed_min_s) / med(graphed_trial_s),
        "graphed_trial_vs_minimal_graphed_paired": med(
            a / b for a, b in zip(graphed_min_s, graphed_trial_s, strict=True)
        ),
        "minimal_graphed_s": graphed_min_s,
        "trial_graphed_clock_s": graphed_trial_s,
    }


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
    ap.add_argument("--no-graph", action="store_true", help="on CUDA, skip the graphed loops")
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
    graphed_min_s: list[float] = []
    graphed_trial_s: list[float] = []
    kw = dict(steps=args.steps, batch_size=args.batch_size, device=device, precision=args.precision)
    graph = device.type == "cuda" and not args.no_graph
    if graph:
        probe = resolved.build(copy.deepcopy(model).parameters())
        problem = graph_problem(probe, device, args.precision)
        if problem:
            print(f"graphed loops skipped: {problem}", file=sys.stderr)
            graph = False
    graph_config = TrialConfig(budget=budget, device=device, precision=args.precision, compile="graph")

    def one_minimal(r: int) -> None:
        minimal_s.append(minimal_loop(model, data, resolved, seed=r, **kw))

    def one_trial(r: int) -> None:
        t0 = time.perf_counter()
        res = run_trial(model, data, resolved, config, seed=r)
        trial_wall_s.append(time.perf_counter() - t0)
        assert res.status == "ok" and res.steps_done == args.steps, (res.status, res.error)
        trial_s.append(res.train_seconds)

    def one_minimal_graphed(r: int) -> None:
        graphed_min_s.append(minimal_graphed_loop(model, data, resolved, seed=r, **kw))

    def one_trial_graphed(r: int) -> None:
        res = run_trial(model, data, resolved, graph_config, seed=r)
        assert res.status == "ok" and res.extra.get("graph") is True, (res.status, res.error)
        graphed_trial_s.append(res.train_seconds)

    loops = [one_minimal, one_trial]
    if graph:
        loops += [one_minimal_graphed, one_trial_graphed]
        one_minimal_graphed(0)  # warm-up of the graphed paths (capture, Triton JIT), not measured
        graphed_min_s.clear()
    for r in range(args.rounds):  # rotate which loop goes first, so none always runs "warmer"
        for loop in loops[r % len(loops) :] + loops[: r % len(loops)]:
            loop(r)
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
    if graph:
        figures |= _graph_figures(args, minimal_s, trial_s, graphed_min_s, graphed_trial_s)
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
        if graph:
            g = figures
            print(f"  minimal graphed loop: {g['minimal_graphed_steps_per_s']:8.1f} steps/s")
            print(f"  adacli trial, graph : {g['trial_graphed_steps_per_s']:8.1f} steps/s")
            print(
                f"  graphed trial / eager trial: {g['graphed_vs_eager_trial']:.2f}x "
                f"({g['graphed_vs_eager_trial_paired']:.2f}x paired); target >= 3x"
            )
            print(
                f"  graphed trial / minimal graphed: {g['graphed_trial_vs_minimal_graphed']:.3f}x "
                f"({g['graphed_trial_vs_minimal_graphed_paired']:.3f}x paired); target >= 0.9x"
            )
    ok = max(figures["ratio"], paired) >= 0.9
    if graph:
        ok = ok and figures["graphed_vs_eager_trial"] >= 3.0
        ok = ok and figures["graphed_trial_vs_minimal_graphed"] >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
