"""The regression gate: judging logic on hand-made records (fast), baseline files, and a few end-to-end
CLI runs on a tiny recipe (a real regression exits 1, a re-run passes, another setup exits 2)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from rich.console import Console

from adacli.ci.baselines import (
    Baseline,
    OptimizerRecord,
    SeedRecord,
    check_setup,
    load_baseline,
    save_baseline,
    setup_hashes,
    setup_slices,
)
from adacli.ci.gate import GateResult as _GateResult
from adacli.ci.gate import Tolerances, hparam_changes, judge, noise_sigma
from adacli.errors import InputError
from adacli.report.gate import gate_junit, gate_table

# --- hand-made records ------------------------------------------------------------------------------


def rec(
    accs,
    *,
    label="adam",
    gaps=None,
    steps=None,
    statuses=None,
    step_ms=None,
    hparams=None,
    cls="torch.optim.adam.Adam",
    steps_done=100,
):
    n = len(accs)
    gaps = gaps or [2.0] * n
    steps = steps or [50] * n
    statuses = statuses or ["ok"] * n
    step_ms = step_ms or [10.0] * n
    trials = [
        SeedRecord(
            seed=i,
            status=statuses[i],
            steps_done=steps_done,
            final_test_accuracy=accs[i],
            generalization_gap=gaps[i],
            steps_to_target=steps[i],
            step_time_ms=step_ms[i],
        )
        for i in range(n)
    ]
    return OptimizerRecord(label, cls, dict(hparams or {"lr": 0.001}), trials)


def by_check(checks, label="adam"):
    return {c.check: c for c in checks if c.optimizer == label}


def failed_checks(checks):
    return sorted((c.optimizer, c.check) for c in checks if c.failed)


TOL = Tolerances()  # defaults of GateSpec: drop 1.0 pt, k=2, gap +2 pts, steps +25 %, no step time


def test_identical_records_pass_every_check():
    base = [rec([90.0, 91.0, 89.5]), rec([80.0, 81.0, 82.0], label="sgd")]
    checks = judge(base, base, TOL)
    assert failed_checks(checks) == []
    names = set(by_check(checks))
    assert {"trials finished", "final test accuracy", "generalization gap", "steps to target"} <= names
    assert by_check(checks)["step time"].verdict == "skip"  # opt-in only


def test_noise_within_the_seed_spread_passes():
    # Baseline spread ~2.5 points; the current mean is 1.8 points lower: more than the 1-point floor but
    # well within 2 sigma, so it is noise, not a regression.
    base = [rec([90.0, 85.0, 88.0])]
    cur = [rec([87.5, 86.0, 84.0])]
    acc = by_check(judge(base, cur, TOL))["final test accuracy"]
    assert acc.verdict == "pass"
    assert acc.values["worse_by"] > TOL.accuracy_drop
    assert acc.values["allowed"] > acc.values["worse_by"]
    assert "σ" in acc.allowed


def test_real_accuracy_drop_fails():
    base = [rec([90.0, 85.0, 88.0])]
    cur = [rec([70.0, 71.0, 69.0])]
    acc = by_check(judge(base, cur, TOL))["final test accuracy"]
    assert acc.verdict == "fail"
    assert "dropped" in acc.detail


def test_single_seed_uses_the_tolerance_floor_only():
    base, cur = [rec([90.0])], [rec([88.5])]
    acc = by_check(judge(base, cur, TOL))["final test accuracy"]
    assert acc.values["sigma"] == 0.0 and acc.values["allowed"] == TOL.accuracy_drop
    assert acc.verdict == "fail"
    assert by_check(judge(base, [rec([89.2])], TOL))["final test accuracy"].verdict == "pass"


def test_improvement_never_fails():
    acc = by_check(judge([rec([80.0, 81.0])], [rec([95.0, 96.0])], TOL))["final test accuracy"]
    assert acc.verdict == "pass"


def test_a_wider_current_spread_cannot_excuse_a_collapsed_seed():
    # One seed collapses: the current std is huge. Pooling it uncapped would allow a ~65-point drop.
    base = [rec([90.0, 90.5, 89.5])]
    cur = [rec([90.0, 90.0, 60.0])]
    acc = by_check(judge(base, cur, TOL))["final test accuracy"]
    assert acc.verdict == "fail"
    assert acc.values["sigma"] < 1.0
    assert "seed spread" in acc.detail


def test_noise_sigma_pools_and_caps():
    assert noise_sigma(1.0, 3, 1.0, 3) == pytest.approx(1.0)
    assert noise_sigma(1.0, 3, 0.0, 3) == pytest.approx(0.5**0.5)
    assert noise_sigma(1.0, 3, 100.0, 3) == pytest.approx(((1 + 4) / 2) ** 0.5)  # capped at 2x
    assert noise_sigma(1.0, 1, 5.0, 3) == 0.0  # no baseline spread with one seed
    assert noise_sigma(1.0, 3, 5.0, 1) == 1.0


def test_sigma_k_and_tolerance_overrides_change_the_verdict():
    base, cur = [rec([90.0, 85.0, 88.0])], [rec([87.5, 86.0, 84.0])]
    strict = Tolerances.from_spec(None, sigma_k=0.0, accuracy_drop=0.5)
    assert by_check(judge(base, cur, strict))["final test accuracy"].verdict == "fail"
    loose = Tolerances.from_spec({"accuracy_drop": 30.0}, sigma_k=None)
    assert loose.accuracy_drop == 30.0 and loose.sigma_k == 2.0
    with pytest.raises(InputError, match="--accuracy-drop"):
        Tolerances.from_spec(None, accuracy_drop=-1.0)
    with pytest.raises(InputError, match=r"gate\.acuracy_drop") as info:
        Tolerances.from_spec({"acuracy_drop": 1.0})
    assert "accuracy_drop" in str(info.value)


def test_newly_diverged_trial_fails():
    base = [rec([90.0, 91.0, 89.0])]
    cur = [rec([90.0, 91.0, 10.0], statuses=["ok", "ok", "diverged"])]
    checks = by_check(judge(base, cur, TOL))
    assert checks["trials finished"].verdict == "fail"
    assert "seed 2 diverged" in checks["trials finished"].detail
    # ...while the accuracy means rest on the finished seeds only (no double count of the diverged one).
    assert checks["final test accuracy"].verdict == "pass"
    # A trial that already diverged in the baseline is not new.
    base_div = [rec([90.0, 91.0, 10.0], statuses=["ok", "ok", "diverged"])]
    assert by_check(judge(base_div, cur, TOL))["trials finished"].verdict == "pass"


def test_missing_seed_fails():
    checks = by_check(judge([rec([90.0, 91.0])], [rec([90.0])], TOL))
    assert checks["trials finished"].verdict == "fail"
    assert "seed 1 missing" in checks["trials finished"].detail


def test_missing_optimizer_fails_and_new_one_is_reported_only():
    base = [rec([90.0]), rec([80.0], label="sgd")]
    cur = [rec([90.0]), rec([85.0], label="lion")]
    checks = judge(base, cur, TOL)
    assert failed_checks(checks) == [("sgd", "present")]
    new = by_check(checks, "lion")["new optimizer"]
    assert new.verdict == "info"


def test_changed_hyperparameters_are_reported_and_still_judged():
    base = [rec([90.0, 90.5, 89.5], hparams={"lr": 0.001, "betas": [0.9, 0.999]})]
    cur = [rec([40.0, 41.0, 39.0], hparams={"lr": 1e-05, "betas": (0.9, 0.999)})]
    checks = by_check(judge(base, cur, TOL))
    assert checks["setup changed"].verdict == "info"
    assert checks["setup changed"].detail == "lr 0.001 -> 1e-05"  # betas list == tuple: no change
    assert checks["final test accuracy"].verdict == "fail"


def test_hparam_changes_wording():
    assert hparam_changes({"lr": 0.1, "m": 0.9}, {"lr": 0.1, "nesterov": True}) == [
        "m 0.9 -> (removed)",
        "nesterov (new) True",
    ]


def test_class_change_is_reported():
    checks = by_check(judge([rec([90.0])], [rec([90.0], cls="my.Opt")], TOL))
    assert "class torch.optim.adam.Adam -> my.Opt" in checks["setup changed"].detail


def test_generalization_gap_growth_fails():
    base = [rec([90.0, 90.0], gaps=[2.0, 2.2])]
    cur = [rec([90.0, 90.0], gaps=[8.0, 8.3])]
    assert by_check(judge(base, cur, TOL))["generalization gap"].verdict == "fail"
    cur_ok = [rec([90.0, 90.0], gaps=[3.0, 3.2])]
    assert by_check(judge(base, cur_ok, TOL))["generalization gap"].verdict == "pass"


def test_steps_to_target_growth_fails_and_small_growth_passes():
    base = [rec([90.0] * 3, steps=[50, 52, 48])]
    slow = by_check(judge(base, [rec([90.0] * 3, steps=[80, 82, 79])], TOL))["steps to target"]
    assert slow.verdict == "fail" and slow.values["growth"] > 0.5
    ok = by_check(judge(base, [rec([90.0] * 3, steps=[55, 56, 53])], TOL))["steps to target"]
    assert ok.verdict == "pass"


def test_seed_that_reached_before_but_is_censored_now():
    # Baseline reached at step 50 of 100; with +25 % it should reach by 63, so censored at 100 is a
    # certain regression.
    base = [rec([90.0] * 2, steps=[50, 50])]
    cur = [rec([90.0] * 2, steps=[50, None])]
    reached = by_check(judge(base, cur, TOL))["target reached"]
    assert reached.verdict == "fail" and "seed 1" in reached.detail
    # Baseline reached at step 95 of 100 (the default target is the level the slowest optimizer just
    # reached): censored now cannot be told apart from noise, so it is noted, not failed.
    base_close = [rec([90.0] * 2, steps=[50, 95])]
    close = by_check(judge(base_close, cur, TOL))["target reached"]
    assert close.verdict == "pass" and "too near the budget" in close.detail
    # The steps row counts the censored seed at its budget: a lower bound, shown as such.
    steps = by_check(judge(base, cur, TOL))["steps to target"]
    assert steps.verdict == "fail" and steps.values["lower_bound"] and steps.current.startswith(">=")
    steps_close = by_check(judge(base_close, cur, TOL))["steps to target"]
    assert steps_close.verdict == "pass" and "1 censored" in steps_close.detail


def test_step_time_is_opt_in():
    base = [rec([90.0, 90.0], step_ms=[10.0, 10.2])]
    cur = [rec([90.0, 90.0], step_ms=[20.0, 20.5])]
    assert by_check(judge(base, cur, TOL))["step time"].verdict == "skip"
    tol = Tolerances.from_spec(None, step_time_growth=0.5)
    assert by_check(judge(base, cur, tol))["step time"].verdict == "fail"
    assert by_check(judge(base, base, tol))["step time"].verdict == "pass"


def test_table_and_junit_xml():
    base = [rec([90.0, 90.5, 89.5]), rec([80.0], label="sgd")]
    cur = [rec([40.0, 41.0, 39.0], hparams={"lr": 1e-05})]
    result = _GateResult(judge(base, cur, TOL), TOL, notes=["a note"])
    assert not result.passed
    console = Console(record=True, width=200)
    console.print(gate_table(result))
    text = console.export_text()
    assert "FAIL" in text and "PASS" in text and "lr 0.001 -> 1e-05" in text and "regressions" in text
    root = ET.fromstring(gate_junit(result))
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.get("failures")) == len(result.failures) >= 2
    failed = {
        (c.get("classname"), c.get("name")) for c in suite.iter("testcase") if c.find("failure") is not None
    }
    assert ("adacli.gate.sgd", "present") in failed and ("adacli.gate.adam", "final test accuracy") in failed
    data = result.to_dict()
    json.dumps(data)
    assert data["passed"] is False and data["n_failed"] == len(result.failures)


# --- setup hashes and baseline files ---------------------------------------------------------------

RECIPE = {
    "name": "tiny",
    "model": {"name": "test_resnet"},
    "dataset": {"name": "digits", "image_size": 8, "root": "/home/me/data"},
    "budget": {"steps": 40, "batch_size": 32, "eval_every": 20},
    "seeds": 2,
    "optimizers": [{"name": "adam", "lr": 0.001}],
}


def _baseline(recipe=RECIPE) -> Baseline:
    return Baseline(
        recipe_name=recipe["name"],
        setup=setup_hashes(recipe),
        setup_detail=setup_slices(recipe),
        target={"metric": "train_loss", "value": 0.5, "source": "default", "description": ""},
        optimizers=[rec([90.0, 91.0])],
    )


def test_setup_hash_ignores_what_does_not_change_results():
    same = json.loads(json.dumps(RECIPE))
    same["dataset"]["root"] = "/ci/data"  # another machine's path
    same["budget"]["eval_every"] = 10
    same["seeds"] = [0, 1]  # the same seeds written as a list
    same["model"]["kwargs"] = {}  # an explicit default
    same["optimizers"] = [{"name": "adam", "lr": 1e-5}]  # judged, not part of the setup
    same["name"] = "renamed"
    assert setup_hashes(same) == setup_hashes(RECIPE)
    notes = check_setup(_baseline(), same)
    assert any("recipe name differs" in n for n in notes)


@pytest.mark.parametrize(
    ("part", "change", "shown"),
    [
        ("budget", {"budget": {"steps": 80, "batch_size": 32}}, "steps 40 -> 80"),
        ("model", {"model": {"name": "resnet18"}}, '"test_resnet" -> "resnet18"'),
        ("seeds", {"seeds": 3}, "[0, 1] -> [0, 1, 2]"),
        ("precision", {"precision": "bf16"}, '"fp32" -> "bf16"'),
        ("dataset", {"dataset": {"name": "synthetic", "image_size": 8}}, "name"),
    ],
)
def test_baseline_from_another_setup_is_refused(part, change, shown):
    other = {**RECIPE, **change}
    with pytest.raises(InputError) as info:
        check_setup(_baseline(), other, baseline_path="b.json")
    err = info.value
    assert err.exit_code == 2
    assert err.field == f"setup.{part}"
    assert f"{part} differs (" in str(err) and shown in str(err) and str(err).startswith("b.json: ")
    assert "--save-baseline" in str(err)


def test_baseline_round_trip_and_bad_files(tmp_path: Path):
    b = _baseline()
    path = save_baseline(b, tmp_path / "sub" / "baseline.json")
    loaded = load_baseline(path)
    assert loaded.to_dict() == json.loads(json.dumps(b.to_dict()))
    assert loaded.optimizers[0].trials[1].final_test_accuracy == 91.0
    # A diverged trial's NaN accuracy is stored as null: the file stays strict JSON.
    b.optimizers[0].trials[0].final_test_accuracy = float("nan")
    json.loads(save_baseline(b, path).read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert load_baseline(path).optimizers[0].trials[0].final_test_accuracy is None

    with pytest.raises(InputError, match=r"not found.*--save-baseline") as info:
        load_baseline(tmp_path / "missing.json")
    assert info.value.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "kind": \n')
    with pytest.raises(InputError, match="not valid JSON") as info:
        load_baseline(bad)
    assert info.value.line == 3
    bad.write_text(json.dumps({"schema_version": 1, "trials": []}))
    with pytest.raises(InputError, match=r"a run.s results\.json, not an adacli baseline") as info:
        load_baseline(bad)
    # the hint must not suggest writing a baseline over the file given (a run's own results)
    assert f"--save-baseline {bad}" not in str(info.value)
    assert "--save-baseline .adacli/baseline.json" in str(info.value)
    data = b.to_dict()
    data["schema_version"] = 99
    bad.write_text(json.dumps(data))
    with pytest.raises(InputError, match="schema version 99"):
        load_baseline(bad)


# --- whole runs from hand-made trials (no training) -------------------------------------------------


def _trial(label, seed, *, decay, acc, status="ok", hparams=None, steps=100):
    """A trial whose training loss falls as exp(-decay * step) from 2.3 (about ln 10)."""
    import math

    from adacli.results import EvalPoint, TrialResult

    losses = [2.3 * math.exp(-decay * (i + 1)) for i in range(steps)]
    if status == "diverged":
        losses[-1] = float("nan")
    return TrialResult(
        label=label,
        optimizer="adam",
        optimizer_class="torch.optim.adam.Adam",
        hparams=dict(hparams or {"lr": 0.001}),
        seed=seed,
        status=status,
        losses=losses,
        times=[0.01 * (i + 1) for i in range(steps)],
        evals=[EvalPoint(steps, 0.01 * steps, 0.1, acc + 3.0, 0.2, acc)],
        step_time_ms=10.0,
    )


def _run(trials, recipe=RECIPE):
    from adacli.analysis import metrics
    from adacli.run.store import RunData

    target = metrics.resolve_target(trials, reference=recipe.get("reference"))
    return RunData(
        run_dir=Path("runs/x"),
        recipe=recipe,
        environment={"torch": "2.0", "device": "cpu"},
        trials=trials,
        summaries=metrics.summarize(trials, target),
        target=target,
    )


def test_gate_run_measures_steps_at_the_baseline_target():
    from adacli.analysis import metrics
    from adacli.ci.baselines import baseline_from_run
    from adacli.ci.gate import gate_run

    fast = [_trial("adam", s, decay=0.05 + 0.001 * s, acc=90.0 + s) for s in range(3)]
    slow = [_trial("sgd", s, decay=0.02 + 0.0005 * s, acc=80.0 + s) for s in range(3)]
    ref = {**RECIPE, "reference": "sgd"}
    base = baseline_from_run(_run(fast + slow, ref), "runs/base")
    # The default target with sgd as the reference: the level sgd reached on every seed (its seed 0's
    # final smoothed loss), which adam reaches early.
    assert base.target["value"] == pytest.approx(metrics.final_train_loss(slow[0]))

    same = gate_run(_run(fast + slow, ref), base, TOL)
    assert same.passed, failed_checks(same.checks)

    # adam gets 2x slower. Its own run's default target would then be adam's (higher) final loss and
    # adam would look *fast* against it; measured at the baseline's level it is a regression.
    slower = [_trial("adam", s, decay=0.025 + 0.0005 * s, acc=90.0 + s) for s in range(3)]
    result = gate_run(_run(slower + slow, ref), base, TOL, baseline_path="b.json")
    assert ("adam", "steps to target") in failed_checks(result.checks)
    assert any("baseline's target" in n for n in result.notes)
    # same torch and device in both runs: no environment note; another torch version: exactly one
    assert not [n for n in result.notes if n.startswith("environment")], result.notes
    moved = _run(slower + slow)
    moved.environment = {"torch": "2.1", "device": "cpu"}
    notes = gate_run(moved, base, TOL, baseline_path="b.json").notes
    env_notes = [n for n in notes if n.startswith("environment")]
    assert env_notes == ["environment torch: baseline 2.0, current 2.1"]

    # A diverged seed now: the status check fails, and metrics' divergence rule is applied to the
    # history even when the status field says "ok".
    broken = [*fast[:2], _trial("adam", 2, decay=0.05, acc=90.0, status="diverged")]
    broken[2].status = "ok"
    result = gate_run(_run(broken + slow), base, TOL)
    assert ("adam", "trials finished") in failed_checks(result.checks)


def test_gate_run_refuses_another_setup():
    from adacli.ci.baselines import baseline_from_run
    from adacli.ci.gate import gate_run

    trials = [_trial("adam", s, decay=0.05, acc=90.0) for s in range(2)]
    base = baseline_from_run(_run(trials), "runs/base")
    other = {**RECIPE, "budget": {"steps": 80, "batch_size": 32}}
    with pytest.raises(InputError, match=r"budget differs \(steps 40 -> 80\)"):
        gate_run(_run(trials, recipe=other), base, TOL)


# --- end to end through the CLI (tiny recipe: test_resnet on 8x8 digits, 40 steps, 2 seeds) ---------

TINY = """\
name: gate-tiny
model: {{name: test_resnet}}
dataset: {{name: digits, image_size: 8}}
budget: {{steps: {steps}, batch_size: 32, eval_every: 20}}
seeds: 2
device: cpu
optimizers:
  - {{name: adam, lr: {lr}}}
  - {{name: "gate_user_optim:MomentumSGD", lr: 0.05, label: user}}
