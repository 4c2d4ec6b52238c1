"""report.html and the Markdown verdicts: content, escaping, statistics, gate, suite page, GFM syntax, the
CLI flags, and that `adacli gate`/`adacli report` never import torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adacli.analysis import metrics
from adacli.app.suite import rendered_suite_files
from adacli.ci import baselines, gate
from adacli.cli import app
from adacli.recipe import TargetSpec
from adacli.report.html import render_run, render_suite
from adacli.report.markdown import gate_markdown, run_markdown
from adacli.results import EvalPoint, TrialResult
from adacli.run import store
from adacli.run.save import rendered_files
from adacli.run.store import GATE_JSON, REPORT_HTML, RunData

EVIL = "evil<script>alert(1)</script>|x"  # a label that must come out escaped in HTML and Markdown
PLOTS = ("loss-steps", "loss-seconds", "accuracy-steps", "accuracy-seconds", "gap-steps")


def trial(label: str, seed: int, scale: float, accs: list[float], status: str = "ok") -> TrialResult:
    losses = [2.0 * scale / (i + 1) for i in range(8)]
    evals = [EvalPoint(2 * (i + 1), 0.02 * (i + 1), 0.5, a + 2.0 + seed, 0.6, a) for i, a in enumerate(accs)]
    return TrialResult(
        label=label,
        optimizer=label,
        optimizer_class="torch.optim.adam.Adam",
        hparams={"lr": 0.01, "betas": [0.9, 0.999]},
        seed=seed,
        status=status,  # type: ignore[arg-type]
        losses=losses if status == "ok" else [2.0, 1.9],
        times=[0.01 * (i + 1) for i in range(8 if status == "ok" else 2)],
        evals=evals,
        step_time_ms=10.0,
        optimizer_step_ms=2.0,
        state_bytes=4096,
        peak_memory_bytes=1 << 20,
        error="boom" if status == "failed" else None,
    )


def trials() -> list[TrialResult]:
    return [
        trial("adam", 0, 1.0, [50.0, 70.0, 80.0, 82.0]),
        trial(EVIL, 0, 1.3, [45.0, 66.0, 77.0, 78.0]),
        trial("adam", 1, 1.1, [52.0, 72.0, 81.0, 83.0]),
        trial(EVIL, 1, 1.2, [44.0, 65.0, 75.0, 76.0]),
        trial("sgd", 0, 1.0, [10.0], status="failed"),
    ]


RECIPE = {
    "name": "unit",
    "model": {"name": "test_resnet"},
    "dataset": {"name": "digits"},
    "target": {"metric": "train_loss", "value": None},
    "optimizers": [{"name": "adam", "lr": 0.01}, {"name": "adam", "label": EVIL}, {"name": "sgd"}],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    ts = trials()
    target = metrics.resolve_target(ts, TargetSpec())
    out = tmp_path_factory.mktemp("html") / "run"
    run = RunData(out, RECIPE, {"torch": "x", "device": "cpu"}, ts, metrics.summarize(ts, target), target)
    store.save_run(run, rendered_files(run))
    return out


def test_save_run_writes_a_self_contained_escaped_page(run_dir):
    page = (run_dir / REPORT_HTML).read_text()
    assert page.startswith("<!DOCTYPE html>")
    for label in ("adam", "sgd"):
        assert f'data-row="{label}"' in page
    for plot in PLOTS:
        assert f'data-plot="{plot}"' in page
    # nothing to fetch: no external script/style/image, every URL is an SVG namespace or a local anchor
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import", page)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert "<script>alert" not in page and "evil&lt;script&gt;alert(1)&lt;/script&gt;|x" in page
    assert "boom" in page and "failed" in page  # the failed trial's error
    assert "<b>0.01</b>" in page  # lr set by the recipe, in bold; betas is a default
    assert "name: unit" in page  # the recipe as YAML


def test_statistics_keys_show_ci_best_delta_outcome_and_pairs(run_dir):
    data = json.loads((run_dir / "results.json").read_text())
    data["summary"][0]["final_test_accuracy"]["ci95"] = [80.1, 100.0]
    data["summary"][0]["final_test_accuracy"]["ci95_clipped"] = [False, True]
    data["best"] = {"final_test_accuracy": ["adam"]}
    data["reference"] = "adam"
    data["primary"] = "final_test_accuracy"
    data["headline"] = f"Test accuracy vs adam (2 seeds): {EVIL} worse: -5.5 [-10.0, -1.0] pts."
    data["comparisons"] = [
        {
            "metric": "final_test_accuracy", "a": "adam", "b": EVIL, "n": 2, "mean_diff": 5.5,
            "estimate": 5.5, "scale": "difference", "ci95": [1.0, 10.0], "p_value": 0.01,
            "p_adjusted": 0.02, "significant": True, "test": "paired-t", "wilcoxon_p": None,
            "censored": 0, "better": "a", "outcome": "better", "seeds_to_decide": None,
        },
        {
            "metric": "steps_to_target", "a": "adam", "b": EVIL, "n": 2, "mean_diff": -4.0,
            "estimate": 0.8, "scale": "ratio", "ci95": [0.7, 0.9], "p_value": 4.737e-15,
            "p_adjusted": 9.5e-15, "significant": True, "test": "paired-t", "wilcoxon_p": None,
            "censored": 1, "better": "a", "outcome": "better", "seeds_to_decide": None,
        },
    ]  # fmt: skip
    page = render_run(data, trials())
    assert "CI [80.1, 100.0†]" in page and "★ 82.5" in page  # the clipped end is marked
    assert "-5.5 [-10.0, -1.0]" in page and ">worse<" in page  # EVIL − adam, oriented against the reference
    assert page.index('id="headline"') < page.index('id="verdict"')  # the headline first
    assert f"{EVIL} worse" not in page and "&lt;script&gt;" in page  # escaped
    assert 'id="comparisons"' in page and "×0.80 [0.70, 0.90]" in page
    assert not re.search(r">[^<]*e-15", page) and "&lt;0.001" in page  # no raw floats shown (sort keys aside)
    md = run_markdown(data)
    assert "**82.5 ± 0.7**" in md and "-5.5 [-10.0, -1.0] worse" in md
    assert md.index("Test accuracy vs adam") < md.index("| optimizer")
    check_gfm(md)
    plain = render_run(json.loads((run_dir / "results.json").read_text()), trials())
    assert "★" not in plain and 'id="comparisons"' not in plain and 'id="headline"' not in plain


def test_gate_json_is_shown_and_gate_markdown(run_dir, tmp_path):
    run = store.load_run(run_dir)
    base_file = baselines.save_baseline(baselines.baseline_from_run(run, run_dir), tmp_path / "base.json")
    result = gate.gate_run(run, baselines.load_baseline(base_file), gate.tolerances_for(run.recipe))
    result.checks[0].verdict = "fail"
    result.checks[0].detail = "a | b"
    page = render_run(json.loads((run_dir / "results.json").read_text()), run.trials, result.to_dict())
    assert 'class="banner fail"' in page and 'id="gate"' in page
    md = gate_markdown(result.to_dict())
    assert md.startswith("### ❌ regression gate: 1 regression") and "a \\| b" in md
    check_gfm(md)


def check_gfm(md: str) -> int:
    """Assert every table in ``md`` follows GFM: a header row, a delimiter row with as many cells, rows
    with as many cells (unescaped pipes split cells). Returns the number of tables."""

    def cells(line: str) -> list[str]:
        assert line.startswith("|") and line.endswith("|"), line
        return re.split(r"(?<!\\)\|", line[1:-1])

    lines, n_tables, i = md.splitlines(), 0, 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        header = cells(lines[i])
        delim = cells(lines[i + 1])
        assert len(delim) == len(header) and all(re.fullmatch(r" *:?-{3,}:? *", d) for d in delim), lines[
            i + 1
        ]
        i += 2
        while i < len(lines) and lines[i].startswith("|"):
            assert len(cells(lines[i])) == len(header), lines[i]
            i += 1
        n_tables += 1
    assert n_tables
    return n_tables


def test_check_gfm_rejects_broken_tables():
    with pytest.raises(AssertionError):
        check_gfm("| a | b |\n| --- |\n| 1 | 2 |")
    with pytest.raises(AssertionError):
        check_gfm("| a | b |\n| --- | --- |\n| 1 | 2 | 3 |")
    with pytest.raises(AssertionError):
        check_gfm("| a | b |\n| 1 | 2 |")


def test_run_markdown_escapes_pipes_and_keeps_columns(run_dir):
    md = run_markdown(json.loads((run_dir / "results.json").read_text()))
    assert check_gfm(md) == 1
    assert "evil&lt;script>alert(1)&lt;/script>\\|x" in md
    assert "| sgd (1 failed) |" in md


SUITE = {
    "kind": "suite",
    "name": "cpu-suite",
    "workloads": [
        {
            "name": "digits-resnet",
            "run_dir": "digits-resnet",
            "recipe": "recipes/quickstart.yaml",
            "status": "complete",
        },
        {"name": "digits-vit", "run_dir": "digits-vit", "recipe": None, "status": "complete"},
    ],
    "profiles": {
        "measure": "steps_to_target",
        "taus": [1.0, 1.5, 2.0, 4.0],
        "curves": {"adam": [0.5, 1.0, 1.0, 1.0], "sgd": [0.5, 0.5, 1.0, 1.0]},
    },
    "scores": {"adam": 0.9, "sgd": 0.7},
    "ranks": {"adam": 1.25, "sgd": 1.75},
    "speedups": {"adam": 1.0, "sgd": 0.8},
    "reference": "adam",
    "wins": {
        "adam": {"sgd": {"win": 1, "tie": 1, "loss": 0}},
        "sgd": {"adam": {"win": 0, "tie": 1, "loss": 1}},
    },
}


def test_suite_page_from_the_contract():
    page = rendered_suite_files(SUITE)[REPORT_HTML]
    assert page == render_suite(SUITE)
    assert '<a href="digits-resnet/report.html">digits-resnet</a>' in page
    assert 'data-plot="profiles"' in page and "1/1/0" in page and "0/1/1" in page
    assert 'data-row="adam"' in page and "speed-up vs adam" in page


def test_cli_report_html_and_markdown(run_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "page.html"
    r = runner.invoke(app, ["report", str(run_dir), "--no-plot", "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert 'data-row="adam"' in out.read_text()
    r = runner.invoke(app, ["report", str(run_dir), "--no-plot", "--markdown", "-"])
    assert r.exit_code == 0 and r.output.startswith("### adacli: unit (complete)"), r.output
    check_gfm(r.output)
    base = tmp_path / "base.json"
    baselines.save_baseline(baselines.baseline_from_run(store.load_run(run_dir), run_dir), base)
    md = tmp_path / "gate.md"
    r = runner.invoke(app, ["gate", str(run_dir), "--baseline", str(base), "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    assert md.read_text().startswith("### ✅ regression gate: no regression")


LAZY = """
import sys
from adacli.cli import app
for argv in {argvs!r}:
    try:
        app(argv)
    except SystemExit as e:
        assert e.code in (0, None), (argv, e.code)
