"""curves.png: a real PNG with something drawn, and the edge cases (uneven seeds, no evals, diverged)."""

from __future__ import annotations

import math

import pytest
from helpers import ENV, PNG_MAGIC, RECIPE, make_trial, make_trials

from adacli.analysis import metrics
from adacli.recipe import TargetSpec
from adacli.report.plots import curves_png
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


def test_curves_png_is_a_valid_png(run_dir):
    from matplotlib.image import imread

    data = (run_dir / "curves.png").read_bytes()
    assert data[:8] == PNG_MAGIC
    img = imread(run_dir / "curves.png")
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert img.std() > 0.01  # not a blank canvas


def test_plot_curves_edge_cases():
    import warnings

    uneven = [  # a time budget: seeds run different numbers of steps
        make_trial("t", 0, [2.0, 1.5, 1.0, 0.8], [50.0, 60.0]),
        make_trial("t", 1, [2.0, 1.4, 1.1], [55.0]),
    ]
    no_evals = make_trial("n", 0, [2.0, 1.0], [])
    no_evals.times = []
    boom = make_trial("b", 0, [2.0, math.nan], [], status="diverged")
    cases = [[*uneven, no_evals, boom], [boom], []]
    for trials in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            png = curves_png(trials, target=None)
        assert png[:8] == PNG_MAGIC
