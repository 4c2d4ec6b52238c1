"""The statistics stage (adacli.analysis.verdict): which values are paired, censoring, best sets, the power
line, results.json / --json / report, --reference, the end-to-end "identical pair + broken optimizer" run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from adacli.analysis import metrics, stats, verdict
from adacli.cli import app
from adacli.recipe import TargetSpec
from adacli.report import tables as report
from adacli.results import EvalPoint, Target, TrialResult
from adacli.run import store
from adacli.run.store import RunData

TARGET = Target(metric="train_loss", value=1.0, source="recipe", description="target: <= 1")


def trial(label: str, seed: int, acc: float, *, losses=None, status="ok", secs_per_step=0.1) -> TrialResult:
    """A hand-made trial of 6 steps (unless ``losses`` says otherwise) with one final evaluation."""
    losses = losses if losses is not None else [2.0, 1.0, 0.5, 0.3, 0.2, 0.1]  # reaches 1.0 at step 4
    ev = EvalPoint(step=len(losses), seconds=0.0, train_eval_loss=0.5, train_eval_accuracy=acc + 2.0,
                   test_loss=0.6, test_accuracy=acc)  # fmt: skip
    return TrialResult(
        label=label, optimizer=label, optimizer_class="x", hparams={}, seed=seed, status=status,
        losses=losses, times=[secs_per_step * (i + 1) for i in range(len(losses))], evals=[ev],
        step_time_ms=5.0, optimizer_step_ms=1.0,
    )  # fmt: skip


def analyze(trials, target=TARGET, reference=None):
    return verdict.analyze(trials, metrics.summarize(trials, target), target, reference)


# --- which values are paired, censoring --------------------------------------------------------------


def test_censored_times_count_as_budget_plus_one_and_are_flagged():
    never = [2.0, 1.9, 1.8, 1.7, 1.6, 1.5]  # never at or below the target 1.0 (smoothed)
    trials = [
        trial("fast", 0, 90.0),
        trial("slow", 0, 80.0, losses=never, secs_per_step=0.5),  # not reached: 6 + 1 steps, 3.0 s
        trial("fast", 1, 91.0),
        trial("slow", 1, 80.0, losses=[2.0, math.nan], status="diverged"),  # diverged: censored too
        trial("fast", 2, 92.0),
        trial("slow", 2, 80.0, status="failed"),  # failed: no value, seed 2 drops out of the pair
    ]
    sv = verdict.seed_values(trials, TARGET)
    reached = metrics.steps_to_target(trials[0], TARGET)
    assert sv.values["steps_to_target"]["slow"] == {0: 7.0, 1: 7.0}
    assert sv.values["steps_to_target"]["fast"] == {0: reached, 1: reached, 2: reached}
    # seconds: the longest training time of any trial of the run (3.0 s), not the trial's own
    assert sv.values["seconds_to_target"]["slow"] == {0: pytest.approx(3.0), 1: pytest.approx(3.0)}
    assert sv.censored == {"fast": set(), "slow": {0, 1}}
    assert reached == 4 and set(sv.values["final_test_accuracy"]["slow"]) == {0}

    v = analyze(trials)
    steps = v.pair("steps_to_target", "fast", "slow")
    assert steps is not None and steps.n == 2 and steps.censored == 2
    assert steps.mean_diff == pytest.approx(reached - 7.0)
    # a constant difference on 2 seeds: the exact sign test, p = 0.5: not a verdict yet
    assert steps.test == "sign" and steps.p_value == pytest.approx(0.5)
    assert not steps.significant and steps.better is None
    assert v.best["steps_to_target"] == ["fast", "slow"]
    acc = v.pair("final_test_accuracy", "fast", "slow")
    assert acc is not None and acc.n == 1 and acc.test == "none"  # only seed 0 has both values


def test_identical_labels_are_no_difference_and_share_best():
    trials = []
    pairs = [(90.0, 20.0), (85.0, 22.0), (93.0, 15.0), (88.0, 30.0), (91.0, 10.0)]
    for seed, (good, bad) in enumerate(pairs):
        trials += [trial("a1", seed, good), trial("a2", seed, good), trial("bad", seed, bad)]
    v = analyze(trials)
    same = v.pair("final_test_accuracy", "a1", "a2")
    assert same is not None and same.test == "identical" and same.p_value == 1.0 and not same.significant
    worse = v.pair("final_test_accuracy", "bad", "a1")
    assert worse is not None and worse.significant and worse.better == "b" and worse.mean_diff < 0
    assert v.best["final_test_accuracy"] == ["a1", "a2"]
    assert v.power is None  # something is significant: no power line
    for r in v.comparisons:  # never NaN anywhere
        assert all(x is None or math.isfinite(x) for x in (r.mean_diff, r.p_value, r.p_adjusted))


def test_holm_is_applied_per_metric():
    labels = (("x", 80.0), ("y", 81.0), ("z", 79.5))
    trials = [trial(lab, s, acc + s) for s in range(4) for lab, acc in labels]
    trials[1].evals[0].test_accuracy += 0.3  # y, seed 0: some spread so that the tests are not degenerate
    v = analyze(trials)
    family = [r for r in v.comparisons if r.metric == "final_test_accuracy"]
    assert [r.p_adjusted for r in family] == pytest.approx(stats.holm([r.p_value for r in family]))
    assert len({r.metric for r in v.comparisons}) == len(verdict.METRICS)


def test_one_seed_has_no_verdict_and_the_table_says_so():
    trials = [trial("a", 0, 90.0), trial("b", 0, 50.0)]
    summaries = metrics.summarize(trials, TARGET)
    v = verdict.analyze(trials, summaries, TARGET)
    assert not v.has_verdict and v.best["final_test_accuracy"] == [] and v.power is None
    assert summaries[0].final_test_accuracy.ci95 is None
    assert report.verdict_best_rows(summaries, v).get("test acc %") is None
    text = render(report.summary_table(summaries, TARGET, verdict=v))
    assert "no verdict, only values" in text


def test_power_line_when_nothing_is_significant():
    accs = {"adam": [90.0, 91.5, 89.0, 92.0], "sgd": [89.0, 91.8, 88.6, 91.2]}
    trials = [trial(lab, s, a) for lab, vals in accs.items() for s, a in enumerate(vals)]
    v = analyze(trials)
    assert not any(r.significant for r in v.comparisons if r.metric == "final_test_accuracy")
    p = v.power
    d = [x - y for x, y in zip(accs["adam"], accs["sgd"], strict=True)]
    mean, sd = sum(d) / 4, stats.sd(d)
    assert p is not None and (p["a"], p["b"]) == ("adam", "sgd")
    assert p["mean_diff"] == pytest.approx(mean) and p["sd_diff"] == pytest.approx(sd)
    assert p["seeds_needed"] == stats.seeds_needed(mean, sd) > 4
    assert p["text"] == (
        "no significant difference in test accuracy; at the observed spread about "
        f"{p['seeds_needed']} seeds would detect the largest difference (adam − sgd, 0.5 pts) with 80% power"
    )
    table = render(report.summary_table(metrics.summarize(trials, TARGET), TARGET, verdict=v))
    assert p["text"] in " ".join(table.split())


def test_pair_flips_orientation():
    trials = [t for s in range(3) for t in (trial("x", s, 80.0 + s * s), trial("y", s, 70.0 + s))]
    v = analyze(trials)
    xy, yx = v.pair("final_test_accuracy", "x", "y"), v.pair("final_test_accuracy", "y", "x")
    assert xy is not None and yx is not None and yx.mean_diff == -xy.mean_diff
    assert (xy.better, yx.better) == ("a", "b") and yx.ci95 == [-xy.ci95[1], -xy.ci95[0]]
    assert report.delta_cell(v, "x", "y") == "+10.7 [+7.8, +13.5] *"
    assert verdict.Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v


# --- files and CLI -------------------------------------------------------------------------------


def render(table) -> str:
    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_old_run_folder_is_analysed_on_load_and_stored_verdict_is_kept(tmp_path):
    trials = [t for s in range(3) for t in (trial("x", s, 80.0 + s * s), trial("y", s, 70.0 + s))]
    target = metrics.resolve_target(trials, TargetSpec())
    summaries = metrics.summarize(trials, target)
    env = {"device": "cpu"}
    store.save_run(RunData(tmp_path / "old", {"name": "old"}, env, trials, summaries, target), {})
    old = store.load_run(tmp_path / "old")  # written without comparisons: computed from the trials
    assert old.verdict is not None and old.verdict.best["final_test_accuracy"] == ["x"]
    assert old.summaries[0].final_test_accuracy.ci95 is not None
    payload = old.summary_json()
    assert {"comparisons", "best", "reference", "power"} <= set(payload)

    v = verdict.analyze(trials, summaries, target)
    v.comparisons[0].p_value = 0.123  # a stored verdict is read back, not recomputed
    new_run = RunData(tmp_path / "new", {"name": "new"}, env, trials, summaries, target)
    new_run.verdict = v
    store.save_run(new_run, {})
    new = store.load_run(tmp_path / "new")
    assert new.verdict == v and "comparisons" not in new.extra

    res = CliRunner().invoke(app, ["report", str(tmp_path / "old"), "--no-plot", "--reference", "y"])
    assert res.exit_code == 0, res.output
    assert "Δ vs y" in res.output and "+10.7 [+7.8, +13.5] *" in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path / "old"), "--no-plot", "--reference", "z"])
    assert res.exit_code == 2 and "--reference: unknown optimizer label 'z'; allowed: x, y" in res.output


DIGITS_RECIPE = """name: verdict-e2e
model: {{name: test_resnet}}
dataset: {{name: digits, image_size: 8}}
budget: {{steps: 20, batch_size: 32, eval_every: 20}}
seeds: 5
device: cpu
{reference}optimizers:
  - {{name: adam, lr: 1.0e-2, label: adam-a}}
  - {{name: adam, lr: 1.0e-2, label: adam-b}}
  - {{name: sgd, lr: 1.0e-6, label: broken}}
