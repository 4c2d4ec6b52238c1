"""A corpus of bad and unusual inputs, tried as a careless user, an attacker and a CI runner would.

Bad input: exit 2, one ``error:`` line naming the field (or option), no traceback, nothing trained (no run
folder). Static problems (anything the recipe or suite file and the command line say by themselves) are
rejected before torch is imported, which is what keeps them under DESIGN's 2 s: they run in one fresh
process that must end without torch in ``sys.modules``. Problems that need the environment (the data, the
model, a user's module) go through the in-process CLI. Unusual but valid inputs exit 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import FIXTURES, REPO, invoke

BASE = """\
name: corpus
model: {name: test_resnet}
dataset: {name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 128, test_size: 32}
budget: {steps: 2, batch_size: 32, eval_every: 2}
seeds: 1
device: cpu
optimizers: [adam, sgd]
"""
OPTS = "optimizers: [adam, sgd]"


def _with(*edits: tuple[str, str], extra: str = "") -> str:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return text + extra


# (id, recipe text or None, suite text or None, extra CLI arguments, field named in the error)
STATIC = [
    ("nan-lr", _with((OPTS, "optimizers: [{name: adam, lr: .nan}, sgd]")), None, [], "optimizers[0].lr"),
    ("inf-seconds", _with(("steps: 2,", "seconds: .inf,")), None, [], "budget.seconds"),
    ("inf-epochs", _with(("steps: 2,", "epochs: .inf,")), None, [], "budget.epochs"),
    ("huge-steps", _with(("steps: 2,", "steps: 1.0e15,")), None, [], "budget.steps"),
    ("aliasing-seeds", _with(("seeds: 1", "seeds: [1, 4294967297]")), None, [], "seeds"),
    ("nan-target", BASE + "target: {value: .nan}\n", None, [], "target.value"),
    (
        "inf-in-a-grid",
        _with((OPTS, "optimizers: [{name: adam, lr: [1.0e-3, .inf]}, sgd]")),
        None,
        [],
        "optimizers[0].lr[1]",
    ),
    (
        "nan-deep-in-kwargs",
        _with(("test_resnet}", "test_resnet, kwargs: {a: {b: [1, .nan]}}}")),
        None,
        [],
        "model.kwargs.a.b[1]",
    ),
    (
        "nan-difficulty",
        _with(("test_size: 32}", "test_size: 32, difficulty: .nan}")),
        None,
        [],
        "dataset.difficulty",
    ),
    ("inf-gate", BASE + "gate: {accuracy_drop: .inf}\n", None, [], "gate.accuracy_drop"),
    (
        "duplicate-labels",
        _with((OPTS, "optimizers: [{name: adam, label: a}, {name: sgd, label: a}]")),
        None,
        [],
        "optimizers",
    ),
    ("unknown-reference", BASE + "reference: adma\n", None, [], "reference"),
    ("unknown-reference-option", BASE, None, ["--reference", "sgdd"], "--reference"),
    ("python-tag", _with(("name: corpus", "name: !!python/object/apply:os.system [true]")), None, [], None),
    (
        "duplicate-key-beside-merge",
        _with((OPTS, "optimizers:\n  - &a {name: adam}\n  - {<<: *a, label: b, lr: 0.1, lr: 0.2}")),
        None,
        [],
        "optimizers[1].lr",
    ),
    ("threads-100000", BASE, None, ["--threads", "100000"], "--threads"),
    ("cpus-nan", BASE, None, ["--executor", "ray", "--cpus-per-trial", "nan"], "--cpus-per-trial"),
    ("seeds-option-too-many", BASE, None, ["--seeds", "5000"], "--seeds"),
    (
        "suite-lists-itself",
        BASE,
        "name: s\noptimizers: [adam]\nworkloads: [{recipe: suite.yaml}]\n",
        [],
        "workloads[0].recipe",
    ),
    (
        "suite-repeated-seeds",
        BASE,
        "name: s\nseeds: [3, 3]\noptimizers: [adam]\nworkloads: [{recipe: r.yaml}]\n",
        [],
        "seeds",
    ),
]

CHILD = """
import sys
from adacli.cli import app
for argv in {argvs!r}:
    try:
        app(argv)
    except SystemExit as e:
        print("EXIT", e.code, flush=True)
        print("---", file=sys.stderr, flush=True)
