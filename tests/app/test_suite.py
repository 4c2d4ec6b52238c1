"""Suites: loading errors (exit 2, one line), the cross-workload figures on hand-computed cases, and a
tiny real suite end to end (serial, --jobs 2 and --resume agree; the per-workload gate)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import torch

# the real local Ray cluster of the executor tests (started with `ray start --head`, 127.0.0.1)
from helpers import invoke

from adacli.analysis import suite_stats

INF = math.inf
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


# --- aggregation on hand-computed cases ------------------------------------------------------------------

# ratios to the best: w1 a 1, b 2, c never; w2 a 2, b 1, c 4; w3 a 1, b 5 (> 4: never), c 1
TIMES = {
    "w1": {"a": 10.0, "b": 20.0, "c": INF},
    "w2": {"a": 30.0, "b": 15.0, "c": 60.0},
    "w3": {"a": 10.0, "b": 50.0, "c": 10.0},
}


def test_time_to_target_is_the_median_with_misses_as_never():
    assert suite_stats.time_to_target([10, 20]) == 15.0
    assert suite_stats.time_to_target([10, None]) == INF  # the median of (10, inf)
    assert suite_stats.time_to_target([10, None, 30]) == 30.0  # one miss in three still scores
    assert suite_stats.time_to_target([]) == INF


def test_performance_profiles_by_hand():
    curves = suite_stats.performance_profiles(TIMES, taus=[1.0, 1.99, 2.0, 4.0])
    assert curves["a"] == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    assert curves["b"] == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])  # ratio 5 never counts
    assert curves["c"] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3])  # ratio exactly 4 counts at tau 4
    assert suite_stats.TAUS[0] == 1.0 and suite_stats.TAUS[-1] == 4.0


def test_scores_are_the_exact_normalized_area():
    # a workload with ratio r <= 4 adds (4 - r) / 3 / n_workloads
    s = suite_stats.scores(TIMES)
    assert s["a"] == pytest.approx((3 + 2 + 3) / 9)
    assert s["b"] == pytest.approx((2 + 3 + 0) / 9)
    assert s["c"] == pytest.approx((0 + 0 + 3) / 9)
    # the sampled curves integrate to about the same area
    curves = suite_stats.performance_profiles(TIMES)
    taus = suite_stats.TAUS
    area = sum(curves["b"][i] * (taus[i + 1] - taus[i]) for i in range(len(taus) - 1)) / 3
    assert area == pytest.approx(s["b"], abs=0.02)
    # a workload nobody finished counts in the denominator
    s4 = suite_stats.scores({**TIMES, "w4": {"a": INF, "b": INF, "c": INF}})
    assert s4["a"] == pytest.approx(8 / 12)


def test_speedups_without_a_budget_leave_a_missed_workload_out():
    sp = suite_stats.speedups(TIMES, "a")
    assert sp["a"] == (1.0, 3)
    assert sp["b"][0] == pytest.approx((0.5 * 2.0 * 0.2) ** (1 / 3)) and sp["b"][1] == 3
    assert sp["c"][0] == pytest.approx(math.sqrt(0.5 * 1.0)) and sp["c"][1] == 2  # w1: c never


def test_mean_ranks_share_ties():
    r = suite_stats.mean_ranks({**TIMES, "w4": {"a": INF, "b": INF, "c": INF}})
    # w1: a 1, b 2, c 3; w2: b 1, a 2, c 3; w3: a = c = 1.5, b 3; w4: all never, all 2
    assert r == pytest.approx(
        {"a": (1 + 2 + 1.5 + 2) / 4, "b": (2 + 1 + 3 + 2) / 4, "c": (3 + 3 + 1.5 + 2) / 4}
    )


def test_win_tie_loss_from_the_four_outcomes_within_the_workload():
    per_seed = {
        # a is consistently ~10 steps faster than b; c is a under another label: at 10-14 steps one step
        # is 7-10 %, so "within 5 %" cannot be shown (undecided), though nothing differs
        "w1": {"a": [10, 11, 12, 13, 14], "b": [20, 22, 21, 23, 24], "c": [10, 11, 12, 13, 14]},
        # a vs b: differences -10, 10, -10, 10, 0 (mean 0): undecided; c clearly slower than both
        "w2": {"a": [10, 20, 10, 20, 15], "b": [20, 10, 20, 10, 15], "c": [40, 41, 43, 40, 42]},
    }
    wins = suite_stats.win_tie_loss(per_seed)
    assert wins["a"]["b"] == {"win": 1, "tie": 0, "loss": 0, "undecided": 1, "untested": 0}
    assert wins["b"]["a"] == {"win": 0, "tie": 0, "loss": 1, "undecided": 1, "untested": 0}
    assert wins["c"]["b"] == {"win": 1, "tie": 0, "loss": 1, "undecided": 0, "untested": 0}
    assert suite_stats.workload_verdicts(per_seed["w1"])[("a", "c")] == "undecided"
    # the same optimizer at 100 steps: one step is 1 %, and equal times are a tie
    slow = {"a": [100, 101, 99, 100, 102], "c": [100, 101, 99, 100, 102]}
    assert suite_stats.workload_verdicts(slow)[("a", "c")] == "tie"


# --- loading errors: exit 2, one line naming file, line and field ---------------------------------------

GOOD = """\
name: tiny-suite
seeds: 2
optimizers:
  - {name: adam, lr: 1.0e-3}
  - {name: sgd, lr: 0.05, momentum: 0.9, label: sgd-m}
