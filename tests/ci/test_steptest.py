"""Tests of ``adacli step-test``: it passes sound optimizers and catches broken ones, by name of the check.

The broken optimizers (tests/fixtures/broken_optimizers.py) are loaded by import path exactly as a user's own
would be; every verdict here comes from really running them on the problems.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import torch
from typer.testing import CliRunner

from adacli.ci import steptest
from adacli.ci.problems import PROBLEMS, default_problems
from adacli.cli import app
from adacli.optim.adabelief import AdaBelief
from adacli.recipe import load_recipe

runner = CliRunner()


def step_test(*args: str):
    return runner.invoke(app, ["step-test", *args])


def report_json(*args: str) -> tuple[int, dict]:
    result = step_test("--json", *args)
    return result.exit_code, json.loads(result.stdout)


def verdicts(data: dict, optimizer: str) -> dict[str, str]:
    return {c["check"]: c["status"] for c in data["checks"] if c["optimizer"] == optimizer}


# --- the default run -------------------------------------------------------------------------------------


def test_default_run_passes_with_json_and_junit(tmp_path: Path) -> None:
    junit = tmp_path / "out" / "step-test.xml"
    result = step_test("--json", "--junit-xml", str(junit))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["counts"]["fail"] == 0
    labels = [o["label"] for o in data["optimizers"]]
    assert labels == ["adabelief", "sgd(momentum=0.9)", "adam", "adamw"]
    sgd = data["optimizers"][1]
    assert sgd["hparams"]["momentum"] == 0.9 and sgd["class"] == "torch.optim.sgd.SGD"
    for label in labels:
        mine = verdicts(data, label)
        for problem in PROBLEMS:
            for kind in ("descent", "repeatable", "resume"):
                assert mine[f"{problem}.{kind}"] == "pass", (label, problem, kind)
    ab = verdicts(data, "adabelief")
    assert ab["adabelief.golden"] == "pass" and ab["adabelief.foreach"] == "pass"
    # skip only where no C++ compiler exists (looked up here, not through the code under test)
    compiler = any(shutil.which(c) for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c)
    assert ab["adabelief.fused"] == ("pass" if compiler else "skip")
    # every verdict carries its figure and criterion
    assert all(c["measured"] and c["criterion"] for c in data["checks"])

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and int(root.get("tests")) == len(data["checks"])
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(data["checks"])
    assert {s.get("name") for s in root.findall("testsuite")} == {f"step-test.{lb}" for lb in labels}
    assert not root.findall(".//failure")


def test_table_output_names_every_check() -> None:
    result = step_test("-o", "adam", "--fused", "no")
    assert result.exit_code == 0, result.output
    for problem in PROBLEMS:
        assert f"{problem}.descent" in result.stdout
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert "passed, 0 failed" in result.stdout


# --- broken optimizers fail, by name of the check ----------------------------------------------------


def test_optimizer_that_raises_inside_step_is_a_failed_check_not_a_crash() -> None:
    name = "broken_optimizers:SharedMomentum"
    code, data = report_json("-o", name)
    assert code == 1
    by_check = {c["check"]: c for c in data["checks"] if c["optimizer"] == name}
    for problem, shapes in (("logistic", "[] doesn't match the broadcast shape [8]"), ("mlp", "[16]")):
        check = by_check[f"{problem}.descent"]
        assert check["status"] == "fail" and check["measured"] == "error"
        assert check["detail"].startswith("RuntimeError at step 0: output with shape ")
        assert shapes in check["detail"]
        # a run that raised cannot be judged for repeatability or resume
        later = (by_check[f"{problem}.repeatable"]["status"], by_check[f"{problem}.resume"]["status"])
        assert later == ("skip", "skip")
    assert by_check["quadratic.descent"]["status"] == "pass"  # one parameter tensor: no mismatch
    result = step_test("-o", name)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"FAIL {name} mlp.descent: RuntimeError at step 0" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: 5 step-test check(s) failed")


def test_optimizer_that_ignores_gradients_fails_descent() -> None:
    code, data = report_json("-o", "broken_optimizers:IgnoresGradients")
    assert code == 1
    mine = verdicts(data, "broken_optimizers:IgnoresGradients")
    failed = {k for k, v in mine.items() if v == "fail"}
    assert {f"{p}.descent" for p in ("quadratic", "rosenbrock", "logistic", "mlp")} <= failed
    # it is repeatable and resumable (it seeds from torch's RNG, which a checkpoint restores): only the
    # descent checks catch it
    assert all(mine[f"{p}.repeatable"] == "pass" for p in PROBLEMS)
    result = step_test("-o", "broken_optimizers:IgnoresGradients")
    assert result.exit_code == 1
    assert "quadratic.descent" in result.output and "FAIL" in result.output
    assert "Traceback" not in result.output


def test_json_output_is_strict_json() -> None:
    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))

    check = steptest.StepCheck("x", "adabelief.foreach", "fail", "error", "c", "d", math.inf)
    assert strict(json.dumps(check.to_dict()))["value"] == "Infinity"
    result = step_test("--json", "-o", "broken_optimizers:Unrepeatable")
    assert result.exit_code == 1
    assert strict(result.stdout)["counts"]["fail"] == len(PROBLEMS)


def test_optimizer_that_produces_nan_fails() -> None:
    result = step_test("-o", "broken_optimizers:ProducesNaN")
    assert result.exit_code == 1
    assert "FAIL" in result.output and "NaN @" in result.output
    assert "quadratic.descent" in result.output
    _, data = report_json("-o", "broken_optimizers:ProducesNaN")
    mine = verdicts(data, "broken_optimizers:ProducesNaN")
    assert all(mine[f"{p}.descent"] == "fail" for p in PROBLEMS)
    detail = next(c["detail"] for c in data["checks"] if c["check"] == "quadratic.descent")
    assert "nan" in detail.lower()


def test_state_outside_state_dict_fails_resume_only() -> None:
    code, data = report_json("-o", "broken_optimizers:ForgetfulMomentum")
    assert code == 1
    mine = verdicts(data, "broken_optimizers:ForgetfulMomentum")
    for p in PROBLEMS:
        assert mine[f"{p}.descent"] == "pass" and mine[f"{p}.repeatable"] == "pass"
        assert mine[f"{p}.resume"] == "fail"


def test_unrepeatable_optimizer_fails_repeatable() -> None:
    code, data = report_json("-o", "broken_optimizers:Unrepeatable")
    assert code == 1
    mine = verdicts(data, "broken_optimizers:Unrepeatable")
    assert all(mine[f"{p}.repeatable"] == "fail" for p in PROBLEMS)
    assert all(mine[f"{p}.resume"] == "skip" for p in PROBLEMS)  # not judgeable without repeatability


def test_correct_user_optimizer_passes_by_import_path() -> None:
    code, data = report_json("-o", "broken_optimizers:HeavyBall", "-o", "sgd")
    assert code == 0, [c for c in data["checks"] if c["status"] != "pass"]
    user = data["optimizers"][0]
    assert user["source"] == "import" and user["class"] == "broken_optimizers.HeavyBall"
    assert user["problem_lr"] == 0.01
    assert set(verdicts(data, "broken_optimizers:HeavyBall").values()) == {"pass"}


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["-o", "adamm"], "did you mean 'adam'"),
        (["-o", "no_such_pkg.mod:Opt"], "does not import"),
        (["-o", "adam", "--fused", "maybe"], "--fused"),
        (["--recipe", "no/such/recipe.yaml"], "recipe.yaml"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expect: str) -> None:
    result = step_test(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


# --- AdaBelief: golden values and paths ------------------------------------------------------------------


def test_golden_check_passes_for_adabelief_on_every_path() -> None:
    check = steptest.golden_check("adabelief", AdaBelief, ["single", "foreach"])
    assert check.status == "pass", check.detail
    assert check.value is not None and check.value <= steptest.GOLDEN_RTOL


def test_golden_check_fails_when_the_numerics_move_by_1e_7() -> None:
    from broken_optimizers import NudgedAdaBelief

    check = steptest.golden_check("nudged", NudgedAdaBelief, ["single", "foreach"])
    assert check.status == "fail"
    assert "[single]" in check.detail or "[foreach]" in check.detail


def test_golden_check_catches_a_code_change_the_paths_check_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change inside the optimizer module (the rectification term off by 1e-9, on every path alike)."""
    import adacli.optim._math as mod  # the one definition every path calls (adabelief re-exports it)

    original = mod.rectification

    def drifted(step: float, beta1: float, beta2: float, degenerated_to_sgd: bool) -> tuple[str, float]:
        kind, size = original(step, beta1, beta2, degenerated_to_sgd)
        return kind, size * (1 + 1e-9)

    monkeypatch.setattr(mod, "rectification", drifted)
    plan = steptest.plan_step_test(["adabelief"])
    paths = steptest.paths_checks(plan.subjects[0], ("skip", "not needed here"))
    assert paths[0].check == "adabelief.foreach" and paths[0].status == "pass"  # paths still agree
    golden = steptest.golden_check("adabelief", AdaBelief, ["single", "foreach"])
    assert golden.status == "fail", golden.detail


