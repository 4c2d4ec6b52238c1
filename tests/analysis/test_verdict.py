"""The statistics stage (adacli.analysis.verdict): which values are paired, censoring, families, best sets,
seeds to decide, results.json / --json / report, --reference, the end-to-end "identical pair + broken
optimizer" run, and a 2-seed run with a broken optimizer."""

from __future__ import annotations

import json
import math
import re
import statistics
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


def analyze(trials, target=TARGET, reference=None, settings=None):
    return verdict.analyze(trials, metrics.summarize(trials, target), target, reference, settings=settings)


# --- which values are paired, censoring --------------------------------------------------------------


def test_censored_times_count_as_budget_plus_one_and_are_flagged():
    never = [2.0, 1.9, 1.8, 1.7, 1.6, 1.5]  # never at or below the target 1.0 (smoothed)
    trials = [
        trial("fast", 0, 90.0),
        trial("slow", 0, 80.0, losses=never, secs_per_step=0.5),  # not reached: 6 + 1 steps, 3.0 + 0.5 s
        trial("fast", 1, 91.0),
        trial("slow", 1, 80.0, losses=[2.0, math.nan], status="diverged"),  # diverged: censored too
        trial("fast", 2, 92.0),
        trial("slow", 2, 80.0, status="failed"),  # failed: no value, seed 2 drops out of the pair
    ]
    sv = verdict.seed_values(trials, TARGET)
    reached = metrics.steps_to_target(trials[0], TARGET)
    assert sv.values["steps_to_target"]["slow"] == {0: 7.0, 1: 7.0}
    assert sv.values["steps_to_target"]["fast"] == {0: reached, 1: reached, 2: reached}
    # seconds: the longest training time of any trial of the run (3.0 s) + one step of it (0.5 s)
    assert sv.values["seconds_to_target"]["slow"] == {0: pytest.approx(3.5), 1: pytest.approx(3.5)}
    assert sv.censored == {"fast": set(), "slow": {0, 1}}
    assert reached == 4 and set(sv.values["final_test_accuracy"]["slow"]) == {0}

    v = analyze(trials)
    steps = v.pair("steps_to_target", "fast", "slow")
    assert steps is not None and steps.n == 2 and steps.censored == 2 and steps.scale == "ratio"
    assert steps.estimate == pytest.approx(reached / 7.0)
    # a constant ratio on 2 seeds, floored by one step: not decided yet; but slow, usable on 1 of its 3
    # seeds, is no contender: fast, the only eligible label and worse than none, is best
    assert steps.outcome == "undecided" and steps.seeds_to_decide is None  # secondary: no planning
    assert v.best["steps_to_target"] == ["fast"]
    acc = v.pair("final_test_accuracy", "fast", "slow")
    assert acc is not None and acc.n == 1 and acc.outcome == "untested"  # only seed 0 has both values
    assert "slow" not in verdict.eligible(trials)  # usable on 1 of its 3 seeds


def test_identical_labels_are_equivalent_and_share_best():
    trials = []
    pairs = [(90.0, 20.0), (85.0, 22.0), (93.0, 15.0), (88.0, 30.0), (91.0, 10.0)]
    for seed, (good, bad) in enumerate(pairs):
        trials += [trial("a1", seed, good), trial("a2", seed, good), trial("bad", seed, bad)]
    v = analyze(trials, settings=verdict.Settings(test_size=359))
    same = v.pair("final_test_accuracy", "a1", "a2")
    assert same is not None and same.identical and same.outcome == "equivalent" and same.p_value == 1.0
    worse = v.pair("final_test_accuracy", "bad", "a1")
    assert worse is not None and worse.outcome == "worse" and worse.better == "b" and worse.mean_diff < 0
    assert v.best["final_test_accuracy"] == ["a1", "a2"]
    assert "bad" not in {label for labels in v.best.values() for label in labels}  # worse in the primary
    for r in v.comparisons:  # never NaN anywhere
        assert all(x is None or math.isfinite(x) for x in (r.mean_diff, r.p_value, r.p_adjusted))