workloads:
  - {recipe: r.yaml, budget: {steps: 8, batch_size: 32, eval_every: 4}}
  - name: vit
    model: {name: test_vit}
    dataset: {name: synthetic, image_size: 16, num_classes: 4, channels: 1, train_size: 128, test_size: 64}
    budget: {steps: 8, batch_size: 32, eval_every: 4}
    device: cpu
"""

RECIPE = """\
name: digits
model: {name: test_resnet}
dataset: {name: digits, image_size: 8}
budget: {steps: 100, batch_size: 32}
device: cpu
seeds: 5
optimizers: [adabelief]
"""


def write_suite(folder: Path, text: str = GOOD, recipe: str = RECIPE) -> Path:
    (folder / "r.yaml").write_text(recipe)
    path = folder / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("workloads:", "workload:"),
            "s.yaml:6: workload: unknown key 'workload' (did you mean 'workloads'?)",
        ),
        (
            ("seeds: 2", "seeds: 2\nmeasure: secs"),
            "s.yaml:3: measure: 'secs' is not allowed (did you mean 'seconds'?); allowed: steps, seconds",
        ),
        (("seeds: 2", "seeds: 2\nreference: adma"), "reference: reference 'adma' is not an optimizer label"),
        (
            ("    model: {name", "    modle: {name"),
            "s.yaml:9: workloads[1].modle: unknown key 'modle' (did you mean 'model'?)",
        ),
        (
            ("    device: cpu", "    device: cpu\n    optimizers: [adam]"),
            "workloads[1].optimizers: a workload has no",
        ),
        (("recipe: r.yaml", "recipe: nope.yaml"), "nope.yaml: recipe file not found"),
        (("  - name: vit", "  - name: digits"), "two workloads are named 'digits'"),
        (("{name: adam, lr", "{name: adma, lr"), "unknown optimizer 'adma'"),
        (("budget: {steps: 8, batch", "budget: {stepz: 8, batch"), "s.yaml:7: workloads[0].budget.stepz"),
        # the suite's own seeds are blamed on the suite file (not on a workload's recipe)
        (("seeds: 2", "seeds: [3, 3]"), "s.yaml:2: seeds: seeds must be distinct"),
        (("seeds: 2", "seeds: [1, 4294967297]"), "s.yaml:2: seeds: seeds is a count"),
        # a suite listed as its own workload is not "unknown key 'workloads'"
        (("recipe: r.yaml", "recipe: s.yaml"), "workloads[0].recipe: 's.yaml' is this suite file itself"),
    ],
)
def test_suite_errors_exit_2_with_one_line(tmp_path, edit, expected):
    path = write_suite(tmp_path, GOOD.replace(*edit, 1))
    r = invoke("suite", str(path), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert expected in " ".join(r.output.split()), r.output
    assert not (tmp_path / "out").exists()  # nothing ran


def test_error_in_a_workloads_recipe_file_names_that_file(tmp_path):
    path = write_suite(tmp_path, recipe=RECIPE.replace("image_size: 8", "image_sise: 8"))
    r = invoke("suite", str(path))
    assert r.exit_code == 2 and "r.yaml:3: dataset.image_sise: unknown key" in r.output, r.output


# --- a tiny real suite, end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suite")
    threads = torch.get_num_threads()
    path = write_suite(folder)
    r = invoke("suite", str(path), "--out", str(folder / "serial"), "--jobs", "1")
    torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    return {"folder": folder, "suite": path, "dir": folder / "serial", "output": r.output}


def suite_figures(suite_dir: Path) -> dict:
    data = json.loads((suite_dir / "results.json").read_text())
    keep = ("scores", "ranks", "speedups", "speedup_workloads", "wins", "profiles", "labels", "reference")
    out = {k: data[k] for k in keep}
    out["per_seed"] = {w["name"]: w["per_seed"] for w in data["workloads"]}
    return out


def test_suite_runs_end_to_end(serial):
    d = serial["dir"]
    data = json.loads((d / "results.json").read_text())
    assert data["kind"] == "suite" and data["name"] == "tiny-suite" and data["status"] == "complete"
    assert [w["name"] for w in data["workloads"]] == ["digits", "vit"]
    assert all(
        w["status"] == "complete" and (d / w["run_dir"] / "results.json").is_file() for w in data["workloads"]
    )
    assert data["workloads"][0]["recipe"].endswith("r.yaml") and data["workloads"][1]["recipe"] is None
    assert data["reference"] == "adam" and data["labels"] == ["adam", "sgd-m"]
    assert data["profiles"]["measure"] == "steps" and len(data["profiles"]["curves"]["adam"]) == len(
        data["profiles"]["taus"]
    )
    assert all(0.0 <= s <= 1.0 for s in data["scores"].values()) and max(data["scores"].values()) > 0
    assert data["wins"]["adam"]["sgd-m"].keys() == {"win", "tie", "loss", "undecided", "untested"}
    assert sum(data["wins"]["adam"]["sgd-m"].values()) == 2
    # the suite's seeds (2) replace the recipe file's (5); its optimizers are the suite's
    for w in ("digits", "vit"):
        trials = json.loads((d / w / "results.json").read_text())["trials"]
        assert len(trials) == 4 and all(t["status"] == "ok" for t in trials), w
    run = json.loads((d / "digits" / "results.json").read_text())
    assert run["recipe"]["seeds"] == 2 and {t["label"] for t in run["trials"]} == {"adam", "sgd-m"}
    assert (d / "profiles.png").stat().st_size > 10_000
    out = " ".join(serial["output"].split())
    assert "speed-up vs adam" in out and "W/T/L/U vs adam" in out and "workload 2/2: vit" in out


def test_the_default_runs_every_workload_on_one_pool_with_the_serial_numbers(serial, tmp_path):
    """Without --jobs: one-thread local workers (one per core), started once for the whole suite; the
    figures equal the serial run's."""
    from adacli.run.executors import cpu_cores

    out = tmp_path / "default"
    r = invoke("suite", str(serial["suite"]), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert suite_figures(out) == suite_figures(serial["dir"])
    runs = [json.loads((out / w / "results.json").read_text()) for w in ("digits", "vit")]
    executors = [run["environment"]["executor"] for run in runs]
    assert all(e["shared"] and e["default"] for e in executors), executors
    if cpu_cores() > 1:
        assert all(e["kind"] == "local" and e["threads_per_worker"] == 1 for e in executors), executors
        pids = [{t["extra"]["worker"]["pid"] for t in run["trials"]} for run in runs]
        assert len(pids[0]) == 2 and pids[0] == pids[1]  # the same two workers served both workloads


def test_jobs_2_and_resume_give_the_same_suite_results(serial, tmp_path):
    r = invoke("suite", str(serial["suite"]), "--out", str(tmp_path / "jobs"), "--jobs", "2")
    assert r.exit_code == 0, r.output
    assert suite_figures(tmp_path / "jobs") == suite_figures(serial["dir"])
    # a suite cut short: the second workload never started, the first lost one trial
    partial = tmp_path / "partial"
    shutil.copytree(serial["dir"], partial)
    shutil.rmtree(partial / "vit")
    (partial / "digits" / "results.json").unlink()
    next((partial / "digits" / "trials").glob("*.json")).unlink()
    r = invoke("suite", str(serial["suite"]), "--resume", str(partial), "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "trials run: 1, reused: 3" in r.output and "trials run: 4, reused: 0" in r.output
    assert suite_figures(partial) == suite_figures(serial["dir"])


def test_suite_gate_per_workload(serial, tmp_path):
    base = tmp_path / "base.json"
    r = invoke("suite", str(serial["suite"]), "--resume", str(serial["dir"]), "--save-baseline", str(base))
    assert r.exit_code == 0 and "baseline saved" in r.output, r.output
    junit = tmp_path / "gate.xml"
    r = invoke("suite", str(serial["suite"]), "--out", str(tmp_path / "b"), "--baseline", str(base),
               "--junit-xml", str(junit), "--threads", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "PASS digits" in r.output and "PASS vit" in r.output
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["adacli.gate.digits", "adacli.gate.vit"]
    # a baseline where the vit workload reached 100 % on every seed: today's run regresses there only
    data = json.loads(base.read_text())
    for o in data["workloads"]["vit"]["optimizers"]:
        for s in o["trials"]:
            s["final_test_accuracy"] = 100.0
    base.write_text(json.dumps(data))
    r = invoke("suite", str(serial["suite"]), "--resume", str(tmp_path / "b"), "--baseline", str(base))
    assert r.exit_code == 1, r.output
    assert "PASS digits" in r.output and "FAIL vit" in r.output


def test_a_trial_that_raises_fails_the_suite(tmp_path):
    # a user optimizer that raises at its third step (the preflight builds users' optimizers but does not
    # step them): every crash trial fails, the suite saves everything and exits 1
    crash = '  - {name: "compare_user_optim:CrashingSGD", label: crash}'
    sgd = "  - {name: sgd, lr: 0.05, momentum: 0.9, label: sgd-m}"
    suite = GOOD.replace("seeds: 2", "seeds: 1").replace(sgd, crash)
    r = invoke("suite", str(write_suite(tmp_path, suite)), "--out", str(tmp_path / "out"), "--steps", "3")
    assert r.exit_code == 1, r.output
    assert "2 trial(s) failed (workload digits, workload vit)" in " ".join(r.output.split())
    assert json.loads((tmp_path / "out" / "results.json").read_text())["status"] == "complete"


def test_a_workload_that_cannot_train_is_exit_2_before_any_training(tmp_path):
    # test_vit's 16-pixel patches cannot cut 8-pixel images: the preflight says so, nothing runs
    path = write_suite(tmp_path, GOOD.replace("image_size: 16", "image_size: 8"))
    r = invoke("suite", str(path), "--out", str(tmp_path / "out"))
    assert r.exit_code == 2, r.output
    message = " ".join(r.output.split())
    assert "workloads[1].dataset.image_size: test_vit needs image sizes divisible by 16" in message
    assert not (tmp_path / "out").exists()


def test_suite_baseline_from_another_setup_is_refused_before_training(serial, tmp_path):
    base = tmp_path / "base.json"
    r = invoke("suite", str(serial["suite"]), "--resume", str(serial["dir"]), "--save-baseline", str(base))
    assert r.exit_code == 0, r.output
    r = invoke(
        "suite", str(serial["suite"]), "--steps", "5", "--baseline", str(base), "--out", str(tmp_path / "x")
    )
    assert r.exit_code == 2 and "workload 'digits': the baseline was made with a different setup" in r.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_ray_gives_the_same_suite_results(serial, request, tmp_path):
    """One real Ray cluster (bound to 127.0.0.1, stopped by the fixture) runs every workload of the suite."""
    cluster = request.getfixturevalue("ray_cluster")
    out = tmp_path / "ray"
    default_temp = Path(tempfile.gettempdir()) / "ray"  # where an instance Ray starts on its own lives
    sessions = set(default_temp.glob("session_2*"))
    r = invoke("suite", str(serial["suite"]), "--out", str(out), "--executor", "ray",
               "--ray-address", cluster, "--cpus-per-trial", "1")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert suite_figures(out) == suite_figures(serial["dir"])
    executors = [
        json.loads((out / w / "results.json").read_text())["environment"]["executor"]
        for w in ("digits", "vit")
    ]
    assert all(e["kind"] == "ray" and e["shared"] for e in executors)
    assert executors[0]["job_id"] == executors[1]["job_id"]  # one connection for the whole suite
    # the trials ran on the cluster: no instance was started behind its back (a Ray call before
    # ray.init once made Ray start one of its own)
    assert set(default_temp.glob("session_2*")) == sessions


def test_ctrl_c_saves_the_suite_and_resume_completes_it(serial, tmp_path):
    """A real SIGINT once the second workload has a finished trial: exit 130, the first workload complete
    in the suite's results.json; --resume runs only what is missing. (The second workload trains for a
    second per trial, so the signal surely lands while it trains.)"""
    vit_budget = "budget: {steps: 8, batch_size: 32, eval_every: 4}\n    device: cpu"
    text = GOOD.replace(vit_budget, "budget: {seconds: 1.0, batch_size: 32, eval_every: 4}\n    device: cpu")
    assert text != GOOD
    path = write_suite(tmp_path, text)
    out = tmp_path / "cut"
    sent = threading.Event()

    def ctrl_c_in_second_workload() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list((out / "vit" / "trials").glob("*.json")):
                os.kill(os.getpid(), signal.SIGINT)
                sent.set()
                return
            time.sleep(0.01)

    # as in a terminal: a test process started in the background inherits SIGINT ignored
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=ctrl_c_in_second_workload, daemon=True)
    watcher.start()
    try:
        r = invoke("suite", str(path), "--out", str(out), "--threads", "1")
        watcher.join(5)
    finally:
        signal.signal(signal.SIGINT, saved)
    assert sent.is_set() and r.exit_code == 130, r.output
    assert f"--resume {out}" in " ".join(r.output.split())
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted"
    assert [w["status"] for w in data["workloads"]] == ["complete", "interrupted"]
    done = len(list((out / "vit" / "trials").glob("*.json")))
    assert 1 <= done < 4
    r = invoke("suite", str(path), "--resume", str(out), "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "trials run: 0, reused: 4" in r.output  # the first workload is not trained again
    assert f"trials run: {4 - done}, reused: {done}" in r.output
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "complete" and data["n_workloads"] == 2
    assert data["workloads"][0]["per_seed"] == suite_figures(serial["dir"])["per_seed"]["digits"]


def test_shipped_suite_and_paper_recipes_load():
    """recipes/suite_cpu.yaml: >= 4 offline workloads of different timm families; the paper recipes name
    all nine optimizers of the AdaBelief paper."""
    from adacli.optim.registry import resolve_optimizer
    from adacli.recipe import assign_labels, load_recipe
    from adacli.recipe.suite import load_suite
    from adacli.run.preflight import check_suite

    suite = load_suite(RECIPES / "suite_cpu.yaml")
    check_suite(suite)  # data offline, models and optimizers resolve
    assert len(suite.workloads) >= 4 and len({w.recipe.model.name for w in suite.workloads}) >= 4
    assert {w.recipe.dataset.name for w in suite.workloads} <= {"digits", "synthetic"}
    paper = ["sgd", "adam", "adamw", "radam", "adabound", "yogi", "msvag", "fromage", "adabelief"]
    for name in ("paper_cifar10.yaml", "paper_digits.yaml"):
        recipe = load_recipe(RECIPES / name)
        assert assign_labels(recipe.optimizers) == paper
        for spec in recipe.optimizers:
            resolve_optimizer(spec.name, spec.hparams)
        assert recipe.schedule is not None and recipe.schedule.name == "step"


def test_resume_refuses_a_run_folder_that_is_not_a_suite(serial):
    r = invoke("suite", str(serial["suite"]), "--resume", str(serial["dir"] / "digits"))
    assert r.exit_code == 2 and 'not a suite folder (its results.json has no "kind": "suite")' in r.output


def test_report_re_renders_a_suite_folder(serial):
    r = invoke("report", str(serial["dir"]), "--no-plot")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "speed-up vs adam" in out and "digits:" in out and "(complete)" in out
    r = invoke("report", str(serial["dir"]), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["kind"] == "suite"


def test_a_recipe_given_as_a_suite_says_so(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE)
    r = invoke("suite", str(path))
    assert r.exit_code == 2
    message = " ".join(r.output.split())
    assert "a recipe, not a suite (no 'workloads:'): run it with `adacli compare" in message


def test_a_suite_baseline_that_is_another_file_never_suggests_overwriting_it(tmp_path):
    from adacli.ci.baselines import load_suite_baseline
    from adacli.errors import InputError

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"schema_version": 1, "trials": []}))
    with pytest.raises(InputError) as info:
        load_suite_baseline(results)
    message = str(info.value)
    assert "a run's results.json, not a suite baseline" in message
    assert "--save-baseline .adacli/baseline.json" in message and f"--save-baseline {results}" not in message
