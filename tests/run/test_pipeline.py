"""The run pipeline's contracts: exit codes (1 for trials that raised, 130/143 for interrupts), run folders
that never mix or overwrite finished work (--out, --resume, the lock), resume over damaged folders, the
serial executor's one initial model per seed, and the module layout (no import cycles, short functions).

Tiny recipes (test_resnet on 8 px synthetic images, a few steps), one torch thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import helpers
import pytest
from helpers import invoke, one_line

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PIPELINE_MODULES = ("run.plan", "run.loop", "run.save", "run.folder", "run.interrupts", "run.pipeline")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


write_recipe = partial(helpers.write_recipe, name="pl", seeds=1, steps=4)




# --- exit codes ---------------------------------------------------------------------------------------


def test_every_trial_failing_the_same_way_is_exit_1_with_one_line(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    path = write_recipe(tmp_path, ['{name: "compare_user_optim:CrashingSGD"}'], seeds=2)
    out = tmp_path / "run"
    res = invoke("compare", str(path), "--out", str(out))
    assert res.exit_code == 1, res.output
    assert "error: all 2 trials failed: RuntimeError: user optimizer bug" in one_line(res.output)
    assert "Traceback" not in res.output
    data = json.loads((out / "results.json").read_text())  # everything saved before the exit
    assert data["status"] == "complete" and [t["status"] for t in data["trials"]] == ["failed", "failed"]


def test_divergence_is_still_exit_0(tmp_path):
    path = write_recipe(tmp_path, ["{name: sgd, lr: 1.0e+6}"], steps=8)
    res = invoke("compare", str(path), "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["trials"][0]["status"] == "diverged"


def test_ctrl_c_outside_compare_exits_130_through_main(monkeypatch):
    """A real SIGINT while `adacli step-test` runs (sent by the optimizer under test at its first step,
    so it lands mid-command): the console script exits 130."""
    from adacli import cli

    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setattr(sys, "argv", ["adacli", "step-test", "-o", "compare_user_optim:CtrlCSGD"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 130


# --- run folders ----------------------------------------------------------------------------------------


def test_out_into_a_foreign_non_empty_folder_is_exit_2(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own files")
    res = invoke("compare", str(write_recipe(tmp_path, ["{name: adam}"])), "--out", str(out))
    assert res.exit_code == 2, res.output
    assert "--out: not empty and not an adacli run folder" in one_line(res.output)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # untouched, lock released


def test_resume_or_out_on_another_recipe_setup_is_exit_2_naming_the_difference(tmp_path):
    out = tmp_path / "run"
    assert invoke("compare", str(write_recipe(tmp_path, ["{name: adam}"])), "--out", str(out)).exit_code == 0
    before = (out / "results.json").read_text()
    other = write_recipe(tmp_path, ["{name: adam}"], name="other", steps=6)
    for option in (["--resume", str(out)], ["--out", str(out)]):
        res = invoke("compare", str(other), *option)
        assert res.exit_code == 2, res.output
        assert f"{option[0]}: made by another recipe setup (" in one_line(res.output)
        assert "budget.steps: 4 -> 6" in one_line(res.output)
    assert (out / "results.json").read_text() == before  # nothing overwritten


def test_out_into_a_run_of_the_same_setup_continues_it(tmp_path):
    path = write_recipe(tmp_path, ["{name: adam}"])
    out = tmp_path / "run"
    assert invoke("compare", str(path), "--out", str(out)).exit_code == 0
    res = invoke("compare", str(path), "--out", str(out), "--seeds", "2")
    assert res.exit_code == 0, res.output
    assert "trials run: 1, reused: 1" in res.output
    names = sorted(p.name for p in (out / "trials").iterdir())
    assert names == ["000-adam-seed0.json", "001-adam-seed1.json"]


def test_a_folder_locked_by_a_live_run_is_exit_2_and_a_stale_lock_is_taken_over(tmp_path):
    path = write_recipe(tmp_path, ["{name: adam}"])
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / "adacli.lock").write_text(f"{live.pid}\n")
        res = invoke("compare", str(path), "--out", str(out))
        assert res.exit_code == 2, res.output
        assert f"--out: another adacli run (pid {live.pid}) is writing this folder" in one_line(res.output)
    finally:
        live.kill()
        live.wait()
    # the same pid, now dead: a stale lock, taken over with one warning line
    res = invoke("compare", str(path), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert f"warning: took over a stale lock of pid {live.pid}" in one_line(res.output)
    assert not (out / "adacli.lock").exists()  # released at the end
    assert json.loads((out / "results.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("name", ["..", ".", "../../escaped", "/etc/x", "a/../../b", ".hidden", ""])
def test_a_run_name_cannot_lead_outside_the_runs_folder(tmp_path, name):
    """Whatever the recipe's name (the recipe model rejects most of these; the folder must not rely on
    it), the default run folder is a fresh folder two levels under the runs folder."""
    from types import SimpleNamespace

    from adacli.run.folder import default_run_dir

    root = tmp_path / "runs"
    run_dir = default_run_dir(SimpleNamespace(name=name), root)
    assert run_dir.resolve().parent.parent == root.resolve() and not run_dir.exists()
    assert not run_dir.parent.name.startswith(".")


# --- resume over damage ---------------------------------------------------------------------------------


def test_resume_reruns_truncated_failed_and_interrupted_trials_and_reports_damage(tmp_path, monkeypatch):
    """A folder as a crash leaves it: results.json cut short, one trial file cut short, one failed, one
    interrupted, one intact. Resume warns in one line, reruns three trials, reuses one."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    path = write_recipe(tmp_path, ["{name: adam}", "{name: sgd}"], seeds=2)
    out = tmp_path / "run"
    assert invoke("compare", str(path), "--out", str(out)).exit_code == 0
    files = sorted((out / "trials").iterdir())
    intact = json.loads(files[3].read_text())
    files[0].write_text(files[0].read_text()[:200])  # truncated mid-write
    for f, status in ((files[1], "failed"), (files[2], "interrupted")):
        t = json.loads(f.read_text())
        f.write_text(json.dumps({**t, "status": status, "error": "earlier crash"}))
    results = out / "results.json"
    results.write_text(results.read_text()[:300])

    res = invoke("compare", str(path), "--resume", str(out))
    assert res.exit_code == 0, res.output
    text = one_line(res.output)
    assert "warning: 2 damaged file(s) ignored:" in text
    assert "a trial they held runs again unless another file of the folder holds it" in text
    assert "results.json (cut short or not JSON)" in text
    assert "trials/000-adam-seed0.json (cut short or not JSON)" in text
    assert "trials run: 3, reused: 1" in text
    data = json.loads(results.read_text())
    assert data["status"] == "complete" and [t["status"] for t in data["trials"]] == ["ok"] * 4
    assert data["trials"][3]["losses"] == intact["losses"] and data["trials"][3]["extra"]["reused"]
    assert json.loads(files[0].read_text())["status"] == "ok"  # the damaged file replaced by its rerun


