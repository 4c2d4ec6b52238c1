"""What starting local worker processes costs, against a serial run and against one ``import torch``.

Runs ``adacli compare RECIPE --steps 1 --seeds 1`` (almost nothing to train: every trial is one step,
its warm-up and its evaluations) serially (``--jobs 1 --threads 1``) and with a worker pool
(``--jobs N --threads 1``), each a fresh process timed from outside, in alternating rounds, and
``python -c "import torch"`` in the same rounds. The difference of the medians is what the pool's start
costs a run (the parallel trials win back a little of it); the target (DESIGN.md section 6) is at most
about one torch import.

    python benchmarks/bench_pool.py                    # quickstart, --jobs 2, 3 rounds
    python benchmarks/bench_pool.py --jobs 2 4 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command (which must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took


def compare_cmd(recipe: str, out: Path, jobs: int) -> list[str]:
    return [
        sys.executable, "-m", "adacli", "compare", recipe, "--steps", "1", "--seeds", "1",
        "--jobs", str(jobs), "--threads", "1", "--out", str(out), "--json",
    ]  # fmt: skip


def executor_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["environment"]["executor"]


def measure(args: argparse.Namespace, env: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, dict]]:
    """Every round: import torch, the serial run and each ``--jobs`` run (order rotated); wall seconds
    per command and what each run's executor recorded."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    times: dict[str, list[float]] = {"import torch": [], "serial": [], **{f"jobs {j}": [] for j in args.jobs}}
    described: dict[str, dict] = {}
    try:
        timed([sys.executable, "-c", "import torch"], env)  # file cache warm, not measured
        for r in range(args.rounds):
            while args.wait_load is not None and os.getloadavg()[0] > args.wait_load:
                time.sleep(10)
            order = list(times)
            for name in order[r % len(order) :] + order[: r % len(order)]:  # none always runs first
                if name == "import torch":
                    times[name].append(timed([sys.executable, "-c", "import torch"], env))
                    continue
                out = tmp / f"{name.replace(' ', '')}-{r}"
                jobs = 1 if name == "serial" else int(name.split()[1])
                times[name].append(timed(compare_cmd(args.recipe, out, jobs), env))
                described[name] = executor_of(out)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return times, described


def show(figures: dict) -> None:
    med = figures["median_s"]
    print(
        f"{figures['recipe']} with --steps 1 --seeds 1, {figures['rounds']} rounds, {figures['cores']} cores "
        "(medians)"
    )
    print(f"  import torch      : {med['import torch']:6.2f} s")
    print(f"  serial --jobs 1   : {med['serial']:6.2f} s")
    for k, cost in figures["pool_cost_s"].items():
        ex = figures["executors"][k]
        print(
            f"  {k:<17} : {med[k]:6.2f} s  pool costs {cost:+.2f} s = "
            f"{figures['pool_cost_in_torch_imports'][k]:.2f} torch imports "
            f"({ex.get('workers')} workers, {ex.get('start_method')}, "
            f"ready after {ex.get('worker_ready_s')} s)"
        )
    print("  target: a pool costs at most about one torch import over serial")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default="recipes/quickstart.yaml")
    ap.add_argument("--jobs", type=int, nargs="+", default=[2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--wait-load", type=float, default=None, metavar="L",
                    help="before each round, wait until the 1-minute load average is <= L")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    times, described = measure(args, {**os.environ, "PYTHONPATH": path})
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_s, serial_s = med["import torch"], med["serial"]
    figures = {
        "recipe": args.recipe,
        "rounds": args.rounds,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "median_s": med,
        "times_s": times,
        "pool_cost_s": {k: med[k] - serial_s for k in med if k.startswith("jobs")},
        "pool_cost_in_torch_imports": {k: (med[k] - serial_s) / torch_s for k in med if k.startswith("jobs")},
        "executors": described,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        show(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