def test_path_check_fails_when_one_path_drifts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The foreach path's update off by one part in 10^6 (single and golden untouched): foreach fails."""
    import adacli.optim.adabelief as mod

    original = mod.foreach_update

    def drifted(*args, **kwargs):
        kwargs["hyper"] = dataclasses.replace(kwargs["hyper"], lr=kwargs["hyper"].lr * (1 + 1e-6))
        return original(*args, **kwargs)

    monkeypatch.setattr(mod, "foreach_update", drifted)
    plan = steptest.plan_step_test(["adabelief"])
    foreach, fused = steptest.paths_checks(plan.subjects[0], ("skip", "not needed here"))
    assert foreach.status == "fail" and fused.status == "skip"
    assert foreach.value is not None and foreach.value > 1


def test_committed_golden_file_is_what_the_official_package_produces() -> None:
    pytest.importorskip("adabelief_pytorch")
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "make_golden.py"
    spec = importlib.util.spec_from_file_location("make_golden", path)
    assert spec is not None and spec.loader is not None
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    threads = torch.get_num_threads()
    try:
        fresh = make_golden.build()
    finally:
        torch.set_num_threads(threads)
    committed = json.loads(steptest.GOLDEN_FILE.read_text())
    assert json.loads(json.dumps(fresh["cases"])) == committed["cases"]
    assert committed["steps"] == 40 and len(committed["cases"]) >= 8