def test_each_metric_is_one_bonferroni_family_and_the_primary_is_stated():
    labels = (("x", 80.0), ("y", 81.0), ("z", 79.5))
    trials = [trial(lab, s, acc + s) for s in range(4) for lab, acc in labels]
    trials[1].evals[0].test_accuracy += 0.3  # y, seed 0: some spread so that the tests are not degenerate
    v = analyze(trials)
    family = [r for r in v.comparisons if r.metric == "final_test_accuracy"]
    assert [r.p_adjusted for r in family] == pytest.approx([min(1.0, 3 * r.p_value) for r in family])
    assert all(r.family == "final_test_accuracy" and r.family_size == 3 for r in family)
    assert all(r.ci_level == pytest.approx(1 - 0.05 / 3) for r in family)
    assert len({r.metric for r in v.comparisons}) == len(verdict.METRICS) == len(v.families)
    roles = {f["name"]: f["role"] for f in v.families}
    assert roles["final_test_accuracy"] == "primary" and set(roles.values()) == {"primary", "secondary"}
    steps = analyze(trials, settings=verdict.Settings(primary="steps_to_target"))
    assert {f["name"]: f["role"] for f in steps.families}["steps_to_target"] == "primary"
    assert steps.primary == "steps_to_target" and steps.headline.startswith("Steps to target")


def test_one_seed_has_no_verdict_and_the_table_says_so():
    trials = [trial("a", 0, 90.0), trial("b", 0, 50.0)]
    summaries = metrics.summarize(trials, TARGET)
    v = verdict.analyze(trials, summaries, TARGET)
    assert not v.has_verdict and v.best["final_test_accuracy"] == []
    assert summaries[0].final_test_accuracy.ci95 is None
    assert report.verdict_best_rows(summaries, v).get("test acc %") is None
    text = render(report.summary_table(summaries, TARGET, verdict=v))
    assert "no verdict, only values" in text
    assert v.headline.startswith("1 seed per optimizer: values only")


def test_undecided_pairs_say_how_many_seeds_would_decide_them():
    accs = {"adam": [90.0, 91.5, 89.0, 92.0], "sgd": [89.0, 91.8, 88.6, 91.2]}
    trials = [trial(lab, s, a) for lab, vals in accs.items() for s, a in enumerate(vals)]
    v = analyze(trials, reference="adam")
    r = v.pair("final_test_accuracy", "sgd", "adam")
    assert r is not None and r.outcome == "undecided" and r.seeds_to_decide is not None
    assert r.seeds_to_decide > 4
    d = [x - y for x, y in zip(accs["sgd"], accs["adam"], strict=True)]
    sd = statistics.stdev(d)
    assert r.seeds_to_decide == stats.seeds_to_decide(sum(d) / 4, sd, 0.5, 0.05)
    assert f"about {r.seeds_to_decide} seeds would decide" in v.headline
    assert report.outcome_cell(v, "sgd", "adam") == f"undecided ({r.seeds_to_decide})"


def test_pair_flips_orientation():
    trials = [t for s in range(3) for t in (trial("x", s, 80.0 + s * s), trial("y", s, 70.0 + s))]
    v = analyze(trials)
    xy, yx = v.pair("final_test_accuracy", "x", "y"), v.pair("final_test_accuracy", "y", "x")
    assert xy is not None and yx is not None and yx.mean_diff == -xy.mean_diff
    assert (xy.better, yx.better) == ("a", "b") and yx.ci95 == [-xy.ci95[1], -xy.ci95[0]]
    assert (xy.outcome, yx.outcome) == ("better", "worse")
    v.reference = "y"
    assert report.delta_cell(v, "x", "y") == "+10.7 [+7.8, +13.5]"
    assert verdict.Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    steps = v.pair("steps_to_target", "y", "x")
    assert steps is not None and steps.scale == "ratio" and steps.estimate == pytest.approx(1.0)


