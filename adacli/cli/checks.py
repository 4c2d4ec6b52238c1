"""``adacli step-test`` and ``adacli bench``: checks of optimizers that need no recipe run."""

from __future__ import annotations

import typer

from adacli.cli.common import app, console, err_console, fail, write_output
from adacli.errors import AdacliError


@app.command("step-test")
def step_test_cmd(
    optimizer: list[str] = typer.Option(
        [],
        "--optimizer",
        "-o",
        metavar="NAME",
        help="test this optimizer (repeatable): any recipe name, package.module:Class included "
        "(default: AdaBelief plus sgd with momentum 0.9, adam and adamw)",
    ),
    recipe_file: str | None = typer.Option(
        None,
        "--recipe",
        "-r",
        metavar="RECIPE",
        help="test the recipe's optimizers with its hyperparameters, plus overfit-one-batch and a "
        "step/eval pass on its model",
    ),
    fused: str = typer.Option(
        "auto",
        "--fused",
        metavar="auto|yes|no",
        help="AdaBelief's fused CPU path: auto = check it when it can run here (skip otherwise), "
        "yes = fail if it cannot, no = skip",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON on stdout, not a table"),
    junit_xml: str | None = typer.Option(None, "--junit-xml", metavar="FILE", help="also write JUnit XML"),
) -> None:
    """Prove in seconds that optimizers behave: analytic problems, repeatability, resume, AdaBelief's paths
    and golden values; exit 1 when any check fails."""
    import json

    from adacli.app.check import step_test
    from adacli.ci import steptest
    from adacli.errors import CheckFailed

    out = err_console if as_json else console
    try:
        with out.status("step-test") as status:

            def progress(check: steptest.StepCheck) -> None:
                status.update(f"step-test: {check.optimizer} {check.check} {check.status.upper()}")

            report = step_test(optimizer, recipe_file, fused=fused, on_check=progress)
    except AdacliError as e:
        raise fail(e) from None
    if junit_xml:
        write_output(junit_xml, steptest.junit_xml(report))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=1, default=repr))
    else:
        console.print(steptest.results_table(report))
        for line in steptest.criteria_lines(report):
            console.print(f"[dim]{line}[/]", highlight=False, soft_wrap=True)
        for note in report.notes:
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
        for c in report.failures:
            line = f"[red]FAIL[/] {c.optimizer} {c.check}: {c.detail}"
            console.print(line, highlight=False, soft_wrap=True)
        counts = report.to_dict()["counts"]
        console.print(
            f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
            f"in {report.seconds:.1f} s" + (f"; junit xml: {junit_xml}" if junit_xml else ""),
            highlight=False,
        )
    if not report.passed:
        names = ", ".join(f"{c.optimizer} {c.check}" for c in report.failures[:5])
        more = f" and {len(report.failures) - 5} more" if len(report.failures) > 5 else ""
        raise fail(CheckFailed(f"{len(report.failures)} step-test check(s) failed: {names}{more}"))


@app.command("bench")
def bench_cmd(
    model: list[str] = typer.Option(
        None,
        "--model",
        help="timm model whose parameter shapes to use (repeatable); default test_resnet, "
        "test_convnext, test_vit, resnet18, resnet50, vit_small_patch16_224",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    rounds: int = typer.Option(5, "--rounds", help="interleaved timing rounds (3 steps each)"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads for the run"),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON instead of a table"),
) -> None:
    """Median optimizer.step() time: adacli AdaBelief (each path) vs timm, official, torch Adam."""
    import json

    from adacli.ci import bench

    try:
        # one transient status line on a terminal (nothing in logs), not a log line per round
        with err_console.status("benchmarking", spinner="dots") as status:
            result = bench.run_bench(
                model or bench.DEFAULT_MODELS,
                device=device,
                rounds=rounds,
                threads=threads,
                progress=lambda msg: status.update(msg),
            )
    except AdacliError as e:
        raise fail(e) from None
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(bench.results_table(result))
    for label, why in result.skipped.items():
        console.print(f"skipped {label}: {why}")