def test_fused_flag_no_skips_the_fused_path() -> None:
    assert steptest.fused_status("no") == ("skip", "skipped (--fused no)")
    state, why = steptest.fused_status("auto")
    assert state in (None, "skip") and why  # None = run it (the kernel builds here)
    plan = steptest.plan_step_test(["adabelief"])
    checks = steptest.paths_checks(plan.subjects[0], ("skip", "skipped (--fused no)"))
    verdicts = [(c.check, c.status) for c in checks]
    assert verdicts == [("adabelief.foreach", "pass"), ("adabelief.fused", "skip")]


# --- recipe mode -----------------------------------------------------------------------------------------


def test_recipe_checks_its_model_and_catches_a_broken_optimizer(tmp_path: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny\n"
        "model: {name: test_resnet}\n"
        "dataset: {name: digits, image_size: 8}\n"
        "budget: {steps: 10, batch_size: 32, eval_batch_size: 64}\n"
        "device: cpu\n"
        "optimizers:\n"
        "  - {name: adam, lr: 3.0e-3}\n"
        "  - {name: 'broken_optimizers:IgnoresGradients', lr: 1.0e-3, label: broken}\n"
    )
    code, data = report_json("--recipe", str(recipe))
    assert code == 1
    assert [o["label"] for o in data["optimizers"]] == ["adam", "broken"]
    assert data["optimizers"][0]["hparams"]["lr"] == 3e-3
    adam, broken = verdicts(data, "adam"), verdicts(data, "broken")
    assert adam["recipe.overfit"] == "pass" and adam["recipe.step_eval"] == "pass"
    assert broken["recipe.overfit"] == "fail"
    overfit = next(c for c in data["checks"] if c["optimizer"] == "adam" and c["check"] == "recipe.overfit")
    assert "test_resnet" in overfit["detail"] and "digits" in overfit["detail"]


