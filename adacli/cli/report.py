"""``adacli report``: a saved run (or suite) folder's tables again, its plots and page re-drawn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from adacli.cli.common import WideOption, app, console, fail, say, warn, write_output
from adacli.errors import AdacliError


@app.command("report")
def report_cmd(
    run_dir: str = typer.Argument(..., help="a run folder of `adacli compare` (or a suite folder)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of a table"),
    no_plot: bool = typer.Option(False, "--no-plot", help="do not re-draw curves.png and report.html"),
    html_file: str | None = typer.Option(
        None, "--html", metavar="FILE", help="write the page to FILE [RUN_DIR/report.html]"
    ),
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="write the verdict as GitHub Markdown to FILE ('-': stdout)"
    ),
    reference: str | None = typer.Option(
        None, "--reference", metavar="LABEL", help="add a 'Δ vs LABEL' column (overrides the stored one)"
    ),
    wide: WideOption = False,
) -> None:
    """Re-render the summary table, curves.png and report.html from a saved run folder."""
    from adacli.app import report

    try:
        loaded = report.load(run_dir, reference)
    except AdacliError as e:
        raise fail(e) from None
    report.rerender(loaded, run_dir, plots=not no_plot, html_file=html_file)
    for line in [*(loaded.run.notes if loaded.run is not None else []), *loaded.problems]:
        warn(line)
    if loaded.suite is not None:
        _show_suite_folder(loaded, Path(run_dir), as_json)
        return
    if markdown is not None:
        from adacli.app.compare import markdown as run_markdown

        write_output(markdown, run_markdown(loaded.run))
        if markdown == "-":
            return
    _show_run_folder(loaded, as_json, wide)


def _show_run_folder(loaded: Any, as_json: bool, wide: bool = False) -> None:
    from adacli.cli.compare import show_headline
    from adacli.report.sweep import sweep_table
    from adacli.report.tables import summary_table

    run = loaded.run
    if as_json:
        typer.echo(json.dumps(run.summary_json(), indent=1))
        return
    title = f"{run.recipe.get('name', run.run_dir.name)} ({run.status})"
    show_headline(run.verdict)
    if isinstance(run.extra.get("sweep"), dict):  # a sweep run: the chosen configurations first
        console.print(sweep_table(run.extra["sweep"]))
    console.print(summary_table(run.summaries, run.target, title=title, verdict=run.verdict, wide=wide))
    for path in loaded.written:
        say(console, f"wrote {path}")


def _show_suite_folder(loaded: Any, folder: Path, as_json: bool) -> None:
    from adacli.cli.suite import show_suite

    results = loaded.suite
    if as_json:
        typer.echo(json.dumps(results, indent=1))
        return
    show_suite(results)
    for path in loaded.written:
        say(console, f"wrote {path}")
    for w in results.get("workloads", []):
        say(console, f"{w['name']}: {folder / w['run_dir']} ({w['status']})")