print("HEAVY", sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules))
"""


def _argv(case: tuple, folder: Path) -> list[str]:
    name, recipe, suite, extra, _ = case
    case_dir = folder / name
    case_dir.mkdir()
    (case_dir / "r.yaml").write_text(recipe)
    if suite is not None:
        (case_dir / "suite.yaml").write_text(suite)
        return ["suite", str(case_dir / "suite.yaml"), "--out", str(case_dir / "out"), *extra]
    return ["compare", str(case_dir / "r.yaml"), "--out", str(case_dir / "out"), *extra]


def test_static_problems_are_exit_2_naming_the_field_before_torch_is_imported(tmp_path):
    argvs = [_argv(case, tmp_path) for case in STATIC]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = CHILD.format(argvs=argvs)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = [line for line in proc.stdout.splitlines() if line.startswith("EXIT")]
    outputs = proc.stderr.split("---\n")[: len(STATIC)]
    assert len(codes) == len(STATIC) == len(outputs), proc.stdout + proc.stderr
    for case, code, out in zip(STATIC, codes, outputs, strict=True):
        name, field = case[0], case[4]
        assert code == "EXIT 2", (name, code, out)
        assert "Traceback" not in out and out.count("error:") == 1 and len(out.strip().splitlines()) == 1, (
            name,
            out,
        )
        if field is not None:
            assert f" {field}: " in out or f": {field}: " in out or out.startswith(f"error: {field}:"), (
                name,
                out,
            )
        assert not (tmp_path / name / "out").exists(), name  # nothing trained, no folder
    assert "HEAVY []" in proc.stdout, proc.stdout  # torch never imported: static checks only


# (id, recipe text, extra arguments, field, words): problems found with the data, model or user code
ENVIRONMENT = [
    (
        "contradicting-class-count",
        _with(
            (
                "synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 128, test_size: 32",
                "digits, image_size: 8, num_classes: 5",
            )
        ),
        [],
        "dataset.num_classes",
        "digits has 10 classes",
    ),
    (
        "kwargs-contradict-data",
        _with(("test_resnet}", "test_resnet, kwargs: {num_classes: 3}}")),
        [],
        "model.kwargs.num_classes",
        "contradicts dataset synthetic (4 classes)",
    ),
    (
        "synthetic-too-large",
        _with(("train_size: 128", "train_size: 90000000"), ("image_size: 8", "image_size: 1024")),
        [],
        "dataset.train_size",
        "GiB",
    ),
    (
        "timm-keyerror",
        _with(("test_resnet}", "test_resnet, kwargs: {act_layer: no_such_act}}")),
        [],
        "model.kwargs",
        "KeyError",
    ),
    (
        "missing-pretrained-file",
        _with(
            (
                "test_resnet}",
                "test_resnet, kwargs: {pretrained: true, pretrained_cfg_overlay: {file: /no.pth}}}",
            )
        ),
        [],
        "model.kwargs",
        "FileNotFoundError",
    ),
    (
        "module-exits-at-import",
        _with((OPTS, 'optimizers: [adam, {name: "import_exits:Opt"}]')),
        [],
        "optimizers[1].name",
        "importing import_exits raised SystemExit(0)",
    ),
    (
        "module-parses-argv",
        _with((OPTS, 'optimizers: [adam, {name: "import_parses_argv:Opt"}]')),
        [],
        "optimizers[1].name",
        "raised SystemExit(2); it printed: 'usage:",
    ),
    (
        "lbfgs-by-import-path",
        _with((OPTS, 'optimizers: [adam, {name: "torch.optim:LBFGS"}]')),
        [],
        "optimizers[1].name",
        "requires a closure",
    ),
    (
        "sparseadam-by-import-path",
        _with((OPTS, 'optimizers: [adam, {name: "torch.optim:SparseAdam"}]')),
        [],
        "optimizers[1].name",
        "sparse gradients",
    ),
]
if not torch.cuda.is_available():
    ENVIRONMENT.append(
        ("device-cuda-option", BASE, ["--device", "cuda"], "--device", "CUDA is not available")
    )


@pytest.mark.parametrize(
    ("name", "recipe", "extra", "field", "words"), ENVIRONMENT, ids=[c[0] for c in ENVIRONMENT]
)
def test_environment_problems_are_exit_2_naming_the_field_before_training(
    tmp_path, monkeypatch, name, recipe, extra, field, words
):
    monkeypatch.syspath_prepend(str(FIXTURES))
    path = tmp_path / "r.yaml"
    path.write_text(recipe)
    res = invoke("compare", str(path), "--out", str(tmp_path / "out"), *extra)
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1, res.output
    assert "Traceback" not in res.output and f"{field}: " in errors[0] and words in errors[0], errors[0]
    assert not (tmp_path / "out").exists()  # nothing trained


def test_unusual_but_valid_inputs_exit_0(tmp_path, monkeypatch, capsys):
    """Merge keys, the largest seed torch tells apart, a real dataset's own class count written out,
    a zero learning rate, a user module that prints while it imports: all run (one tiny compare)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    recipe = _with(
        ("seeds: 1", "seeds: [4294967295]"),
        (
            "synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 128, test_size: 32",
            "digits, image_size: 8, num_classes: 10, channels: 1",
        ),
        (
            OPTS,
            "optimizers:\n  - &base {name: adam, lr: 0.0}\n  - {<<: *base, name: adamw}\n"
            '  - {name: "import_chatty:Opt", lr: 0.05}',
        ),
    )
    path = tmp_path / "r.yaml"
    path.write_text(recipe)
    sys.modules.pop("import_chatty", None)
    res = invoke("compare", str(path), "--out", str(tmp_path / "out"), "--threads", "1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["status"] == "complete" and [t["seed"] for t in data["trials"]] == [4294967295] * 3
    assert data["trials"][1]["hparams"]["lr"] == 0.0 and data["trials"][1]["optimizer"] == "adamw"
    assert [t["status"] for t in data["trials"]] == ["ok"] * 3  # lr 0 trains nothing: still a result
