"""The terminal's tables: rows, censoring, the best marks and the format helpers."""

from __future__ import annotations

import pytest
from helpers import ENV, RECIPE, make_trial, make_trials, one_line, render

from adacli.analysis import metrics
from adacli.recipe import TargetSpec
from adacli.report.tables import best_rows, format_bytes, summary_table
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


def test_summary_table_rows_censoring_and_best(run_dir):
    run = store.load_run(run_dir)
    table = summary_table(run.summaries, run.target, title="unit")
    text = render(table)
    assert "adabelief" in text and "adam" in text and "sgd" in text
    assert "81.0 ± 1.4" in text  # adabelief final test accuracy, mean ± sample std
    assert ">budget (0/1)" in text  # sgd diverged: censored
    assert "(1 diverged)" in text
    assert run.target.description in one_line(text)  # target stated under the table
    best = best_rows(run.summaries)
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
    text = render(summary_table([s], target))
    assert "(1/2)" in text
    assert format_bytes(4096) == "4.0 KiB" and format_bytes(None) == "–"
    assert format_bytes(10) == "10 B"


def test_best_rows_ties_all_win_unless_everyone_ties():
    trials = [
        make_trial("a", 0, [1.0, 0.5], [80.0]),
        make_trial("b", 0, [1.0, 0.5], [80.0]),
        make_trial("c", 0, [1.0, 0.9], [70.0]),
    ]
    target = metrics.resolve_target(trials, TargetSpec(value=0.8))
    best = best_rows(metrics.summarize(trials, target))
    assert best["test acc %"] == {0, 1}
    assert best["mean loss"] == {0, 1}
    assert "state" not in best  # 4 KiB everywhere
    assert best_rows(metrics.summarize(trials[:1], target)) == {}