def test_a_broken_or_diverged_label_is_never_best():
    broken = [2.3] * 6  # never learns: smallest gap, never reaches the target
    trials = []
    for s in range(6):
        trials += [trial("adam", s, 90.0 + s % 3), trial("sgd", s, 9.0 + s % 2, losses=broken)]
        trials.append(trial("gone", s, 95.0, losses=[2.0, math.inf], status="diverged"))
        trials.append(trial("lucky", s, 99.0) if s == 0 else trial("lucky", s, 0.0, status="failed"))
    for t in trials:
        if t.label == "sgd":
            t.evals[0].train_eval_accuracy = t.evals[0].test_accuracy  # no gap at all
    v = analyze(trials, settings=verdict.Settings(test_size=359))
    marked = {label for labels in v.best.values() for label in labels}
    assert marked <= {"adam"}  # sgd (worse in accuracy), gone (diverged), lucky (1 of 6 seeds): never
    assert v.best["final_test_accuracy"] == ["adam"] and v.top() == {"adam"}
    summaries = metrics.summarize(trials, TARGET)
    rows = report.verdict_best_rows(summaries, v)
    names = [s.optimizer for s in summaries]
    assert all(names[i] == "adam" for cells in rows.values() for i in cells)  # the state column too


def test_sequential_settings_levels_and_the_stopping_rule():
    accs = {"adam": [90.0, 92.0, 91.0, 93.0, 90.5, 91.5], "sgd": [80.0, 81.0, 82.0, 80.5, 79.0, 81.5]}
    trials = [trial(lab, s, a) for lab, vals in accs.items() for s, a in enumerate(vals)]
    seeds = {"mode": "sequential", "min": 3, "max": 20, "step": 3, "spending": "pocock", "looks": [3, 6]}
    settings = verdict.Settings.of_run({"reference": "adam"}, {"data": {"test_size": 359}}, seeds)
    assert settings.design is not None and settings.looks == [3, 6] and settings.test_size == 359
    v = analyze(trials, settings=settings)
    r = v.pair("final_test_accuracy", "sgd", "adam")
    level = settings.design.level([3, 6])  # one pair: the whole alpha
    assert r is not None and r.ci_level == pytest.approx(1 - level) and r.outcome == "worse"
    assert v.seeds["mode"] == "sequential" and v.seeds["looks"] == [3, 6] and v.seeds["stopped"] == "max"
    assert v.families[0]["method"] == "group-sequential+bonferroni"
    assert verdict.undecided_pairs(trials, TARGET, settings) == []
    noise = [0.3, -0.5, 0.9]
    close = [trial(lab, s, 90.0 + s + (noise[s] if lab == "b" else 0.0)) for s in range(3) for lab in "ab"]
    three = verdict.Settings(reference="a", design=settings.design, looks=[3])
    assert verdict.undecided_pairs(close, TARGET, three) == [("a", "b")]


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
    assert {"comparisons", "best", "reference", "primary", "headline", "families", "seeds"} <= set(payload)

    v = verdict.analyze(trials, summaries, target)
    v.comparisons[0].p_value = 0.123  # a stored verdict is read back, not recomputed
    new_run = RunData(tmp_path / "new", {"name": "new"}, env, trials, summaries, target)
    new_run.verdict = v
    store.save_run(new_run, {})
    new = store.load_run(tmp_path / "new")
    assert new.verdict == v and "comparisons" not in new.extra

    res = CliRunner().invoke(app, ["report", str(tmp_path / "old"), "--no-plot", "--reference", "y"])
    assert res.exit_code == 0, res.output
    assert "Δ vs y" in res.output and "+10.7 [+7.8, +13.5]" in res.output and "better" in res.output
    assert res.output.startswith("Test accuracy vs y (3 seeds): x better: +10.7 [+7.8, +13.5]")
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