heavy = sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_gate_and_report_do_not_import_torch(run_dir, tmp_path):
    """Judging or re-rendering a JSON run folder needs no torch (seconds of imports otherwise)."""
    base = tmp_path / "base.json"
    baselines.save_baseline(baselines.baseline_from_run(store.load_run(run_dir), run_dir), base)
    argvs = [
        ["gate", str(run_dir), "--baseline", str(base), "--markdown", str(tmp_path / "g.md")],
        ["report", str(run_dir), "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")],
    ]
    proc = subprocess.run([sys.executable, "-c", LAZY.format(argvs=argvs)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert (tmp_path / "r.html").is_file() and (tmp_path / "g.md").is_file()


def test_a_judged_run_keeps_gate_json_and_shows_it_in_the_page(run_dir, tmp_path):
    """What the save step of `compare --baseline` writes: gate.json, and a page with the gate's banner;
    loading the folder back reads the verdict, so `adacli report` draws the same page."""
    import shutil

    folder = shutil.copytree(run_dir, tmp_path / "run")
    run = store.load_run(folder)
    base_file = baselines.save_baseline(baselines.baseline_from_run(run, folder), tmp_path / "b.json")
    result = gate.gate_run(run, baselines.load_baseline(base_file), gate.tolerances_for(run.recipe))
    run.gate = result.to_dict()
    store.save_run(run, rendered_files(run))
    assert json.loads((folder / GATE_JSON).read_text())["passed"] is True
    assert 'class="banner pass"' in (folder / REPORT_HTML).read_text()
    assert store.load_run(folder).gate == json.loads((folder / GATE_JSON).read_text())
