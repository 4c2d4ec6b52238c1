"""``adacli compare``: parse, call :func:`adacli.app.compare.compare`, print the run, map the exit code."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from adacli.cli.common import (
    CpusOption,
    DeviceOption,
    ExecutorOption,
    GpusOption,
    JobsOption,
    JunitOption,
    RayAddressOption,
    SeedsOption,
    StepsOption,
    TerminalUI,
    ThreadsOption,
    UntilDecidedOption,
    WideOption,
    app,
    console,
    err_console,
    fail,
    say,
    write_output,
)
from adacli.errors import AdacliError


@app.command("compare")
def compare_cmd(
    recipe_file: str = typer.Argument(..., metavar="RECIPE", help="a recipe YAML file"),
    device: DeviceOption = None,
    seeds: SeedsOption = None,
    steps: StepsOption = None,
    out: str | None = typer.Option(None, "--out", help="run folder (default runs/<name>/<timestamp>/)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout, not a table"),
    save_baseline: str | None = typer.Option(
        None, "--save-baseline", metavar="FILE", help="write a regression-gate baseline of this run"
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="FILE", help="judge this run against a baseline; exit 1 on a regression"
    ),
    junit_xml: JunitOption = None,
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="write the verdict (and the gate's) as GitHub Markdown"
    ),
    jobs: JobsOption = None,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    cpus_per_trial: CpusOption = 1.0,
    gpus_per_trial: GpusOption = None,
    threads: ThreadsOption = None,
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="continue a run folder: finished trials are not run again"
    ),
    reference: str | None = typer.Option(
        None, "--reference", metavar="LABEL", help="add a 'Δ vs LABEL' column (overrides the recipe's)"
    ),
    seeds_until_decided: UntilDecidedOption = False,
    wide: WideOption = False,
) -> None:
    """Train every optimizer of a recipe on the same model, data and budget, and compare them."""
    from adacli.app import compare
    from adacli.run.pipeline import RunInterrupted, executor_options

    out_console = err_console if as_json else console  # with --json, stdout carries only the JSON
    try:
        options = executor_options(
            jobs=jobs,
            executor=executor,
            ray_address=ray_address,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            threads=threads,
        )
        request = compare.CompareRequest(
            recipe_file,
            device,
            seeds,
            steps,
            out,
            resume,
            reference,
            baseline,
            save_baseline,
            junit_xml,
            options,
            until_decided=seeds_until_decided,
        )
        result = compare.compare(request, TerminalUI(out_console))
    except RunInterrupted as e:
        _interrupted(e, as_json)
    except KeyboardInterrupt as e:  # before the run began: nothing to save
        err_console.print("interrupted", highlight=False)
        raise typer.Exit(getattr(e, "exit_code", 130)) from None
    except AdacliError as e:
        raise fail(e) from None
    show_run(result.outcome, result.name, as_json, wide=wide)
    _finish(
        result,
        out_console,
        junit_xml=junit_xml,
        markdown=markdown,
        save_baseline=save_baseline,
        gated=bool(baseline),
    )


def show_headline(verdict: Any) -> None:
    """The verdict in one or two sentences, first (wrapped at the terminal's width, between words)."""
    from rich.text import Text

    if verdict is not None and verdict.headline:
        console.print(Text(verdict.headline, style="bold"))


def _interrupted(e: Any, as_json: bool) -> None:
    o = e.outcome
    say(
        err_console,
        f"interrupted by {e}: {o.ran + o.reused}/{o.planned} trials finished, saved in {o.run_dir}; "
        f"continue with --resume {o.run_dir}",
    )
    if o.trials:
        show_run(o, o.run.recipe.get("name", ""), as_json)
    raise typer.Exit(e.exit_code) from None


def show_run(outcome: Any, name: str, as_json: bool, *, wide: bool = False) -> None:
    """A run's result: the JSON summary on stdout (``--json``), else the headline, the sweep table (for a
    sweep), the summary table, ``trials run: X, reused: Y`` and the run folder."""
    from adacli.report.sweep import sweep_table
    from adacli.report.tables import summary_table

    if as_json:
        typer.echo(json.dumps(outcome.run.summary_json(), indent=1))
        return
    title = name + (" (interrupted)" if outcome.status != "complete" else "")
    show_headline(outcome.verdict)
    if outcome.sweep:
        console.print(sweep_table(outcome.sweep))
        title += " (chosen configurations)"
    table = summary_table(outcome.summaries, outcome.target, title=title, verdict=outcome.verdict, wide=wide)
    console.print(table)
    say(console, f"trials run: {outcome.ran}, reused: {outcome.reused}")
    say(console, f"run folder: {outcome.run_dir}")


def _finish(
    result: Any,
    out: Console,
    *,
    junit_xml: str | None,
    markdown: str | None,
    save_baseline: str | None,
    gated: bool,
) -> None:
    """After the tables: failed trials (exit 1), the gate's verdict, the baseline, the Markdown."""
    from adacli.app.compare import markdown as run_markdown
    from adacli.cli.gate import print_gate
    from adacli.run.save import failure_lines

    if result.outcome.failed:
        lines = failure_lines(result.outcome.failed, result.outcome.ran)
        say(err_console, f"[bold red]error:[/] {escape(lines[0])}", markup=True)
        for line in lines[1:]:
            say(err_console, line)
        if gated or save_baseline:
            say(err_console, "gate not run, baseline not saved: the run has failed trials")
        raise typer.Exit(1)
    if result.gate is not None:
        print_gate(result.gate, as_json=False, junit_xml=junit_xml, out=out)
    if result.baseline_saved:
        say(out, f"baseline saved: {result.baseline_saved}")
    elif result.baseline_refused:
        say(err_console, f"baseline not saved ({save_baseline}): {result.baseline_refused}")
    if markdown is not None:
        write_output(markdown, run_markdown(result.outcome.run, result.gate))
    if not result.passed:
        raise typer.Exit(1)
