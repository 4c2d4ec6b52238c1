"""report.py: run folder round trip, CSV, PNG, partial runs, the table, progress, and `adacli report`."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from rich.console import Console
from typer.testing import CliRunner

from adacli.analysis import metrics, verdict
from adacli.cli import app
from adacli.errors import InputError
from adacli.recipe import TargetSpec
from adacli.report import tables as report
from adacli.results import SCHEMA_VERSION, EvalPoint, TrialResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_trial(label: str, seed: int, losses: list[float], accs: list[float], *, status: str = "ok"):
    """A hand-made trial: evals every 2 steps with the given test accuracies; train-eval = test + 3."""
    evals = [
        EvalPoint(
            step=2 * (i + 1),
            seconds=0.02 * (i + 1) + 0.001 * seed,
            train_eval_loss=0.5 / (i + 1),
            train_eval_accuracy=a + 3.0,
            test_loss=0.6 / (i + 1),
            test_accuracy=a,
        )
        for i, a in enumerate(accs)
    ]
    return TrialResult(
        label=label,
        optimizer=label.split("-")[0],
        optimizer_class=f"torch.optim.{label.title()}",
        hparams={"lr": 0.01, "betas": [0.9, 0.999]},
        seed=seed,
        status=status,  # type: ignore[arg-type]
        losses=losses,
        times=[0.01 * (i + 1) + 0.001 * seed for i in range(len(losses))],
        evals=evals,
        step_time_ms=10.0 + seed,
        optimizer_step_ms=2.0 + seed,
        state_bytes=4096,
        peak_memory_bytes=1 << 20,
    )


def make_trials() -> list[TrialResult]:
    down = [2.0, 1.5, 1.0, 0.7, 0.5, 0.4]
    return [
        make_trial("adabelief", 0, down, [50.0, 70.0, 80.0]),
        make_trial("adam", 0, [x * 1.3 for x in down], [45.0, 66.0, 77.0]),
        make_trial("adabelief", 1, [x * 1.05 for x in down], [52.0, 72.0, 82.0]),
        make_trial("adam", 1, [x * 1.2 for x in down], [44.0, 65.0, 75.0]),
        make_trial("sgd", 0, [2.0, 40.0, math.inf], [10.0], status="diverged"),
    ]


RECIPE = {"name": "unit", "target": {"metric": "train_loss", "value": None}, "seeds": 2}
ENV = {"python": "3", "torch": "x", "device": "cpu"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One saved run shared by the read-only tests (drawing the PNG is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("saved")
    trials = make_trials()
    target = metrics.resolve_target(trials, TargetSpec())
    summaries = metrics.summarize(trials, target)
    report.save_run(
        tmp_path / "run", recipe=RECIPE, environment=ENV, trials=trials, summaries=summaries, target=target
    )
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
        assert set(s["adam"][key]) == {"mean", "std", "n", "ci95"}
    assert s["adabelief"]["final_test_accuracy"]["mean"] == pytest.approx(81.0)  # percent
    assert s["adabelief"]["generalization_gap"]["mean"] == pytest.approx(3.0)
    assert s["adabelief"]["step_time_ms"]["mean"] == pytest.approx(10.5)
    assert s["sgd"]["n_diverged"] == 1 and s["sgd"]["final_test_accuracy"]["mean"] is None
    assert data["target"]["source"] == "default" and data["target"]["value"] > 0


def test_load_run_round_trip(run_dir):
    trials = make_trials()
    run = report.load_run(run_dir)
    assert run.status == "complete" and run.recipe == RECIPE and run.environment == ENV
    assert len(run.trials) == 5
    for got, want in zip(run.trials[:4], trials[:4], strict=True):
        assert got == want
    assert run.trials[4].losses[:2] == [2.0, 40.0] and math.isinf(run.trials[4].losses[2])
    target = metrics.resolve_target(trials, TargetSpec())
    assert run.target == target
    expected = metrics.summarize(trials, target)
    verdict.add_ci95(expected)  # a folder saved without intervals gains them when loaded
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


def test_curves_png_is_a_valid_png(run_dir):
    from matplotlib.image import imread

    data = (run_dir / "curves.png").read_bytes()
    assert data[:8] == PNG_MAGIC
    img = imread(run_dir / "curves.png")
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert img.std() > 0.01  # not a blank canvas


def test_partial_run_from_trial_files(tmp_path):
    d = tmp_path / "partial"
    report.start_run(d, recipe=RECIPE, environment=ENV)
    started = report.load_run(d)
    assert started.status == "interrupted" and started.trials == [] and started.summaries == []
    trials = make_trials()
    paths = [report.write_trial(d, t, index=i) for i, t in enumerate(trials[:3])]
    assert paths[0].name == "000-adabelief-seed0.json"
    run = report.load_run(d)  # a killed run: results.json says running, trials/ holds 3 files
    assert run.status == "interrupted"
    assert [(t.label, t.seed) for t in run.trials] == [("adabelief", 0), ("adam", 0), ("adabelief", 1)]
    assert [s.optimizer for s in run.summaries] == ["adabelief", "adam"]
    assert run.summaries[0].n_trials == 2 and run.target is not None and run.target.value is not None
    # without results.json at all, the trial files are still enough
    (d / "results.json").unlink()
    assert len(report.load_run(d).trials) == 3
    # a recipe target is honoured when the summary must be recomputed
    report.start_run(d, recipe={"target": {"metric": "train_loss", "value": 0.123}}, environment={})
    assert report.load_run(d).target.value == 0.123


def test_load_run_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="run folder not found"):
        report.load_run(tmp_path / "missing")
    with pytest.raises(InputError, match="not an adacli run folder"):
        report.load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema_version": 1,\n "trials": [}')
    with pytest.raises(InputError, match="not valid JSON") as e:
        report.load_run(tmp_path)
    assert e.value.line == 2 and e.value.exit_code == 2
    (tmp_path / "results.json").write_text('{"schema_version": 1, "recipe": {}, "environment": {}}')
    with pytest.raises(InputError, match="trials"):
        report.load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema_version": 99, "recipe": {}, "environment": {}}')
    with pytest.raises(InputError, match="newer adacli"):
        report.load_run(tmp_path)


def render(table) -> str:
    console = Console(record=True, width=250, force_terminal=True, color_system="truecolor")
    console.print(table)
    return console.export_text(styles=False)


def test_summary_table_rows_censoring_and_best(run_dir):
    run = report.load_run(run_dir)
    table = report.summary_table(run.summaries, run.target, title="unit")
    text = render(table)
    assert "adabelief" in text and "adam" in text and "sgd" in text
    assert "81.0 ± 1.4" in text  # adabelief final test accuracy, mean ± sample std
    assert ">budget (0/1)" in text  # sgd diverged: censored
    assert "(1 diverged)" in text
    assert run.target.description in text  # target stated under the table
    best = report.best_rows(run.summaries)
    assert best["test acc %"] == {0}  # adabelief 81 vs adam 76
    assert "step ms" not in best and "state" not in best  # every row ties: nothing stands out
    assert best["steps to target"] == {0}  # adabelief reaches the default target first
    assert "sgd" not in {run.summaries[i].optimizer for i in best["test acc %"]}
    # the highlight is on the cell
    cells = list(table.columns[1].cells)
    assert cells[0].style == "bold green" and cells[1].style == ""


def test_summary_table_partial_reach_and_format_helpers():
    a = make_trial("a", 0, [2.0, 0.0, 0.0, 0.0], [80.0])
    b = make_trial("a", 1, [2.0, 1.9, 1.8], [70.0])
    target = metrics.resolve_target([a, b], TargetSpec(value=1.0))
    (s,) = metrics.summarize([a, b], target)
    text = render(report.summary_table([s], target))
    assert "(1/2)" in text
    assert report.format_bytes(4096) == "4.0 KiB" and report.format_bytes(None) == "–"
    assert report.format_bytes(10) == "10 B"


def test_compare_progress_prints_finished_trials():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    trial = make_trials()[0]
    with report.CompareProgress(console) as p:
        p.trial_started(0, 2, "adabelief", 0)
        for i in range(1000):  # its cost per call is measured in benchmarks/bench_progress.py
            p.step(i + 1, 1000, 0.5)
        p.trial_finished(trial)
        p.trial_started(1, 2, "adam", 1)
        p.step(3, None, 0.25)  # time budget: unknown total
        p.trial_finished(make_trials()[4])
    out = buf.getvalue()
    assert "done adabelief seed 0: 6 steps" in out
    assert "test acc 80.00%" in out
    assert "diverged sgd seed 0" in out
    assert (p.started, p.finished) == (2, 2)
    with report.CompareProgress(console, disable=True) as q:
        q.trial_started(0, 1, "x", 0)
        q.step(1, 1, 0.1)
        q.trial_finished(trial)


def test_environment_info_cpu():
    info = report.environment_info("cpu")
    for key in ("python", "torch", "timm", "adacli", "device", "device_name", "torch_threads", "platform"):
        assert key in info
    assert info["device"] == "cpu" and info["torch_threads"] >= 1 and info["timm"]
    json.dumps(info)


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


def test_best_rows_ties_all_win_unless_everyone_ties():
    trials = [
        make_trial("a", 0, [1.0, 0.5], [80.0]),
        make_trial("b", 0, [1.0, 0.5], [80.0]),
        make_trial("c", 0, [1.0, 0.9], [70.0]),
    ]
    target = metrics.resolve_target(trials, TargetSpec(value=0.8))
    best = report.best_rows(metrics.summarize(trials, target))
    assert best["test acc %"] == {0, 1}
    assert best["mean loss"] == {0, 1}
    assert "state" not in best  # 4 KiB everywhere
    assert report.best_rows(metrics.summarize(trials[:1], target)) == {}


def test_plot_curves_edge_cases(tmp_path):
    import warnings

    uneven = [  # a time budget: seeds run different numbers of steps
        make_trial("t", 0, [2.0, 1.5, 1.0, 0.8], [50.0, 60.0]),
        make_trial("t", 1, [2.0, 1.4, 1.1], [55.0]),
    ]
    no_evals = make_trial("n", 0, [2.0, 1.0], [])
    no_evals.times = []
    boom = make_trial("b", 0, [2.0, math.nan], [], status="diverged")
    cases = [[*uneven, no_evals, boom], [boom], []]
    for i, trials in enumerate(cases):
        path = tmp_path / f"c{i}.png"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            report.plot_curves(trials, path, target=None)
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob("*.tmp.png"))
