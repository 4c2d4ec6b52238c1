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


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
