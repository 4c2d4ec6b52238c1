"""Wall time of whole commands with the defaults, against serial one-thread runs and a minimal loop.

Every round runs, each as a fresh process timed from outside (so imports, the preflight, the worker pool,
evaluation, saving and plotting all count):

* ``benchmarks/bench_loop.py --threads 1``: the minimal hand-written training loop's pace on this machine
  at one thread (test_resnet, digits 16 px, batch 64: the quickstart's model and batch);
* ``adacli compare recipes/quickstart.yaml`` with the defaults and with ``--jobs 1 --threads 1``;
* with ``--suite``: ``adacli suite recipes/suite_cpu.yaml`` with the defaults and with ``--jobs 1
  --threads 1``.

The order rotates from round to round, so a machine whose load changes affects every command alike;
the figures are medians over rounds, and the ratios are taken within each round. Targets (DESIGN.md
section 6, on a 2-core machine): quickstart wall <= 0.6 x (2,400 steps x the minimal loop's one-thread
step) + 10 s; suite_cpu with the defaults <= 0.6 x its serial one-thread wall.

    python benchmarks/bench_wall.py --rounds 3            # quickstart only (about 1.5 min a round)
    python benchmarks/bench_wall.py --rounds 3 --suite    # and suite_cpu (about 6 more minutes a round)
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
QUICKSTART_STEPS = 2400  # 12 trials x 200 steps


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a command that must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def commands(tmp: Path, suite: bool) -> dict[str, list[str]]:
    py = sys.executable
    loop = [py, "benchmarks/bench_loop.py", "--steps", "100", "--rounds", "2", "--threads", "1"]
    cmds = {
        "minimal loop": [*loop, "--no-share", "--json"],
        "quickstart default": [py, "-m", "adacli", "compare", "recipes/quickstart.yaml", "--out"],
        "quickstart serial": [py, "-m", "adacli", "compare", "recipes/quickstart.yaml", "--jobs", "1",
                              "--threads", "1", "--out"],
    }  # fmt: skip
    if suite:
        cmds["suite default"] = [py, "-m", "adacli", "suite", "recipes/suite_cpu.yaml", "--out"]
        cmds["suite serial"] = [py, "-m", "adacli", "suite", "recipes/suite_cpu.yaml", "--jobs", "1",
                                "--threads", "1", "--out"]  # fmt: skip
    return cmds


def one_round(r: int, cmds: dict[str, list[str]], tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """Every command once (order rotated by ``r``): wall seconds, and the minimal loop's steps/s."""
    names = list(cmds)
    figures: dict[str, float] = {}
    for name in names[r % len(names) :] + names[: r % len(names)]:
        cmd = list(cmds[name])
        if cmd[-1] == "--out":
            out = tmp / f"{name.replace(' ', '-')}-{r}"
            cmd.append(str(out))
        took, stdout = run(cmd, env)
        if name == "minimal loop":
            figures["minimal steps/s"] = json.loads(stdout)["minimal_steps_per_s"]
        else:
            figures[name] = took
            shutil.rmtree(tmp / f"{name.replace(' ', '-')}-{r}", ignore_errors=True)
    step_s = 1.0 / figures["minimal steps/s"]
    figures["quickstart target s"] = 0.6 * QUICKSTART_STEPS * step_s + 10.0
    figures["quickstart default / target"] = figures["quickstart default"] / figures["quickstart target s"]
    figures["quickstart default / serial"] = figures["quickstart default"] / figures["quickstart serial"]
    figures["quickstart serial / (2400 steps)"] = figures["quickstart serial"] / (QUICKSTART_STEPS * step_s)
    if "suite default" in figures:
        figures["suite default / serial"] = figures["suite default"] / figures["suite serial"]
    return figures


def wait_for_quiet(load: float | None, limit_s: float = 1800.0) -> float:
    """On a shared machine: wait (at most ``limit_s``) until the 1-minute load average is <= ``load``;
    returns the load average the round starts at."""
    t0 = time.monotonic()
    while load is not None and os.getloadavg()[0] > load and time.monotonic() - t0 < limit_s:
        time.sleep(10)
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--suite", action="store_true", help="also time recipes/suite_cpu.yaml (minutes)")
    ap.add_argument(
        "--wait-load",
        type=float,
        default=None,
        metavar="L",
        help="before each round, wait until the 1-minute load average is <= L (shared machines)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-wall-"))
    rounds = []
    try:
        for r in range(args.rounds):
            load = wait_for_quiet(args.wait_load)
            rounds.append(
                {"load average at start": load, **one_round(r, commands(tmp, args.suite), tmp, env)}
            )
            print(
                f"round {r + 1}: " + json.dumps({k: round(v, 3) for k, v in rounds[-1].items()}),
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.json:
        print(json.dumps({"cores": cores, "rounds": rounds, "medians": medians}, indent=1))
        return 0
    print(f"{args.rounds} rounds on {cores} cores (medians; ratios taken within each round)")
    for k, v in medians.items():
        print(f"  {k:<34} {v:9.3f}")
    ok = medians["quickstart default / target"] <= 1.0
    if "suite default / serial" in medians:
        ok = ok and medians["suite default / serial"] <= 0.6
    print("  targets: quickstart default / target <= 1; suite default / serial <= 0.6 (2 cores)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
