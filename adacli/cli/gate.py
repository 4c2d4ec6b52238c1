"""``adacli gate``: judge a saved run against a baseline (no training); exit 1 on any regression."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

from adacli.cli.common import app, console, err_console, fail, say, write_output
from adacli.errors import AdacliError


def print_gate(result: Any, *, as_json: bool, junit_xml: str | None, out: Console) -> None:
    """Show a gate result (rich table + notes, or JSON on stdout) and write JUnit XML if asked."""
    from adacli.report.gate import gate_junit, gate_table

    if junit_xml:
        write_output(junit_xml, gate_junit(result))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1, default=str))
        return
    out.print(gate_table(result))
    for note in result.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
    if junit_xml:
        say(out, f"junit xml: {junit_xml}")


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
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="also write the verdict as GitHub Markdown ('-': stdout)"
    ),
) -> None:
    """Judge a saved run against a baseline without re-running; exit 1 on any regression."""
    from adacli.app.gate import GateRequest, gate

    request = GateRequest(
        run_dir, baseline, accuracy_drop, sigma_k, gap_growth, steps_growth, step_time_growth
    )
    try:
        result = gate(request)
    except AdacliError as e:
        raise fail(e) from None
    print_gate(result, as_json=as_json, junit_xml=junit_xml, out=err_console if markdown == "-" else console)
    if markdown is not None:
        from adacli.report.markdown import gate_markdown

        write_output(markdown, gate_markdown(result.to_dict()))
    if not result.passed:
        raise typer.Exit(1)