"""


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """A baseline made by ``compare --save-baseline``; torch on one thread (fast and steady on 2 cores)."""
    import sys

    import torch
    from typer.testing import CliRunner

    from adacli.cli import app

    tests_dir = str(Path(__file__).resolve().parents[1] / "fixtures")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gate")
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY.format(steps=40, lr="3.0e-3"))
    baseline = root / "baseline.json"
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})

    res = invoke("compare", recipe, "--out", root / "run-base", "--save-baseline", baseline)
    assert res.exit_code == 0, res.output
    assert "baseline saved" in res.output
    yield {"root": root, "recipe": recipe, "baseline": baseline, "invoke": invoke}
    torch.set_num_threads(threads)


def test_cli_same_recipe_rerun_passes(cli_env):
    env = cli_env
    base = load_baseline(env["baseline"])
    assert [o.label for o in base.optimizers] == ["adam", "user"]
    assert base.optimizers[1].optimizer_class == "gate_user_optim.MomentumSGD"
    assert base.target["value"] is not None and base.environment.get("torch")

    junit = env["root"] / "rerun.xml"
    res = env["invoke"](
        "compare", env["recipe"], "--out", env["root"] / "run-same", "--baseline", env["baseline"],
        "--junit-xml", junit,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "regression gate" in res.output and "no regression" in res.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("tests")) >= 10

    # The gate on a saved run folder, without training; JSON output.
    res = env["invoke"]("gate", env["root"] / "run-base", "--baseline", env["baseline"], "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["passed"] is True and data["n_failed"] == 0


def test_cli_real_regressions_exit_1(cli_env, monkeypatch):
    """Same labels, but adam's learning rate is 1000x smaller and the user optimizer's code got worse
    (its update is scaled down by a bug switched on through the environment): both are caught, each
    under its own label, and the regressed run does not become the new baseline."""
    from gate_user_optim import BUG_ENV

    env = cli_env
    regressed = env["root"] / "regressed.yaml"
    regressed.write_text(TINY.format(steps=40, lr="3.0e-6"))
    monkeypatch.setenv(BUG_ENV, "1")
    new_baseline = env["root"] / "new-baseline.json"
    run = env["root"] / "run-regressed"
    res = env["invoke"](
        "compare", regressed, "--out", run, "--baseline", env["baseline"], "--save-baseline", new_baseline
    )
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "lr 0.003 -> 3e-06" in res.output
    assert "baseline not saved" in res.output and not new_baseline.exists()

    res = env["invoke"]("gate", run, "--baseline", env["baseline"], "--json")
    assert res.exit_code == 1, res.output
    checks = json.loads(res.output)["checks"]
    failed = {(c["optimizer"], c["check"]) for c in checks if c["verdict"] == "fail"}
    assert ("adam", "final test accuracy") in failed and ("user", "final test accuracy") in failed
    changed = {c["optimizer"]: c["detail"] for c in checks if c["check"] == "setup changed"}
    assert changed == {"adam": "lr 0.003 -> 3e-06"}  # the user optimizer's code changed, not its setup

    # Looser tolerances from the command line turn the verdict around (the flags are applied).
    res = env["invoke"]("gate", run, "--baseline", env["baseline"], "--accuracy-drop", "100", "--gap-growth",
                        "100", "--steps-growth", "100")  # fmt: skip
    assert res.exit_code == 0, res.output


def test_cli_baseline_from_another_setup_is_refused_before_training(cli_env):
    env = cli_env
    other = env["root"] / "longer.yaml"
    other.write_text(TINY.format(steps=80, lr="3.0e-3"))
    out = env["root"] / "run-other"
    res = env["invoke"]("compare", other, "--out", out, "--baseline", env["baseline"])
    assert res.exit_code == 2, res.output
    assert "budget differs (steps 40 -> 80)" in res.output and "Traceback" not in res.output
    assert not out.exists()  # refused before any training
    res = env["invoke"]("compare", env["recipe"], "--steps", 30, "--baseline", env["baseline"])
    assert res.exit_code == 2 and "steps 40 -> 30" in res.output
    res = env["invoke"]("gate", env["root"] / "run-base", "--baseline", env["root"] / "nope.json")
    assert res.exit_code == 2 and "baseline file not found" in res.output
