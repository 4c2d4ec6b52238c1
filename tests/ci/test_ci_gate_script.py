"""ci/gate.sh, the shell of docs/ci.md's gate step, run the way GitHub Actions runs a `run:` step
(`bash --noprofile --norc -eo pipefail`) on tiny real recipes: no regression passes, a regression fails, a
changed setup makes a new baseline, a bad recipe fails and never writes a baseline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ci" / "gate.sh"

RECIPE = """\
name: ci-tiny
model: {{name: test_resnet}}
dataset: {{name: digits, image_size: 8}}
budget: {{steps: {steps}, batch_size: 32, eval_every: 10}}
seeds: 1
device: cpu
optimizers:
  - {{name: adam, lr: 1.0e-2}}
  - {{name: sgd, lr: {sgd_lr}, momentum: 0.9, label: sgd-m}}
"""


def write_recipe(folder: Path, *, steps: int = 20, sgd_lr: str = "0.1", bad: bool = False) -> Path:
    path = folder / "recipe.yaml"
    text = RECIPE.format(steps=steps, sgd_lr=sgd_lr)
    path.write_text(text.replace("seeds: 1", "seedz: 1") if bad else text)
    return path


def run_gate(folder: Path, recipe: Path) -> tuple[int, dict[str, str], str]:
    """Run ci/gate.sh in ``folder`` under bash -e; returns (exit code, GITHUB_OUTPUT pairs, job summary)."""
    out, summary = folder / "github_output", folder / "step_summary.md"
    out.write_text("")
    summary.write_text("")
    env = {
        **os.environ,
        "RECIPE": str(recipe),
        "BASELINE": str(folder / "baseline.json"),
        "RUN_DIR": str(folder / "run"),
        "REPORTS": str(folder / "reports"),
        "ADACLI": f"{sys.executable} -m adacli",
        "ADACLI_ARGS": "--threads 1",
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "160",
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(SCRIPT)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    pairs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return proc.returncode, pairs, summary.read_text() + proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def with_baseline(tmp_path_factory) -> Path:
    """The first run on main: no baseline yet, so the script makes one (exit 0, new_baseline=true)."""
    folder = tmp_path_factory.mktemp("ci-gate")
    rc, pairs, text = run_gate(folder, write_recipe(folder))
    assert rc == 0, text
    assert pairs == {"new_baseline": "true"}
    assert (folder / "baseline.json").is_file() and (folder / "run" / "report.html").is_file()
    assert "### adacli: ci-tiny (complete)" in text  # the Markdown verdict in the job summary
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "ci"
    dest.mkdir()
    shutil.copy(folder / "baseline.json", dest / "baseline.json")
    return dest


def test_no_regression_passes(with_baseline, tmp_path):
    folder = copy_of(with_baseline, tmp_path)
    before = (folder / "baseline.json").read_bytes()
    rc, pairs, text = run_gate(folder, write_recipe(folder))
    assert rc == 0, text
    assert pairs == {"new_baseline": "false"}
    assert "regression gate: no regression" in text
    assert (folder / "baseline.json").read_bytes() == before
    assert 'class="banner pass"' in (folder / "run" / "report.html").read_text()


def test_a_regression_fails_and_keeps_the_baseline(with_baseline, tmp_path):
    folder = copy_of(with_baseline, tmp_path)
    before = (folder / "baseline.json").read_bytes()
    rc, pairs, text = run_gate(folder, write_recipe(folder, sgd_lr="1.0e-6"))  # same label, broken lr
    assert rc == 1, text
    assert pairs == {"new_baseline": "false"}
    assert "### ❌ regression gate" in text and "final test accuracy" in text
    assert (folder / "baseline.json").read_bytes() == before
    assert (folder / "reports" / "gate.xml").is_file()


def test_a_changed_setup_makes_a_new_baseline(with_baseline, tmp_path):
    folder = copy_of(with_baseline, tmp_path)
    before = (folder / "baseline.json").read_bytes()
    rc, pairs, text = run_gate(folder, write_recipe(folder, steps=24))
    assert rc == 0, text
    assert pairs == {"new_baseline": "true"}
    assert "baseline refused" in text and "budget differs" in text
    assert (folder / "baseline.json").read_bytes() != before


@pytest.mark.parametrize("has_baseline", [False, True])
def test_a_bad_recipe_fails_and_never_writes_a_baseline(with_baseline, tmp_path, has_baseline):
    folder = copy_of(with_baseline, tmp_path)
    if not has_baseline:
        (folder / "baseline.json").unlink()
    before = (folder / "baseline.json").read_bytes() if has_baseline else None
    rc, pairs, text = run_gate(folder, write_recipe(folder, bad=True))
    assert rc == 2, text
    assert "seedz" in text and pairs == {}
    after = (folder / "baseline.json").read_bytes() if (folder / "baseline.json").exists() else None
    assert after == before