def test_resume_keeps_a_different_finished_trial_under_the_same_name(tmp_path):
    """The recipe's adam changes its lr under the same label: the earlier finished trial file stays,
    the new trial gets a ~2 name (finished work is never overwritten)."""
    out = tmp_path / "run"
    assert invoke("compare", str(write_recipe(tmp_path, ["{name: adam}"])), "--out", str(out)).exit_code == 0
    old = (out / "trials" / "000-adam-seed0.json").read_text()
    res = invoke("compare", str(write_recipe(tmp_path, ["{name: adam, lr: 0.01}"])), "--resume", str(out))
    assert res.exit_code == 0, res.output
    assert (out / "trials" / "000-adam-seed0.json").read_text() == old
    new = json.loads((out / "trials" / "000-adam-seed0~2.json").read_text())
    assert new["hparams"]["lr"] == 0.01


# --- --json stays JSON ----------------------------------------------------------------------------------


def test_json_output_stays_pure_with_a_baseline(tmp_path):
    path = write_recipe(tmp_path, ["{name: adam}", "{name: sgd}"])
    base = tmp_path / "baseline.json"
    first = invoke("compare", str(path), "--out", str(tmp_path / "a"), "--save-baseline", str(base), "--json")
    assert first.exit_code == 0, first.output
    json.loads(first.stdout)
    res = invoke("compare", str(path), "--out", str(tmp_path / "b"), "--baseline", str(base), "--json")
    assert res.exit_code in (0, 1), res.output  # a regression verdict is allowed; stdout must parse
    payload = json.loads(res.stdout)
    assert payload["status"] == "complete" and {s["optimizer"] for s in payload["summary"]} == {"adam", "sgd"}


# --- the serial executor --------------------------------------------------------------------------------


def test_serial_builds_each_seeds_initial_model_once(tmp_path, monkeypatch):
    import adacli.train.trial

    real, calls = adacli.train.trial.initial_model, []

    def counting(spec, data, seed):
        calls.append(seed)
        return real(spec, data, seed)

    monkeypatch.setattr(adacli.train.trial, "initial_model", counting)
    from adacli.recipe import load_recipe
    from adacli.run.pipeline import run_recipe

    path = write_recipe(tmp_path, ["{name: adam}", "{name: sgd}", "{name: adamw}"], seeds=2, steps=2)
    # the pipeline alone (no preflight), in this process
    outcome = run_recipe(load_recipe(path), out_dir=tmp_path / "run", executor="serial")
    assert outcome.status == "complete" and len(outcome.trials) == 6
    assert calls == [0, 1]  # six trials, two initial models
    trials = json.loads((tmp_path / "run" / "results.json").read_text())["trials"]
    assert len({t["extra"]["init_fingerprint"] for t in trials if t["seed"] == 0}) == 1
