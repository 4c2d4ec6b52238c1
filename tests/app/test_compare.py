"""``adacli compare`` end to end (the real Typer app, in-process; one real SIGTERM in a subprocess).

Tiny recipes: test_resnet on synthetic 8 px images, a few steps; seconds each on 2 CPU cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import helpers
import pytest
import torch
from helpers import invoke

from adacli.errors import InputError
from adacli.recipe import Recipe
from adacli.run.plan import build_plan, resolve_configs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPO = Path(__file__).resolve().parents[2]



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


#: a tiny comparison: 2 seeds x 6 steps of test_resnet on synthetic 8 px images
write_recipe = partial(helpers.write_recipe, seeds=2, budget="{steps: 6, batch_size: 32, eval_every: 3}")



def test_compare_end_to_end(tmp_path):
    recipe = write_recipe(
        tmp_path,
        ["{name: adabelief, lr: 1.0e-2}", "{name: sgd, lr: 0.05, momentum: 0.9, label: sgd-m}"],
        extra="schedule: {name: cosine, warmup_steps: 2}\n",
    )
    out = tmp_path / "run"
    res = invoke("compare", str(recipe), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "adabelief" in res.output and "sgd-m" in res.output and "target" in res.output
    assert str(out) in res.output.replace("\n", "")

    data = json.loads((out / "results.json").read_text())
    assert {"schema_version", "recipe", "environment", "trials", "summary", "target"} <= set(data)
    assert data["status"] == "complete"
    assert data["recipe"]["name"] == "tiny" and data["recipe"]["path"] == str(recipe)
    assert data["environment"]["torch"] == torch.__version__ and data["environment"]["device"] == "cpu"
    trials = data["trials"]
    assert [(t["label"], t["seed"]) for t in trials] == [
        ("adabelief", 0),
        ("sgd-m", 0),
        ("adabelief", 1),
        ("sgd-m", 1),
    ]
    for t in trials:
        assert t["status"] == "ok" and len(t["losses"]) == 6 and [e["step"] for e in t["evals"]] == [3, 6]
    ab = trials[0]
    assert ab["optimizer_class"] == "adacli.optim.adabelief.AdaBelief"
    assert ab["hparams"]["lr"] == 1e-2 and ab["hparams"]["eps"] == 1e-16  # defaults recorded
    assert trials[1]["optimizer_class"] == "torch.optim.sgd.SGD" and trials[1]["hparams"]["momentum"] == 0.9
    # fairness: per seed, same initial weights and the same first batch -> the same first loss
    for seed in (0, 1):
        same = [t for t in trials if t["seed"] == seed]
        assert len({t["extra"]["init_fingerprint"] for t in same}) == 1
        assert len({t["losses"][0] for t in same}) == 1
    assert trials[0]["extra"]["init_fingerprint"] != trials[2]["extra"]["init_fingerprint"]

    summary = {s["optimizer"]: s for s in data["summary"]}
    assert list(summary) == ["adabelief", "sgd-m"]
    for s in summary.values():
        for key in (
            "final_test_accuracy",
            "generalization_gap",
            "steps_to_target",
            "seconds_to_target",
            "step_time_ms",
        ):
            assert key in s
        assert s["n_trials"] == 2 and s["final_test_accuracy"]["n"] == 2
        assert 0 <= s["final_test_accuracy"]["mean"] <= 100
    assert data["target"]["value"] is not None

    csv_lines = (out / "summary.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 and csv_lines[1].startswith("adabelief")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "trials").glob("*.json"))) == 4


def test_divergence_is_a_result_json_output_and_default_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(
        tmp_path,
        ["{name: sgd, lr: 1.0e+6}", "{name: adam}"],
        name="blowup",
        seeds=1,
        budget="{steps: 8, batch_size: 32, eval_every: 4}",
    )
    res = invoke("compare", str(recipe), "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)  # stdout is only the JSON
    run_dir = Path(payload["run_dir"])
    assert run_dir.parent == Path("runs") / "blowup" and run_dir.is_dir()
    assert payload["status"] == "complete"
    by = {s["optimizer"]: s for s in payload["summary"]}
    assert by["sgd"]["n_diverged"] == 1 and by["adam"]["n_diverged"] == 0
    trials = json.loads((run_dir / "results.json").read_text())["trials"]
    assert trials[0]["status"] == "diverged" and "step" in trials[0]["error"]
    assert len(trials[0]["losses"]) < 8
    assert trials[1]["status"] == "ok" and len(trials[1]["losses"]) == 8


def test_ctrl_c_keeps_finished_trials_exit_130(tmp_path, monkeypatch):
    """A KeyboardInterrupt in the second trial (raised by a user's optimizer, as Ctrl-C would be):
    exit 130, the first trial is saved, results.json says interrupted."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    recipe = write_recipe(tmp_path, ["{name: adam}", '{name: "compare_user_optim:InterruptingSGD"}'], seeds=1)
    out = tmp_path / "run"
    res = invoke("compare", str(recipe), "--out", str(out), "--jobs", "1")  # in this process: Ctrl-C is ours
    assert res.exit_code == 130, res.output
    assert "interrupted" in res.output
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted"
    assert [(t["label"], t["status"]) for t in data["trials"]] == [("adam", "ok")]
    assert [s["optimizer"] for s in data["summary"]] == ["adam"]
    assert [p.name for p in (out / "trials").iterdir()] == ["000-adam-seed0.json"]


def test_real_sigterm_to_a_serial_run_in_a_subprocess(tmp_path):
    """The real thing: SIGTERM (CI runners, schedulers) to `python -m adacli compare --jobs 1` after the
    first trial file appears: finished trials saved, exit 143. (SIGINT to a run with workers:
    tests/run/test_executors.py; one guard handles both signals.)"""
    sig, code = signal.SIGTERM, 143
    recipe = write_recipe(
        tmp_path,
        ["{name: adam}", "{name: sgd}"],
        seeds=2,
        budget="{seconds: 0.5, batch_size: 32, eval_every: 1000}",
    )
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "adacli", "compare", str(recipe), "--jobs", "1", "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((out / "trials").glob("*.json")) if (out / "trials").exists() else True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished in 60 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted"
    assert 1 <= len(data["trials"]) < 4 and all(t["status"] == "ok" for t in data["trials"])


def test_user_optimizer_crash_fails_its_trial_only(tmp_path, monkeypatch):
    """A trial that raises is recorded (the others go on, everything is saved), and the run exits 1 with
    the error on one line: a failure of the optimizer, not a result."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    recipe = write_recipe(tmp_path, ['{name: "compare_user_optim:CrashingSGD"}', "{name: adam}"], seeds=2)
    out = tmp_path / "run"
    res = invoke("compare", str(recipe), "--out", str(out), "--steps", "4", "--seeds", "1", "--threads", "2")
    assert res.exit_code == 1, res.output
    assert (
        "error: 1 of 2 trials failed: compare_user_optim:CrashingSGD seed 0: RuntimeError: user optimizer bug"
        in " ".join(res.output.split())
    )
    assert "Traceback" not in res.output
    data = json.loads((out / "results.json").read_text())
    assert data["recipe"]["budget"]["steps"] == 4 and data["recipe"]["seeds"] == 1  # overrides applied
    assert data["environment"]["torch_threads"] == 2
    trials = data["trials"]
    assert [t["status"] for t in trials] == ["failed", "ok"]
    assert "user optimizer bug" in trials[0]["error"]
    assert len(trials[1]["losses"]) == 4


@pytest.mark.parametrize(
    ("optimizers", "args", "message"),
    [
        (["{name: adamm}"], [], "adam"),  # typo: did you mean
        (["{name: adam, lrr: 0.1}"], [], "lrr"),  # unknown hyperparameter
        (["{name: adam, lr: -1.0}"], [], "learning rate"),  # rejected by the constructor, before training
        (["{name: adam}"], ["--device", "tpu"], "device"),
        (["{name: adam}"], ["--steps", "0"], "steps"),
    ],
)
def test_bad_input_exits_2_before_training(tmp_path, optimizers, args, message):
    recipe = write_recipe(tmp_path, optimizers, seeds=1)
    out = tmp_path / "run"
    res = invoke("compare", str(recipe), "--out", str(out), *args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and message in res.output
    assert not (out / "trials").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_exits_2(tmp_path):
    res = invoke("compare", str(write_recipe(tmp_path, ["{name: adam}"])), "--device", "cuda")
    assert res.exit_code == 2 and "cuda" in res.output.lower()


def test_overrides_and_plan(tmp_path):
    recipe = Recipe.model_validate(
        {
            "name": "x",
            "model": {"name": "test_resnet"},
            "dataset": {"name": "digits"},
            "budget": {"epochs": 2},
            "seeds": [3, 5],
            "optimizers": [{"name": "adam"}, {"name": "adam", "lr": 0.01}],
        }
    )
    r = recipe.with_overrides(device="cpu", seeds=3, steps=11)
    assert (r.device, r.seed_list, r.budget.steps, r.budget.epochs) == ("cpu", [0, 1, 2], 11, None)
    assert recipe.with_overrides() is recipe
    built = build_plan(recipe, "cpu")
    plan = built.first_tasks()
    assert [(p.label, p.seed) for p in plan] == [
        ("adam", 3),
        ("adam(lr=0.01)", 3),
        ("adam", 5),
        ("adam(lr=0.01)", 5),
    ]  # seed-major: one initial model per seed
    resolved = resolve_configs(built.sweeps)  # every configuration resolved, defaults filled in
    assert resolved[(1, 0)].hparams["lr"] == 0.01 and not math.isnan(resolved[(0, 0)].hparams["lr"])
    with pytest.raises(InputError):
        recipe.with_overrides(seeds=0)
