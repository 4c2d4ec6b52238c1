"""report.html in a real browser (headless Chromium, the system's `chromium` package, driven by Playwright):
every optimizer's row and every plot render, the page makes no network request, the console has no error,
and the inline JavaScript (sorting, series toggles) works. A run page with statistics, a gate and a sweep,
and a suite page. The check itself is shown to fail on a page with a row or a plot missing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from adacli.analysis import metrics, verdict
from adacli.recipe import TargetSpec
from adacli.report.html import render_suite
from adacli.results import EvalPoint, TrialResult
from adacli.run import store
from adacli.run.save import rendered_files
from adacli.run.store import REPORT_HTML, RunData

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium installed (Debian: apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')"
)

LABELS = ["adabelief", "adam", "sgd <m>"]
RUN_PLOTS = [
    "loss-steps",
    "loss-seconds",
    "accuracy-steps",
    "accuracy-seconds",
    "gap-steps",
    "lr-sensitivity",
]


def trial(label: str, seed: int, k: float) -> TrialResult:
    evals = [
        EvalPoint(5 * (i + 1), 0.05 * (i + 1), 0.4, 70 + 5 * i + k, 0.5, 68 + 5 * i + k) for i in range(4)
    ]
    return TrialResult(
        label=label,
        optimizer=label.split()[0],
        optimizer_class="torch.optim.adam.Adam",
        hparams={"lr": 0.01},
        seed=seed,
        status="ok",
        losses=[2.0 / (1 + 0.1 * k + i) for i in range(20)],
        times=[0.01 * (i + 1) for i in range(20)],
        evals=evals,
        step_time_ms=1.0,
        optimizer_step_ms=0.1,
        state_bytes=64,
        peak_memory_bytes=None,
    )


SWEEP = {
    "metric": "val_accuracy",
    "val_size": 144,
    "selection_seeds": [0],
    "seeds": [0, 1],
    "optimizers": [
        {
            "label": label,
            "n_configs": 3,
            "axes": {"lr": [0.001, 0.01, 0.1]},
            "chosen": {"lr": 0.01},
            "val_accuracy": 80.0 + i,
            "val_loss": 0.5,
            "configs": [
                {"hparams": {"lr": lr}, "val_accuracy": 70.0 + 10 * j + i, "val_loss": 0.6}
                for j, lr in enumerate([0.001, 0.01, 0.1])
            ],
        }
        for i, label in enumerate(LABELS)
    ],
    "trials": [],
}


@pytest.fixture(scope="module")
def run_page(tmp_path_factory) -> Path:
    """A run folder as save_run writes it, with the statistics keys, a sweep and a gate verdict."""
    ts = [trial(label, seed, i + seed) for seed in (0, 1) for i, label in enumerate(LABELS)]
    target = metrics.resolve_target(ts, TargetSpec())
    run_dir = tmp_path_factory.mktemp("browser") / "run"
    summaries = metrics.summarize(ts, target)
    stats = verdict.analyze(ts, summaries, target, settings=verdict.Settings(reference="adam", test_size=359))
    recipe = {
        "name": "browser",
        "optimizers": [{"name": "adabelief"}, {"name": "adam"}, {"name": "sgd", "label": "sgd <m>"}],
    }
    run = RunData(run_dir, recipe, {"device": "cpu"}, ts, summaries, target)
    run.extra["sweep"] = SWEEP
    run.verdict = stats
    run.gate = {
        "passed": False,
        "n_failed": 1,
        "notes": ["a note"],
        "tolerances": {},
        "checks": [
            {
                "optimizer": "adam",
                "check": "final test accuracy",
                "verdict": "fail",
                "baseline": "80",
                "current": "70",
                "allowed": "-1",
                "detail": "dropped",
            }
        ],
    }
    store.save_run(run, rendered_files(run))
    return run_dir / REPORT_HTML


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """Load ``path`` and return (page, requests other than the page itself, console errors)."""
    page = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    url = path.resolve().as_uri()
    page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    return page, requests, errors


def check_page(browser, path: Path, *, rows: list[str], plots: list[str], table: str = "verdict") -> None:
    """Every row of ``table`` and every plot is visible with a size, each plot drew its lines; no network
    request and no JavaScript error."""
    page, requests, errors = open_page(browser, path)
    try:
        for label in rows:
            row = page.locator(f'#{table} tbody tr[data-row="{label}"]')
            assert row.count() == 1, f"row {label!r} missing from #{table}"
            box = row.bounding_box()
            assert box and box["height"] > 5 and box["width"] > 100, f"row {label!r} not rendered: {box}"
        for name in plots:
            svg = page.locator(f'figure[data-plot="{name}"] svg')
            assert svg.count() == 1, f"plot {name!r} missing"
            box = svg.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, f"plot {name!r} not rendered: {box}"
            lines = page.locator(f'figure[data-plot="{name}"] g[id*="--s"][id$="--line"] path')
            assert lines.count() >= 1, f"plot {name!r} has no series drawn"
        assert requests == [], f"network requests: {requests}"
        assert errors == [], f"console errors: {errors}"
    finally:
        page.close()


def test_run_page_renders_rows_plots_and_sections(browser, run_page):
    check_page(browser, run_page, rows=LABELS, plots=RUN_PLOTS)
    page, _, errors = open_page(browser, run_page)
    assert page.locator("#gate .banner.fail").is_visible()
    assert page.locator('#sweep tbody tr[data-row="adam"]').count() == 1
    assert page.locator("#comparisons tbody tr").count() == 3 * len(verdict.METRICS)
    assert page.locator("#trials tbody tr").count() == 6
    # the series toggle hides adam's line in every plot; the sort reorders the verdict rows
    line = page.locator('g[id="loss-steps--s1--line"]')
    assert line.is_visible()
    page.locator("#toggles input").nth(1).uncheck()
    assert not line.is_visible()
    page.locator("#verdict thead th").first.click()
    page.locator("#verdict thead th").first.click()  # descending
    first = page.locator("#verdict tbody tr").first.get_attribute("data-row")
    assert first == "sgd <m>"
    assert errors == []
    page.close()


def horizontal_overflow(browser, path: Path, width: int = 1280) -> dict[str, int]:
    """At a ``width`` px window: how far the page and the verdict table reach past what is visible
    (0, 0 = no horizontal scroll anywhere the verdict is)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        return page.evaluate(
            """() => {
              const box = document.querySelector('#verdict').parentElement;
              return {page: document.documentElement.scrollWidth - window.innerWidth,
                      verdict: box.scrollWidth - box.clientWidth,
                      headline_above: document.querySelector('#headline').getBoundingClientRect().bottom
                        <= document.querySelector('#verdict').getBoundingClientRect().top ? 1 : 0};
            }"""
        )
    finally:
        page.close()


