"""Code-aware trial keys: changed code never reuses old trials (a CI runner re-running into its kept
``--out`` after a change to AdaBelief must train again), unchanged code does, and the gate says how many
trials it judged were reused and when they were trained."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import REPO, invoke

from adacli.run import keys

RECIPE = """\
name: code-keys
model: {name: test_resnet}
dataset: {name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 128, test_size: 32}
budget: {steps: 2, batch_size: 32, eval_every: 2}
device: cpu
optimizers: [adabelief, sgd]
"""


def _fingerprint(tree: Path) -> str:
    """The code fingerprint the copy of the package in ``tree`` computes."""
    code = "from adacli.run.keys import code_fingerprint; print(code_fingerprint())"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree)
    return proc.stdout.strip()


def _compare(tree: Path, recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``adacli compare`` run by the copy of the package in ``tree``."""
    cmd = [sys.executable, "-m", "adacli", "compare", str(recipe), "--out", str(out), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=300, env=env, cwd=tree)


def test_one_changed_line_of_adacli_optim_trains_every_trial_again(tmp_path):
    """A run, then the same run into the same --out: both trials reused, and the gate says so. Then a copy
    of adacli with one changed line of adacli/optim runs into that --out: it trains both again."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    out, base = tmp_path / "run", tmp_path / "base.json"
    first = invoke("compare", str(recipe), "--out", str(out), "--threads", "1", "--save-baseline", str(base))
    assert first.exit_code == 0 and "trials run: 2, reused: 0" in first.output, first.output
    again = invoke("compare", str(recipe), "--out", str(out), "--threads", "1", "--baseline", str(base))
    text = " ".join(again.output.split())
    assert again.exit_code == 0 and "trials run: 0, reused: 2" in text, again.output
    assert "2 of 2 trials were reused from earlier runs in this folder, trained " in text, text
    tree = tmp_path / "src"  # the same code, copied: then one line of it changes
    shutil.copytree(REPO / "adacli", tree / "adacli", ignore=shutil.ignore_patterns("__pycache__"))
    assert _fingerprint(tree) == keys.code_fingerprint()  # a copy of the same code: the same key
    source = tree / "adacli" / "optim" / "adabelief.py"
    source.write_text(source.read_text() + "\n# one changed line\n")
    assert _fingerprint(tree) != keys.code_fingerprint()
    changed = _compare(tree, recipe, out, "--baseline", str(base))
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "trials run: 2, reused: 0" in changed.stdout, changed.stdout
    assert "were reused" not in changed.stdout


def test_a_user_optimizer_module_file_enters_the_key(tmp_path, monkeypatch):
    module = tmp_path / "my_code_key_opt.py"
    module.write_text("import torch\n\nclass Opt(torch.optim.SGD):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = importlib.import_module("my_code_key_opt").Opt
    before = keys.optimizer_fingerprint(cls)
    module.write_text(module.read_text() + "# tuned\n")
    assert before is not None and keys.optimizer_fingerprint(cls) != before
    import torch

    from adacli.optim.adabelief import AdaBelief

    assert keys.optimizer_fingerprint(torch.optim.SGD) is None  # torch's version is in the key
    assert keys.optimizer_fingerprint(AdaBelief) is None  # adacli's code fingerprint covers it
    sys.modules.pop("my_code_key_opt", None)
