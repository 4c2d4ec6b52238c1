"""The ``adacli`` command line: thin Typer commands that call the library and map errors to exit codes.

Exit codes (DESIGN.md section 5): 0 success, 1 a check failed, 2 bad input, 130 interrupted.
Each command keeps its logic in the module named for it; here we only parse options, call, and print.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from adacli.errors import AdacliError

app = typer.Typer(
    name="adacli",
    help="Compare deep-learning optimizers: recipes, step tests, benchmarks and a CI gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(error: AdacliError) -> typer.Exit:
    """Print an adacli error as one line on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


# --- commands -------------------------------------------------------------------------------------
# (each command: parse options, call one library function, print; AdacliError -> fail(err))


@app.command("report")
def report_cmd(
    run_dir: str = typer.Argument(..., help="a run folder written by `adacli compare`"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON instead of a table"),
    no_plot: bool = typer.Option(False, "--no-plot", help="do not re-draw curves.png"),
) -> None:
    """Re-render the summary table (and re-draw curves.png) from a saved run folder."""
    import json

    from adacli import report

    try:
        run = report.load_run(run_dir)
        if not no_plot and run.trials:
            report.plot_curves(run.trials, run.run_dir / report.CURVES_PNG, target=run.target)
    except AdacliError as e:
        raise fail(e) from None
    if as_json:
        typer.echo(json.dumps(report.run_json(run), indent=1))
        return
    title = f"{run.recipe.get('name', run.run_dir.name)} ({run.status})"
    console.print(report.summary_table(run.summaries, run.target, title=title))
    if not no_plot and run.trials:
        console.print(f"curves: {run.run_dir / report.CURVES_PNG}", highlight=False)


# --- gate (adacli/gate.py) -------------------------------------------------------------------------


def _print_gate(result, *, as_json: bool, junit_xml: str | None, out: Console) -> None:
    """Show a gate result (rich table + notes, or JSON on stdout) and write JUnit XML if asked."""
    import json

    from adacli import gate

    if junit_xml:
        gate.write_junit_xml(result, junit_xml)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1, default=str))
        return
    out.print(gate.gate_table(result))
    for note in result.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    if junit_xml:
        out.print(f"junit xml: {junit_xml}", highlight=False)


def _gate_precheck(recipe, baseline: str | None, junit_xml: str | None):
    """compare --baseline: refuse a missing or mismatched baseline before training (exit 2), not after."""
    from adacli import gate
    from adacli.errors import InputError

    if baseline is None:
        if junit_xml:
            raise InputError("needs --baseline (it holds the gate's verdicts)", field="--junit-xml")
        return None
    base = gate.load_baseline(baseline)
    gate.check_setup(base, recipe, baseline_path=baseline)
    return base


def _gate_after_compare(
    run_dir, base, *, baseline: str | None, save_baseline: str | None, junit_xml: str | None, as_json: bool
) -> None:
    """compare --baseline / --save-baseline: judge the saved run, then save a baseline unless it regressed."""
    from adacli import gate, report

    out = err_console if as_json else console  # with --json, stdout carries only the run's JSON
    passed = True
    try:
        run = report.load_run(run_dir)
        if base is not None:
            tol = gate.tolerances_for(run.recipe)
            result = gate.gate_run(run, base, tol, baseline_path=baseline, run_dir=run.run_dir)
            _print_gate(result, as_json=False, junit_xml=junit_xml, out=out)
            passed = result.passed
        if save_baseline:
            if passed:
                gate.save_baseline(gate.baseline_from_run(run, run.run_dir), save_baseline)
                out.print(f"baseline saved: {save_baseline}", highlight=False)
            else:
                err_console.print(f"baseline not saved ({save_baseline}): the run regressed", highlight=False)
    except AdacliError as e:
        raise fail(e) from None
    if not passed:
        raise typer.Exit(1)


@app.command("gate")
def gate_cmd(
    run_dir: str = typer.Argument(..., help="a run folder written by `adacli compare`"),
    baseline: str = typer.Option(..., "--baseline", help="baseline file from `compare --save-baseline`"),
    accuracy_drop: float | None = typer.Option(
        None, "--accuracy-drop", min=0, help="allowed final test accuracy drop, points [recipe gate: 1.0]"
    ),
    sigma_k: float | None = typer.Option(
        None, "--sigma-k", min=0, help="also allow k x the seed std (pooled, capped) [recipe gate: 2.0]"
    ),
    gap_growth: float | None = typer.Option(
        None, "--gap-growth", min=0, help="allowed generalization gap growth, points [recipe gate: 2.0]"
    ),
    steps_growth: float | None = typer.Option(
        None, "--steps-growth", min=0, help="allowed relative steps-to-target growth [recipe gate: 0.25]"
    ),
    step_time_growth: float | None = typer.Option(
        None, "--step-time-growth", min=0, help="opt-in: allowed relative step-time growth [off]"
    ),
    junit_xml: str | None = typer.Option(None, "--junit-xml", help="also write the verdicts as JUnit XML"),
    as_json: bool = typer.Option(False, "--json", help="print the verdicts as JSON instead of a table"),
) -> None:
    """Judge a saved run against a baseline without re-running; exit 1 on any regression."""
    from adacli import gate, report

    try:
        base = gate.load_baseline(baseline)
        run = report.load_run(run_dir)
        tol = gate.tolerances_for(
            run.recipe,
            accuracy_drop=accuracy_drop,
            sigma_k=sigma_k,
            gap_growth=gap_growth,
            steps_growth=steps_growth,
            step_time_growth=step_time_growth,
        )
        result = gate.gate_run(run, base, tol, baseline_path=baseline, run_dir=run.run_dir)
        if run.status != "complete":
            result.notes.insert(0, f"the run's status is {run.status!r}: missing trials count as failures")
        _print_gate(result, as_json=as_json, junit_xml=junit_xml, out=console)
    except AdacliError as e:
        raise fail(e) from None
    if not result.passed:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