def test_identical_pair_is_equivalent_and_broken_optimizer_loses_end_to_end(tmp_path: Path, one_thread):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(DIGITS_RECIPE.format(reference="reference: adam-a\n"))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["compare", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert data["reference"] == "adam-a" and data["primary"] == "final_test_accuracy"
    assert data["best"]["final_test_accuracy"] == ["adam-a", "adam-b"]
    assert "broken" not in {label for labels in data["best"].values() for label in labels}
    acc = {(c["a"], c["b"]): c for c in data["comparisons"] if c["metric"] == "final_test_accuracy"}
    same = acc["adam-a", "adam-b"]
    assert same["identical"] and same["outcome"] == "equivalent"
    assert same["p_value"] == 1.0 and same["n"] == 5
    for a in ("adam-a", "adam-b"):
        c = acc[a, "broken"]
        assert c["outcome"] == "better" and c["better"] == "a"
        assert c["p_adjusted"] < 0.05 and c["mean_diff"] > 0
        assert -100.0 <= c["ci95"][0] <= c["ci95"][1] <= 100.0
    for metric in verdict.METRICS:
        assert sum(c["metric"] == metric for c in data["comparisons"]) == 3
    assert data["headline"].startswith("Test accuracy vs adam-a (5 seeds): broken worse: ")
    assert "adam-b equivalent within ±0.5 pts" in data["headline"]
    assert data["seeds"] == {"mode": "fixed", "n": 5}
    assert [f["role"] for f in data["families"]].count("primary") == 1
    assert all(len(s["final_test_accuracy"]["ci95"]) == 2 for s in data["summary"])
    assert all(0.0 <= x <= 100.0 for s in data["summary"] for x in s["final_test_accuracy"]["ci95"])
    assert not _negative_zeros(data) and not re.search(r"-0\.0+\b(?![1-9])", res.output)
    csv_header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"final_test_accuracy_ci95_lo", "final_test_accuracy_ci95_hi"} <= set(csv_header)

    lines = res.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Test accuracy vs adam-a"))
    assert first < next(i for i, line in enumerate(lines) if "┃ optimizer" in line)  # the headline first
    run = store.load_run(out)
    bold = report.verdict_best_rows(run.summaries, run.verdict)
    assert bold["test acc %"] == {0, 1}  # both adams in bold green, the broken one nowhere
    assert all(2 not in rows for rows in bold.values())
    text = render(report.summary_table(run.summaries, run.target, verdict=run.verdict))
    rows = [r.split("│") for r in text.splitlines() if r.startswith("│")]
    cells = {r[1].split()[0]: (r[3].strip(), r[4].strip()) for r in rows}
    assert cells["adam-a"] == ("ref", "") and cells["adam-b"][1] == "equivalent"
    assert cells["broken"][0].startswith("-") and cells["broken"][1] == "worse"

    res = CliRunner().invoke(app, ["report", str(out), "--json", "--no-plot"])
    payload = json.loads(res.stdout)
    assert payload["best"] == data["best"] and payload["comparisons"] == data["comparisons"]
    assert payload["headline"] == data["headline"]


def _negative_zeros(value) -> list:
    """Every float -0.0 in a JSON document."""
    if isinstance(value, float):
        return [value] if value == 0.0 and math.copysign(1.0, value) < 0 else []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [z for v in items for z in _negative_zeros(v)]


def test_a_two_seed_run_never_marks_a_broken_optimizer_best(tmp_path: Path, one_thread):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: broken2\nmodel: {name: test_resnet}\ndataset: {name: digits, image_size: 8}\n"
        "budget: {steps: 30, batch_size: 32, eval_every: 30}\nseeds: 2\ndevice: cpu\nreference: adam\n"
        "optimizers:\n  - {name: adam, lr: 1.0e-2}\n  - {name: sgd, lr: 1.0e-6}\n"
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["compare", str(recipe), "--out", str(out), "--wide"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert "sgd" not in {label for labels in data["best"].values() for label in labels}
    run = store.load_run(out)
    bold = report.verdict_best_rows(run.summaries, run.verdict)
    sgd = [s.optimizer for s in run.summaries].index("sgd")
    assert all(sgd not in rows for rows in bold.values())  # every column, the state column too


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
    assert payload["headline"] == data["headline"] and payload["families"] == data["families"]
