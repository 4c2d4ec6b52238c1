"""Wall time of ``adacli validate`` (and of static rejections) as a user sees it: a fresh process each time.

DESIGN.md section 6 and issue targets: a recipe with a static problem (duplicate labels, an unknown
reference, a malformed suite) is rejected in < 2 s, before torch is imported; ``validate`` of a sweep of 20
optimizers x 1,000 points finishes in < 5 s. The small recipe's time is the floor (torch's and timm's
imports, one real forward/backward and step per optimizer), so the sweep's own cost is the difference.

Usage: python benchmarks/bench_validate.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = """\
name: bench-validate
model: {name: test_resnet}
dataset: {name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 256, test_size: 64}
budget: {steps: 4, batch_size: 32}
device: cpu
"""
NAMES = ("adam", "adamw", "sgd", "rmsprop", "adabelief", "nadam", "radam", "adamax", "adagrad", "asgd")
DECAYS = "[0.0, 1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2, 2.0e-2, 5.0e-2, 0.1, 0.2, 0.5]"


def sweep_recipe(n_optimizers: int = 20) -> str:
    """20 optimizers x (100 learning rates x 10 weight decays) = 20,000 sweep points."""
    lines = []
    for i in range(n_optimizers):
        name = NAMES[i % len(NAMES)]
        lines.append(
            f"  - {{name: {name}, label: o{i}, lr: {{log_range: [1.0e-4, 1.0e-1], n: 100}}, "
            f"weight_decay: {{grid: {DECAYS}}}}}"
        )
    return HEAD + "optimizers:\n" + "\n".join(lines) + "\n"


def cases(folder: Path) -> dict[str, list[str]]:
    files = {
        "small.yaml": HEAD + "optimizers: [adam, sgd]\n",
        "sweep20k.yaml": sweep_recipe(),
        "duplicate_labels.yaml": HEAD + "optimizers: [{name: adam, label: a}, {name: sgd, label: a}]\n",
        "unknown_reference.yaml": HEAD + "optimizers: [adam, sgd]\nreference: adma\n",
        "suite_lists_itself.yaml": (
            "name: s\noptimizers: [adam]\nworkloads: [{recipe: suite_lists_itself.yaml}]\n"
        ),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    return {
        "validate small recipe (floor)": ["validate", str(folder / "small.yaml")],
        "validate 20 x 1,000 sweep points": ["validate", str(folder / "sweep20k.yaml")],
        "compare: duplicate labels": ["compare", str(folder / "duplicate_labels.yaml")],
        "compare: unknown reference": ["compare", str(folder / "unknown_reference.yaml")],
        "suite: lists itself": ["suite", str(folder / "suite_lists_itself.yaml")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        commands = cases(Path(tmp))
        times: dict[str, list[float]] = {k: [] for k in commands}
        codes: dict[str, int] = {}
        for _ in range(args.repeats):  # interleaved: a busy machine slows every case alike
            for label, argv in commands.items():
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "adacli", *argv], capture_output=True, text=True)
                times[label].append(time.perf_counter() - t0)
                codes[label] = proc.returncode
        for label, ts in times.items():
            print(
                f"{label:36s} exit {codes[label]}  median {statistics.median(ts):6.2f} s  (runs: "
                + ", ".join(f"{t:.2f}" for t in ts)
                + ")"
            )


if __name__ == "__main__":
    main()
