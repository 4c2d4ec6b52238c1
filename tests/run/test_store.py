"""The run-folder store: results.json round trip, summary.csv, runs cut short, load errors, `report`."""

from __future__ import annotations

import csv
import json
import math

import pytest
from helpers import ENV, PNG_MAGIC, RECIPE, make_trials
from typer.testing import CliRunner

from adacli.analysis import metrics, verdict
from adacli.cli import app
from adacli.errors import InputError
from adacli.recipe import TargetSpec
from adacli.results import SCHEMA_VERSION
from adacli.run import store
from adacli.run.save import rendered_files
from adacli.run.store import RunData


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One saved run shared by the read-only tests (drawing the PNG is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("saved")
    trials = make_trials()
    target = metrics.resolve_target(trials, TargetSpec())
    summaries = metrics.summarize(trials, target)
    run = RunData(tmp_path / "run", RECIPE, ENV, trials, summaries, target)
    store.save_run(run, rendered_files(run))
    return tmp_path / "run"


def test_save_run_writes_strict_json_with_the_documented_layout(run_dir):
    text = (run_dir / "results.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert list(data) == ["schema_version", "status", "recipe", "environment", "trials", "summary", "target"]
    assert data["schema_version"] == SCHEMA_VERSION and data["status"] == "complete"
    assert data["recipe"] == RECIPE and data["environment"] == ENV
    assert [t["label"] for t in data["trials"]] == ["adabelief", "adam", "adabelief", "adam", "sgd"]
    assert data["trials"][4]["losses"][2] == "Infinity"  # diverged loss kept, as strict JSON
    assert data["trials"][0]["hparams"] == {"lr": 0.01, "betas": [0.9, 0.999]}
    s = {e["optimizer"]: e for e in data["summary"]}
    assert list(s) == ["adabelief", "adam", "sgd"]
    for key in ("final_test_accuracy", "generalization_gap", "steps_to_target", "seconds_to_target"):
        assert set(s["adam"][key]) == {"mean", "std", "n", "ci95", "ci95_clipped"}
    assert s["adabelief"]["final_test_accuracy"]["mean"] == pytest.approx(81.0)  # percent
    assert s["adabelief"]["generalization_gap"]["mean"] == pytest.approx(3.0)
    assert s["adabelief"]["step_time_ms"]["mean"] == pytest.approx(10.5)
    assert s["sgd"]["n_diverged"] == 1 and s["sgd"]["final_test_accuracy"]["mean"] is None
    assert data["target"]["source"] == "default" and data["target"]["value"] > 0


def test_load_run_round_trip(run_dir):
    trials = make_trials()
    run = store.load_run(run_dir)
    assert run.status == "complete" and run.recipe == RECIPE and run.environment == ENV
    assert len(run.trials) == 5
    for got, want in zip(run.trials[:4], trials[:4], strict=True):
        assert got == want
    assert run.trials[4].losses[:2] == [2.0, 40.0] and math.isinf(run.trials[4].losses[2])
    target = metrics.resolve_target(trials, TargetSpec())
    assert run.target == target
    expected = metrics.summarize(trials, target)
    rules = verdict.rules_for(verdict.Settings.of_run(RECIPE, ENV), trials)
    verdict.add_ci95(expected, rules)  # a folder saved without intervals gains them when loaded
    assert run.summaries == expected


def test_summary_csv_content(run_dir):
    with open(run_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["optimizer"] for r in rows] == ["adabelief", "adam", "sgd"]
    ab = rows[0]
    assert float(ab["final_test_accuracy_mean"]) == pytest.approx(81.0)
    assert float(ab["final_test_accuracy_std"]) == pytest.approx(math.sqrt(2.0))
    assert ab["final_test_accuracy_n"] == "2"
    assert float(ab["reached_fraction"]) == 1.0
    assert json.loads(ab["hparams"]) == {"betas": [0.9, 0.999], "lr": 0.01}
    assert rows[2]["n_diverged"] == "1" and rows[2]["final_test_accuracy_mean"] == ""
    assert rows[2]["steps_to_target_n"] == "0"


def test_partial_run_from_trial_files(tmp_path):
    d = tmp_path / "partial"
    store.start_run(d, recipe=RECIPE, environment=ENV)
    started = store.load_run(d)
    assert started.status == "interrupted" and started.trials == [] and started.summaries == []
    trials = make_trials()
    names = [f"{i:03d}-{t.label}-seed{t.seed}.json" for i, t in enumerate(trials[:3])]
    paths = [store.write_trial(d / "trials" / name, t) for name, t in zip(names, trials, strict=False)]
    assert paths[0].name == "000-adabelief-seed0.json" and paths[0].is_file()
    run = store.load_run(d)  # a killed run: results.json says running, trials/ holds 3 files
    assert run.status == "interrupted"
    assert [(t.label, t.seed) for t in run.trials] == [("adabelief", 0), ("adam", 0), ("adabelief", 1)]
    assert [s.optimizer for s in run.summaries] == ["adabelief", "adam"]
    assert run.summaries[0].n_trials == 2 and run.target is not None and run.target.value is not None
    # without results.json at all, the trial files are still enough
    (d / "results.json").unlink()
    assert len(store.load_run(d).trials) == 3
    # a recipe target is honoured when the summary must be recomputed
    store.start_run(d, recipe={"target": {"metric": "train_loss", "value": 0.123}}, environment={})
    assert store.load_run(d).target.value == 0.123


def test_load_run_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="run folder not found"):
        store.load_run(tmp_path / "missing")
    with pytest.raises(InputError, match="not an adacli run folder"):
        store.load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema_version": 1,\n "trials": [}')
    with pytest.raises(InputError, match="not valid JSON") as e:
        store.load_run(tmp_path)
    assert e.value.line == 2 and e.value.exit_code == 2
    (tmp_path / "results.json").write_text('{"schema_version": 1, "recipe": {}, "environment": {}}')
    with pytest.raises(InputError, match="trials"):
        store.load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema_version": 99, "recipe": {}, "environment": {}}')
    with pytest.raises(InputError, match="newer adacli"):
        store.load_run(tmp_path)


def test_report_cli_table_json_and_errors(run_dir, tmp_path):
    (run_dir / "curves.png").unlink()
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run_dir)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "adabelief" in res.output and ">budget" in res.output and "target:" in res.output
    assert (run_dir / "curves.png").read_bytes()[:8] == PNG_MAGIC  # re-drawn
    res = runner.invoke(app, ["report", str(run_dir), "--json", "--no-plot"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [s["optimizer"] for s in data["summary"]] == ["adabelief", "adam", "sgd"]
    assert data["status"] == "complete" and data["target"]["source"] == "default"
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "run folder not found" in res.output
    assert "Traceback" not in res.output