def test_recipe_checks_train_bf16_on_the_cpu_under_the_trials_guard(tmp_path: Path, monkeypatch) -> None:
    """The recipe checks take the trial's training step (adacli.train.step), so a bf16 CPU recipe trains
    with oneDNN off as its trials do (its bf16 convolution backward corrupts gradients,
    benchmarks/bf16_cpu_grads.py); the flag is restored afterwards, and fp32 leaves it alone."""
    if not torch.backends.mkldnn.enabled:
        pytest.skip("oneDNN is off in this process already")
    seen: list[bool] = []
    real = torch.nn.functional.cross_entropy

    def spy(*args, **kwargs):
        seen.append(torch.backends.mkldnn.enabled)
        return real(*args, **kwargs)

    def checks(precision: str) -> list[steptest.StepCheck]:
        recipe = tmp_path / f"{precision}.yaml"
        recipe.write_text(
            f"name: {precision}\nmodel: {{name: test_resnet}}\ndataset: {{name: digits, image_size: 8}}\n"
            f"budget: {{steps: 10, batch_size: 32}}\ndevice: cpu\nprecision: {precision}\n"
            "optimizers:\n  - {name: adam, lr: 3.0e-3}\n"
        )
        plan = steptest.plan_step_test(recipe=load_recipe(recipe))
        ctx = steptest.recipe_context(plan.recipe)
        with steptest.quiet_torch():
            return [
                steptest.overfit_check(plan.subjects[0], ctx),
                steptest.step_eval_check(plan.subjects[0], ctx),
            ]

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    bf16 = checks("bf16")
    assert [c.status for c in bf16] == ["pass", "pass"], [c.detail for c in bf16]
    assert "bf16" in bf16[0].detail
    assert seen and not any(seen)  # every forward (training and evaluation) ran with oneDNN off
    assert torch.backends.mkldnn.enabled
    seen.clear()
    assert [c.status for c in checks("fp32")] == ["pass", "pass"]
    assert seen and all(seen)


# --- problems --------------------------------------------------------------------------------------------


def test_problem_scaling_makes_sgd_independent_of_lr() -> None:
    """The lr-scaled coordinates: plain SGD follows the same native trajectory at lr 1 and lr 1e-4."""
    problem = PROBLEMS["quadratic"]()
    runs = []
    for lr in (1.0, 1e-4):
        runs.append(steptest.run_problem(lambda ps, lr=lr: torch.optim.SGD(ps, lr=lr), problem, lr).losses)
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(*runs, strict=True))


def test_problems_are_deterministic_and_start_finite() -> None:
    for problem in default_problems():
        a = problem.objective(problem.initial(), 3)
        b = problem.objective(problem.initial(), 3)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert math.isfinite(a[1].item()) and a[1].item() > 0


def test_default_set_is_every_shipped_optimizer_plus_baselines() -> None:
    from adacli.optim.registry import optimizer_names

    assert steptest.shipped_optimizer_names() == optimizer_names()["adacli"]
    labels = [s.label for s in steptest.default_subjects()]
    assert labels[: len(optimizer_names()["adacli"])] == optimizer_names()["adacli"]
    assert labels[-3:] == ["sgd(momentum=0.9)", "adam", "adamw"]
