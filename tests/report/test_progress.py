"""The live display of a run: worker rows, one line per finished trial, notes; disabled it only counts."""

from __future__ import annotations

import io

from helpers import make_trials
from rich.console import Console

from adacli.report.progress import RunProgress
from adacli.run.executors import ProgressEvent
from adacli.run.plan import TrialTask


def test_run_progress_prints_finished_trials_and_notes():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    ok, _, _, _, diverged = make_trials()
    final = TrialTask(0, "adabelief", "adabelief", "adabelief", {}, 0)
    with RunProgress(console) as p:
        p.plan(3)
        p.event(ProgressEvent("start", "w0", 0, "adabelief", 0))
        for i in range(1000):  # its cost per call is measured in benchmarks/bench_progress.py
            p.event(ProgressEvent("step", "w0", 0, "adabelief", 0, i + 1, 1000, 0.5))
        p.event(ProgressEvent("step", "w0", 0, "adabelief", 0, 3, None, float("nan")))  # time budget, NaN
        p.finished(final, ok, reused=False)
        p.finished(TrialTask(1, "sgd", "sgd", "sgd", {}, 0), diverged, reused=False)
        p.finished(final, ok, reused=True)  # reused: counted, not printed again
        p.note("resume: 1 finished trial(s) in runs/x")
    out = buf.getvalue()
    assert "done adabelief seed 0: 6 steps" in out and "test acc 80.00%" in out
    assert "diverged sgd seed 0" in out and out.count("done adabelief") == 1
    assert "resume: 1 finished trial(s) in runs/x" in out
    assert (p.ran, p.reused) == (2, 1)


def test_disabled_run_progress_only_counts():
    buf = io.StringIO()
    trial = make_trials()[0]
    with RunProgress(Console(file=buf), disable=True) as q:
        q.plan(1)
        q.event(ProgressEvent("start", "main", 0, "x", 0))
        q.finished(TrialTask(0, "x", "x", "x", {}, 0), trial, reused=False)
        q.note("hidden")
    assert buf.getvalue() == "" and q.ran == 1
