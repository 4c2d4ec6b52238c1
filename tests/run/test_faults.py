"""Faults of the disk and of the run folder, produced for real (no mock of the store):

* a disk that refuses writes: a file-size limit (``RLIMIT_FSIZE``, what a full disk or a quota does to a
  write: the OS refuses it) on a real ``python -m adacli compare``: before training exit 2, after training
  exit 1 with the finished trials intact and no partial file; a resume afterwards completes;
* a damaged ``results.json``: rebuilt from the intact trial files by ``adacli report`` and ``--resume``;
  a folder whose trial files belong to another setup is refused whatever its results.json says.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import invoke, one_line, write_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def compare_with_file_limit(recipe: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    """``adacli compare`` in a process whose files may not grow beyond ``limit`` bytes (writes past it fail
    with EFBIG, as writes to a full disk fail with ENOSPC: Python ignores SIGXFSZ, so it is an OSError)."""

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-m", "adacli", "compare", str(recipe), "--out", str(out), "--threads", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limited, timeout=300)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_recipe(tmp_path_factory.mktemp("faults"), ["adam", "sgd"], name="faults", seeds=2, steps=4)


def test_a_disk_that_refuses_the_first_file_is_exit_2_before_training(recipe, tmp_path):
    res = compare_with_file_limit(recipe, tmp_path / "run", 200)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "results.json: cannot write: File too large" in lines[-1]
    assert "Traceback" not in res.stderr and "done adam" not in res.stdout  # nothing trained
    assert not (tmp_path / "run").exists()  # the folder it created and never wrote is gone


def test_a_disk_that_refuses_the_results_is_exit_1_with_the_trials_kept_and_resume_completes(
    recipe, tmp_path
):
    out = tmp_path / "run"
    res = compare_with_file_limit(recipe, out, 12_000)  # a trial file fits, the final results.json does not
    assert res.returncode == 1, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert f"{out}/results.json: cannot write: File too large" in last and f"--resume {out}" in last
    assert "Traceback" not in res.stderr
    trials = sorted((out / "trials").iterdir())
    assert len(trials) == 4 and all(json.loads(p.read_text())["status"] == "ok" for p in trials)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no partial file left behind
    assert json.loads((out / "results.json").read_text())["status"] == "running"  # the last good file
    res = invoke("compare", str(recipe), "--resume", str(out))
    assert res.exit_code == 0, res.output
    assert "trials run: 0, reused: 4" in res.output
    assert json.loads((out / "results.json").read_text())["status"] == "complete"


@pytest.fixture
def finished_run(recipe, tmp_path) -> Path:
    out = tmp_path / "run"
    res = invoke("compare", str(recipe), "--out", str(out))
    assert res.exit_code == 0, res.output
    return out


def test_report_rebuilds_a_damaged_results_json_from_the_trial_files(finished_run):
    (finished_run / "results.json").write_text('{"schema_version": 1, "trials": [')  # cut short
    res = invoke("report", str(finished_run), "--no-plot", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "results.json is damaged" in one_line(res.output) and "rebuilt from 4 trial files" in one_line(
        res.output
    )
    data = json.loads((finished_run / "results.json").read_text())
    assert len(data["trials"]) == 4 and [s["optimizer"] for s in data["summary"]] == ["adam", "sgd"]
    assert data["recipe"]["budget"]["steps"] == 4  # the setup the trial files name


def test_resume_rebuilds_a_damaged_results_json_and_refuses_another_setup_whatever_it_says(
    finished_run, recipe, tmp_path
):
    other = write_recipe(tmp_path, ["adam", "sgd"], name="faults", seeds=2, steps=5)
    (finished_run / "results.json").write_text("{not json")
    res = invoke("compare", str(other), "--resume", str(finished_run))
    assert res.exit_code == 2, res.output
    message = one_line(res.output)
    assert "made by another recipe setup (" in message and "budget.steps: 4 -> 5" in message
    assert "trials/000-adam-seed0.json)" in message  # said by the trial files: results.json is damaged
    (finished_run / "results.json").unlink()  # gone altogether: the trial files still say which setup
    res = invoke("compare", str(other), "--out", str(finished_run))
    assert res.exit_code == 2 and "budget.steps: 4 -> 5" in one_line(res.output), res.output
    res = invoke("compare", str(recipe), "--resume", str(finished_run))
    assert res.exit_code == 0, res.output
    assert "trials run: 0, reused: 4" in res.output
    assert json.loads((finished_run / "results.json").read_text())["status"] == "complete"


def test_trial_files_without_a_setup_and_no_results_json_are_refused(finished_run, recipe):
    """Trial files of an older adacli say nothing about their setup: without a readable results.json
    nothing can tell whether they belong to this recipe, so they are not mixed with new ones."""
    for p in (finished_run / "trials").iterdir():
        data = json.loads(p.read_text())
        del data["extra"]["setup"]
        p.write_text(json.dumps(data))
    (finished_run / "results.json").write_text("[]")
    res = invoke("compare", str(recipe), "--resume", str(finished_run))
    assert res.exit_code == 2, res.output
    assert "4 trial file(s) that do not say which setup made them" in one_line(res.output)


def test_a_trial_file_of_another_setup_copied_into_a_run_is_refused(finished_run, recipe):
    """results.json says the setup matches, but one trial file says otherwise: refused (trials would mix)."""
    stray = json.loads((finished_run / "trials" / "000-adam-seed0.json").read_text())
    stray["extra"]["setup"]["budget"]["steps"] = 40
    (finished_run / "trials" / "009-adam-seed9.json").write_text(json.dumps(stray))
    res = invoke("compare", str(recipe), "--resume", str(finished_run))
    assert res.exit_code == 2, res.output
    assert "budget.steps: 40 -> 4" in one_line(res.output) and "trials/009-adam-seed9.json" in one_line(
        res.output
    )
