"""``adacli suite``: every workload of a suite with the live display and its table, then the suite's
figures across workloads, the gate per workload, and the exit code."""

from __future__ import annotations

import contextlib
from typing import Any

import typer
from rich.markup import escape

from adacli.cli.common import (
    CpusOption,
    ExecutorOption,
    GpusOption,
    JobsOption,
    JunitOption,
    RayAddressOption,
    ThreadsOption,
    app,
    console,
    err_console,
    fail,
    say,
    warn,
    write_output,
)
from adacli.errors import AdacliError


class SuiteTerminal:
    """The suite's progress on the terminal: a rule and the live display per workload, its table after."""

    def warning(self, text: str) -> None:
        warn(text)

    def workload(self, i: int, n: int, workload: Any) -> contextlib.AbstractContextManager[Any]:
        from adacli.report.progress import RunProgress

        console.rule(f"workload {i + 1}/{n}: {escape(workload.name)}", align="left")
        return RunProgress(console)

    def workload_done(self, run: Any) -> None:
        from adacli.report.tables import summary_table

        o = run.outcome
        title = run.workload.name + ("" if o.status == "complete" else f" ({o.status})")
        console.print(summary_table(o.summaries, o.target, title=title, verdict=o.verdict))
        say(console, f"trials run: {o.ran}, reused: {o.reused}")


def show_suite(results: dict[str, Any]) -> None:
    """The suite's tables: times to target, scores and speed-ups, and (3+ labels) the W/T/L matrix."""
    from adacli.report.suite import suite_table, times_table, wins_matrix

    if not results.get("scores"):
        return
    console.print(times_table(results))
    console.print(suite_table(results))
    if len(results["labels"]) > 2:
        console.print(wins_matrix(results))


@app.command("suite")
def suite_cmd(
    suite_file: str = typer.Argument(..., metavar="SUITE", help="a suite YAML file"),
    device: str | None = typer.Option(None, "--device", help="override every workload: auto|cpu|cuda|mps"),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="override every workload: seeds 0..N-1"),
    steps: int | None = typer.Option(None, "--steps", min=1, help="override every budget: N training steps"),
    out: str | None = typer.Option(None, "--out", help="suite folder (default runs/<name>/<timestamp>/)"),
    save_baseline: str | None = typer.Option(
        None, "--save-baseline", metavar="FILE", help="write a gate baseline of every workload into FILE"
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="FILE", help="judge each workload against FILE; exit 1 on a regression"
    ),
    junit_xml: JunitOption = None,
    jobs: JobsOption = 1,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    cpus_per_trial: CpusOption = 1.0,
    gpus_per_trial: GpusOption = None,
    threads: ThreadsOption = None,
    resume: str | None = typer.Option(
        None, "--resume", metavar="SUITE_DIR", help="continue a suite folder: finished trials are reused"
    ),
) -> None:
    """Run one optimizer list on several workloads: per-workload tables, then performance profiles,
    scores, speed-ups, ranks and win/tie/loss across workloads."""
    from adacli.app import suite
    from adacli.run.pipeline import executor_options

    try:
        options = executor_options(
            jobs=jobs,
            executor=executor,
            ray_address=ray_address,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            threads=threads,
        )
        request = suite.SuiteRequest(
            suite_file, device, seeds, steps, out, resume, baseline, save_baseline, junit_xml, options
        )
        result = suite.run(request, SuiteTerminal())
    except suite.SuiteInterrupted as e:
        d = e.outcome.suite_dir
        say(err_console, f"interrupted: finished trials saved in {d}; continue with --resume {d}")
        show_suite(e.outcome.results)
        raise typer.Exit(e.exit_code) from None
    except AdacliError as e:
        raise fail(e) from None
    show_suite(result.outcome.results)
    say(console, f"suite folder: {result.outcome.suite_dir}")
    _gate_lines(result, junit_xml)
    _finish(result, save_baseline)


def _gate_lines(result: Any, junit_xml: str | None) -> None:
    """One gate table per workload, then one verdict line per workload, and the JUnit XML."""
    from adacli.report.gate import gate_table, suite_gate_junit

    for name, verdict in result.verdicts:
        console.print(gate_table(verdict, title=f"regression gate: {escape(name)}"))
        for note in verdict.notes:
            console.print(f"[dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)
    for name, verdict in result.verdicts:  # one verdict line per workload, after the tables
        line = f"[green]PASS[/] {escape(name)}"
        if not verdict.passed:
            line = f"[bold red]FAIL[/] {escape(name)}: {len(verdict.failures)} regression(s)"
        console.print(line, highlight=False)
    if junit_xml and result.verdicts:
        write_output(junit_xml, suite_gate_junit(result.verdicts))
        say(console, f"junit xml: {junit_xml}")


def _finish(result: Any, save_baseline: str | None) -> None:
    if result.baseline_saved:
        say(console, f"baseline saved: {result.baseline_saved}")
    elif result.baseline_refused:
        say(err_console, f"baseline not saved ({save_baseline}): {result.baseline_refused}")
    failed = result.failed
    if any(failed.values()):  # a trial that raised is a failure, not a result
        where = ", ".join(f"workload {name}" for name, n in failed.items() if n)
        say(
            err_console,
            f"[bold red]error:[/] {sum(failed.values())} trial(s) failed ({escape(where)})",
            markup=True,
        )
        raise typer.Exit(1)
    if not result.passed:
        raise typer.Exit(1)
