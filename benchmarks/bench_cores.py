"""How much N one-thread training loops side by side get done, against one alone: the ceiling of what
parallel one-thread trials (adacli's default on the CPU) can gain on this machine.

Each round runs the minimal hand-written loop of ``bench_loop.py`` (test_resnet, digits 16 px, batch 64,
Adam, one torch thread) in one process alone, then in N processes at once, each pinned to its own core,
and reports the steps per second of each. Two real cores give close to 2x; two hyperthreads of one core,
or cores busy with other work, give less, and that is what the default's speed-up over a serial run can
at most be.

    python benchmarks/bench_cores.py                  # N = every core this process may use
    python benchmarks/bench_cores.py --procs 2 --rounds 3 --wait-load 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOOP = """
import sys, time, torch
import torch.nn.functional as F
torch.set_num_threads(1)
from adacli.optim.registry import resolve_optimizer
from adacli.recipe import DatasetSpec, ModelSpec
from adacli.train.data import load_data
from adacli.train.trial import initial_model
data = load_data(DatasetSpec(name="digits", image_size=16))
net = initial_model(ModelSpec(name="test_resnet"), data, 0)
opt = resolve_optimizer("adam", {}).build(net.parameters())
batches = data.train_batches(64, 0, "cpu")
def run(n):
    for _ in range(n):
        x, y = next(batches)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
run(20)
start = float(sys.argv[2])
while time.time() < start:  # every process starts its timed steps at the same moment
    time.sleep(0.005)
t0 = time.perf_counter()
run(int(sys.argv[1]))
print(int(sys.argv[1]) / (time.perf_counter() - t0))
"""


def together(cores: list[int], steps: int, env: dict[str, str]) -> list[float]:
    """Steps/s of one loop per core in ``cores``, all timed over the same moment."""
    start = time.time() + 15.0  # after every process has imported torch and warmed up
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP, str(steps), str(start)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=(lambda c=c: os.sched_setaffinity(0, {c}))
            if hasattr(os, "sched_setaffinity")
            else None,
        )
        for c in cores
    ]
    return [float(p.communicate()[0].strip()) for p in procs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cores = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    ap.add_argument("--procs", type=int, default=len(cores))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--wait-load", type=float, default=None, metavar="L",
                    help="before each round, wait until the 1-minute load average is <= L")  # fmt: skip
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    rows = []
    for _ in range(args.rounds):
        while args.wait_load is not None and os.getloadavg()[0] > args.wait_load:
            time.sleep(10)
        load = os.getloadavg()[0]
        alone = together(cores[:1], args.steps, env)[0]
        side = together(cores[: args.procs], args.steps, env)
        rows.append({"load": load, "alone": alone, "side_by_side": side, "scaling": sum(side) / alone})
    scaling = statistics.median(r["scaling"] for r in rows)
    if args.json:
        print(json.dumps({"procs": args.procs, "rounds": rows, "scaling_median": scaling}, indent=1))
        return 0
    for r in rows:
        each = ", ".join(f"{v:.1f}" for v in r["side_by_side"])
        print(f"load {r['load']:.2f}: alone {r['alone']:.1f} steps/s; {args.procs} side by side: {each} "
              f"steps/s = {r['scaling']:.2f}x one alone")  # fmt: skip
    print(f"median: {args.procs} one-thread loops side by side do {scaling:.2f}x the work of one alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