def test_verdict_table_fits_1280_px_without_horizontal_scroll(browser, run_page, tmp_path):
    """The headline comes first and the verdict table, with its Δ and outcome columns, fits a 1280 px
    window; the same check fails for a table one wide column too many."""
    assert horizontal_overflow(browser, run_page) == {"page": 0, "verdict": 0, "headline_above": 1}
    text = run_page.read_text()
    wide = text.replace("<th>state</th>", "<th>state</th><th>" + "x" * 400 + "</th>", 1)
    (tmp_path / "wide.html").write_text(wide)
    assert horizontal_overflow(browser, tmp_path / "wide.html")["verdict"] > 0


def test_suite_page_renders(browser, tmp_path):
    suite = {
        "kind": "suite",
        "name": "s",
        "reference": "adam",
        "workloads": [{"name": w, "run_dir": w, "recipe": None, "status": "complete"} for w in ("w1", "w2")],
        "profiles": {
            "measure": "steps_to_target",
            "taus": [1, 2, 4],
            "curves": {k: [0.5, 1, 1] for k in LABELS},
        },
        "scores": dict.fromkeys(LABELS, 0.8),
        "ranks": dict.fromkeys(LABELS, 2.0),
        "speedups": dict.fromkeys(LABELS, 1.0),
        "wins": {a: {b: {"win": 1, "tie": 1, "loss": 0} for b in LABELS if b != a} for a in LABELS},
    }
    path = tmp_path / REPORT_HTML
    path.write_text(render_suite(suite), encoding="utf-8")
    check_page(browser, path, rows=LABELS, plots=["profiles"], table="scores")
    check_page(browser, path, rows=LABELS, plots=[], table="wins")
    check_page(browser, path, rows=["w1", "w2"], plots=[], table="workloads")


def test_the_check_fails_when_a_row_or_a_plot_is_missing(browser, run_page, tmp_path):
    """The browser check is not vacuous: remove adam's row, then the gap plot, and it fails each time."""
    text = run_page.read_text()
    at = text.index('id="verdict"')
    no_row = text[:at] + re.sub(r'<tr data-row="adam">.*?</tr>', "", text[at:], count=1, flags=re.S)
    no_plot = re.sub(r'<figure class="plot" data-plot="gap-steps">.*?</figure>', "", text, flags=re.S)
    for broken, what in ((no_row, "row 'adam' missing"), (no_plot, "plot 'gap-steps' missing")):
        assert broken != text
        path = tmp_path / "broken.html"
        path.write_text(broken)
        with pytest.raises(AssertionError, match=what):
            check_page(browser, path, rows=LABELS, plots=RUN_PLOTS)
    fetching = text.replace("</body>", '<img src="https://example.invalid/x.png"></body>')
    (tmp_path / "fetch.html").write_text(fetching)
    with pytest.raises(AssertionError, match="network requests"):
        check_page(browser, tmp_path / "fetch.html", rows=LABELS, plots=[])
