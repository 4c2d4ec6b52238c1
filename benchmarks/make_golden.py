"""Regenerate adacli/ci/golden/adabelief_golden.json from the official adabelief-pytorch release.

Run this only on purpose (a deliberate change of the reference), never as part of a build:

    .venv/bin/python benchmarks/make_golden.py            # writes adacli/ci/golden/adabelief_golden.json
    .venv/bin/python benchmarks/make_golden.py --check    # regenerate in memory and diff against the file

The file pins AdaBelief's numerics: ``adacli step-test`` runs adacli's AdaBelief (every path) on the same
closed-form gradient field (``adacli.ci.problems.golden_gradient``) with the same hyperparameters and compares
the trajectory with these values, so a torch upgrade or a code change that alters the arithmetic is caught
where it happens. Everything is float64; the official optimizer is fed gradients, never autograd.

Cases stay inside what the official code does correctly: one param group per case except one with two
groups that share betas and the step count (its rectification buffer is shared across groups, which is
only harmless then), and its flags are global (so they are set per case, not per group).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch

from adacli.ci.problems import golden_gradient, golden_initial

OUT = Path(__file__).resolve().parents[1] / "adacli" / "golden" / "adabelief_golden.json"
STEPS = 40
RECORD = [1, 2, 3, 4, 5, 6, 7, 10, 20, 30, 40]  # the rectification switch (beta2=0.999) is at step 6

# (name, hyperparameters, param groups or None): groups list parameter indices plus per-group overrides.
CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]] | None]] = [
    ("defaults", {"lr": 1e-2}, None),
    ("no_rectify", {"lr": 1e-2, "rectify": False}, None),
    ("decoupled_decay", {"lr": 1e-2, "weight_decay": 0.1}, None),
    ("fixed_decay", {"lr": 1e-2, "weight_decay": 0.05, "fixed_decay": True}, None),
    ("l2_decay", {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False}, None),
    ("amsgrad_no_rectify", {"lr": 1e-2, "amsgrad": True, "rectify": False}, None),
    ("amsgrad_rectify", {"lr": 1e-2, "amsgrad": True}, None),
    ("no_sgd_warmup", {"lr": 1e-2, "degenerated_to_sgd": False}, None),
    ("betas_eps", {"lr": 3e-2, "betas": (0.8, 0.99), "eps": 1e-8}, None),
    (
        "two_groups",
        {"lr": 1e-2, "weight_decay": 0.01},
        [{"params": [0, 1]}, {"params": [2], "lr": 3e-3, "weight_decay": 0.2}],
    ),
]


def _groups(params: list[torch.Tensor], groups: list[dict[str, Any]] | None) -> Any:
    if groups is None:
        return params
    return [{**g, "params": [params[i] for i in g["params"]]} for g in groups]


def run_official(hparams: dict[str, Any], groups: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One case on the official optimizer: parameters at the RECORD steps and the final state."""
    from adabelief_pytorch import AdaBelief as Official

    params = [w.clone() for w in golden_initial()]
    with contextlib.redirect_stdout(io.StringIO()):  # the official constructor prints
        opt = Official(_groups(params, groups), print_change_log=False, **hparams)
    trajectory: dict[str, list[list[float]]] = {}
    for step in range(STEPS):
        for p, g in zip(params, golden_gradient(params, step), strict=True):
            p.grad = g.clone()
        opt.step()
        if step + 1 in RECORD:
            trajectory[str(step + 1)] = [p.detach().reshape(-1).tolist() for p in params]
    state = {
        key: [opt.state[p][key].reshape(-1).tolist() for p in params] for key in ("exp_avg", "exp_avg_var")
    }
    return {"params": trajectory, "state": state}


def build() -> dict[str, Any]:
    import adabelief_pytorch

    version = getattr(adabelief_pytorch, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("adabelief-pytorch")
    torch.set_num_threads(1)
    cases = []
    for name, hparams, groups in CASES:
        cases.append({"name": name, "hparams": hparams, "groups": groups, **run_official(hparams, groups)})
    return {
        "schema_version": 1,
        "generated_by": "benchmarks/make_golden.py",
        "reference": f"adabelief-pytorch {version} (adabelief_pytorch.AdaBelief)",
        "torch": torch.__version__.split("+")[0],
        "dtype": "float64",
        "field": "adacli.ci.problems.golden_gradient",
        "shapes": [list(s) for s in ((5,), (3, 4), ())],
        "steps": STEPS,
        "record_steps": RECORD,
        "cases": cases,
    }


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per case: readable headers, diffable cases, floats written exactly (repr)."""
    head = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items() if k != "cases"]
    cases = [f"  {json.dumps(c)}" for c in data["cases"]]
    return "{\n" + ",\n".join(head) + ',\n "cases": [\n' + ",\n".join(cases) + "\n ]\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="diff against the committed file, write nothing")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    data = build()
    text = _dumps(data)
    if args.check:
        old = json.loads(args.out.read_text())
        same = old["cases"] == json.loads(text)["cases"]
        print("golden file is up to date" if same else "golden values differ from the committed file")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}: {len(data['cases'])} cases, {STEPS} steps, {data['reference']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