"""


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_reference_label_is_checked_before_training(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(DIGITS_RECIPE.format(reference="reference: adam-c\n"))
    res = CliRunner().invoke(app, ["compare", str(recipe)])
    assert res.exit_code == 2
    assert f"{recipe}:7: reference: unknown optimizer label 'adam-c'" in res.output.replace("\n", "")
    assert "allowed: adam-a, adam-b, broken" in res.output.replace("\n", "")
    res = CliRunner().invoke(app, ["validate", str(recipe)])
    assert res.exit_code == 2 and "unknown optimizer label 'adam-c'" in res.output
    recipe.write_text(DIGITS_RECIPE.format(reference=""))
    res = CliRunner().invoke(app, ["compare", str(recipe), "--reference", "adam"])
    assert res.exit_code == 2 and "--reference: unknown optimizer label 'adam'" in res.output


def test_identical_pair_ties_and_broken_optimizer_loses_end_to_end(tmp_path: Path, one_thread):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(DIGITS_RECIPE.format(reference="reference: adam-a\n"))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["compare", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "identical" in res.output
    assert "not significantly worse than the best" in " ".join(res.output.split())

    data = json.loads((out / "results.json").read_text())
    assert data["reference"] == "adam-a"
    assert data["best"]["final_test_accuracy"] == ["adam-a", "adam-b"]
    acc = {(c["a"], c["b"]): c for c in data["comparisons"] if c["metric"] == "final_test_accuracy"}
    assert acc["adam-a", "adam-b"]["test"] == "identical" and not acc["adam-a", "adam-b"]["significant"]
    assert acc["adam-a", "adam-b"]["p_value"] == 1.0 and acc["adam-a", "adam-b"]["n"] == 5
    for a in ("adam-a", "adam-b"):
        c = acc[a, "broken"]
        assert c["significant"] and c["better"] == "a" and c["p_adjusted"] < 0.05 and c["mean_diff"] > 0
    for metric in ("final_test_accuracy", "generalization_gap", "steps_to_target", "seconds_to_target",
                   "final_train_loss"):  # fmt: skip
        assert sum(c["metric"] == metric for c in data["comparisons"]) == 3
    assert all(len(s["final_test_accuracy"]["ci95"]) == 2 for s in data["summary"])
    csv_header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"final_test_accuracy_ci95_lo", "final_test_accuracy_ci95_hi"} <= set(csv_header)

    run = store.load_run(out)
    bold = report.verdict_best_rows(run.summaries, run.verdict)
    assert bold["test acc %"] == {0, 1}  # both adams in bold green, the broken one not
    text = render(report.summary_table(run.summaries, run.target, verdict=run.verdict))
    rows = [r.split("│") for r in text.splitlines() if r.startswith("│")]
    cells = {r[1].split()[0]: r[3].strip() for r in rows}
    assert cells["adam-a"] == "ref" and cells["adam-b"] == "identical"
    assert cells["broken"].startswith("-") and cells["broken"].endswith(" *")

    res = CliRunner().invoke(app, ["report", str(out), "--json", "--no-plot"])
    payload = json.loads(res.stdout)
    assert payload["best"] == data["best"] and payload["comparisons"] == data["comparisons"]


def test_scaled_path_and_json_output_carry_the_verdict(tmp_path: Path, one_thread):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "name: tiny\nmodel: {name: test_resnet}\n"
        "dataset: {name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 128,"
        " test_size: 32}\n"
        "budget: {steps: 4, batch_size: 32, eval_every: 4}\nseeds: 2\ndevice: cpu\nreference: b\n"
        "optimizers:\n  - {name: adam, label: a}\n  - {name: sgd, lr: 0.1, label: b}\n"
    )
    out = tmp_path / "run"
    args = ["compare", str(recipe), "--executor", "serial", "--out", str(out), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    data = json.loads((out / "results.json").read_text())
    assert payload["reference"] == data["reference"] == "b"
    assert payload["comparisons"] == data["comparisons"] and len(data["comparisons"]) == len(verdict.METRICS)
    assert data["comparisons"][0]["n"] == 2 and set(data["best"]) == set(verdict.METRICS)


def test_power_line_for_a_difference_without_spread_names_the_sign_tests_reach():
    # 3 images of 359 fewer on every seed: zero spread, so the t-test's power calculation says nothing
    trials = [t for s in range(3) for t in (trial("a", s, 97.0 + s), trial("b", s, 97.0 + s - 300 / 359))]
    p = analyze(trials).power
    assert p is not None and p["seeds_needed"] == 6  # one pair: alpha 0.05, 2/2**6 < 0.05
    assert "the exact sign test calls significant from 6 seeds that all agree" in p["text"]
