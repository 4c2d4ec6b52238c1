"""The ``adacli`` command line: thin Typer commands that call the library and map errors to exit codes.

Exit codes (DESIGN.md section 5): 0 success, 1 a check failed (a trial that raised, a gate regression,
a step-test failure), 2 bad input, 130 interrupted by Ctrl-C, 143 by SIGTERM.
Each command keeps its logic in the module named for it; here we only parse options, call, and print.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from adacli.errors import AdacliError

app = typer.Typer(
    name="adacli",
    help="Compare deep-learning optimizers: recipes, step tests, benchmarks and a CI gate.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _stdout_console() -> Console:
    """Tables at their natural width in pipes and CI logs, where rich would squeeze them to 80 columns."""
    terminal = Console()
    return terminal if terminal.is_terminal or os.environ.get("COLUMNS") else Console(width=200)


console = _stdout_console()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# Characters that end a line for terminals or str.splitlines(): a message quoting the user's input (a
# key, a value) must still be one line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """``text`` with every line break written as its escape (``\\n``), so an error stays one line."""
    return text.translate(_LINE_BREAKS)


def fail(error: AdacliError) -> typer.Exit:
    """Print an adacli error as one line on stderr and return the Exit to raise."""
    from rich.markup import escape  # messages hold brackets ("[lo, hi]", "optimizers[0]"): not markup

    err_console.print(f"[bold red]error:[/] {escape(one_line(str(error)))}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


# --- options shared by compare and suite (the executor of the pipeline) ------------------------------

JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", help="run N trials at once in local worker processes")
]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor", metavar="serial|local|ray", help="where trials run [serial; local with --jobs N]"
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", metavar="ADDR", help="ray: cluster address [start a local Ray instance]"),
]
CpusOption = Annotated[float, typer.Option("--cpus-per-trial", help="ray: CPUs reserved per trial")]
GpusOption = Annotated[
    float | None, typer.Option("--gpus-per-trial", help="ray: GPUs per trial [1 for CUDA recipes, else 0]")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads", help="torch threads per trial [serial: all; local: cores/jobs; ray: CPUs/trial]"
    ),
]


# --- commands -------------------------------------------------------------------------------------
# (each command: parse options, call one library function, print; AdacliError -> fail(err))


@app.command("compare")
def compare_cmd(
    recipe_file: str = typer.Argument(..., metavar="RECIPE", help="a recipe YAML file"),
    device: str | None = typer.Option(None, "--device", help="override the recipe: auto|cpu|cuda[:N]|mps"),
    seeds: int | None = typer.Option(None, "--seeds", min=1, help="override the recipe: run seeds 0..N-1"),
    steps: int | None = typer.Option(None, "--steps", min=1, help="override the budget: N training steps"),
    out: str | None = typer.Option(None, "--out", help="run folder (default runs/<name>/<timestamp>/)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout, not a table"),
    save_baseline: str | None = typer.Option(
        None, "--save-baseline", metavar="FILE", help="write a regression-gate baseline of this run"
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", metavar="FILE", help="judge this run against a baseline; exit 1 on a regression"
    ),
    junit_xml: str | None = typer.Option(None, "--junit-xml", help="with --baseline: verdicts as JUnit XML"),
    markdown: str | None = typer.Option(
        None, "--markdown", metavar="FILE", help="write the verdict (and the gate's) as GitHub Markdown"
    ),
    jobs: JobsOption = 1,
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
) -> None:
    """Train every optimizer of a recipe on the same model, data and budget, and compare them."""
    from adacli.recipe import load_recipe

    try:
        recipe = load_recipe(recipe_file)  # a malformed recipe is rejected before torch is imported
        from adacli.report import sweep as sweep_report
        from adacli.report import tables as report
        from adacli.run import pipeline
        from adacli.run.preflight import check_environment, preflight

        recipe = recipe.with_overrides(device=device, seeds=seeds, steps=steps)
        check_environment(recipe, recipe_file)
        recipe = _with_reference(recipe, reference, recipe_file)
        gate_base = _gate_precheck(recipe, baseline, junit_xml)
        options = _executor_options(jobs, executor, ray_address, cpus_per_trial, gpus_per_trial, threads)
        checked = preflight(recipe, recipe_file)
    except AdacliError as e:
        raise fail(e) from None
    for warning in checked.warnings:
        err_console.print(f"[yellow]warning:[/] {_escape(warning)}", highlight=False, soft_wrap=True)

    # With --json, stdout carries only the JSON: progress goes to stderr.
    progress_console = err_console if as_json else console
    try:
        with sweep_report.WorkersProgress(progress_console) as progress:
            outcome = pipeline.run_recipe(
                recipe, recipe_path=recipe_file, out_dir=out, progress=progress, resume=resume, **options
            )
    except pipeline.RunInterrupted as e:
        o = e.outcome
        err_console.print(
            f"interrupted by {e}: {o.ran + o.reused}/{o.planned} trials finished, saved in {o.run_dir}; "
            f"continue with --resume {o.run_dir}",
            highlight=False,
            soft_wrap=True,
        )
        if o.trials:
            _show_run(o, recipe.name, as_json)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:  # before the run began: nothing to save
        err_console.print("interrupted", highlight=False)
        raise typer.Exit(getattr(e, "exit_code", 130)) from None
    except AdacliError as e:
        raise fail(e) from None
    _show_run(outcome, recipe.name, as_json)
    if outcome.failed:
        _report_failures(outcome, gated=bool(baseline or save_baseline))
    if baseline or save_baseline:
        _gate_after_compare(
            outcome.run_dir,
            gate_base,
            baseline=baseline,
            save_baseline=save_baseline,
            junit_xml=junit_xml,
            as_json=as_json,
            markdown=markdown,
        )
    elif markdown is not None:
        _write_markdown(markdown, _run_markdown(report.load_run(outcome.run_dir)))


def _with_reference(recipe, reference: str | None, recipe_file: str):
    """The recipe with ``--reference`` applied; an unknown label (option or recipe key) is exit 2."""
    from adacli.analysis.verdict import check_reference
    from adacli.optim.registry import assign_labels

    labels = assign_labels(recipe.optimizers)
    if reference is not None:
        check_reference(reference, labels, field_name="--reference")
        return recipe.model_copy(update={"reference": reference})
    check_reference(recipe.reference, labels, file=recipe_file, line=recipe.line_of("reference"))
    return recipe


def _show_run(outcome, name: str, as_json: bool) -> None:
    """A run's result: the JSON summary on stdout (``--json``), else the sweep table (for a sweep), the
    summary table, ``trials run: X, reused: Y`` and the run folder."""
    import json

    from adacli.report import sweep as sweep_report
    from adacli.report import tables as report

    if as_json:
        run = report.RunData(
            run_dir=outcome.run_dir,
            recipe={},
            environment={},
            trials=outcome.trials,
            summaries=outcome.summaries,
            target=outcome.target,
            status=outcome.status,
            verdict=outcome.verdict,
        )
        payload = report.run_json(run)
        if outcome.sweep:
            payload["sweep"] = sweep_report.sweep_json(outcome.sweep)
        typer.echo(json.dumps(payload, indent=1))
        return
    title = name + (" (interrupted)" if outcome.status != "complete" else "")
    if outcome.sweep:
        console.print(sweep_report.sweep_table(outcome.sweep))
        title += " (chosen configurations)"
    table = report.summary_table(outcome.summaries, outcome.target, title=title, verdict=outcome.verdict)
    console.print(table)
    console.print(f"trials run: {outcome.ran}, reused: {outcome.reused}", highlight=False)
    console.print(f"run folder: {outcome.run_dir}", highlight=False, soft_wrap=True)


def _report_failures(outcome, *, gated: bool) -> None:
    """Trials that raised are a failure of the setup or of an optimizer: their errors, grouped, on
    stderr, and exit 1 (everything is saved already; divergence is a result and never lands here)."""
    from rich.markup import escape

    from adacli.run.save import failure_lines

    lines = failure_lines(outcome.failed, outcome.ran)
    err_console.print(f"[bold red]error:[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
    for line in lines[1:]:
        err_console.print(escape(line), highlight=False, soft_wrap=True)
    if gated:
        err_console.print("gate not run, baseline not saved: the run has failed trials", highlight=False)
    raise typer.Exit(1)


def _executor_options(jobs, executor, ray_address, cpus_per_trial, gpus_per_trial, threads) -> dict:
    """compare's --jobs/--executor/--ray-address/--threads/...: the executor keyword arguments of
    pipeline.run_recipe (bad combinations: InputError, exit 2, before any training)."""
    from adacli.errors import InputError
    from adacli.run.executors import EXECUTORS

    if jobs < 1:
        raise InputError(f"must be >= 1 (got {jobs})", field="--jobs")
    if executor is not None and executor not in EXECUTORS:
        from adacli.errors import closest

        raise InputError(
            f"unknown executor {executor!r}",
            field="--executor",
            allowed=EXECUTORS,
            suggestion=closest(executor, EXECUTORS),
        )
    if threads is not None and threads < 1:
        raise InputError(f"must be >= 1 (got {threads})", field="--threads")
    if cpus_per_trial <= 0 or (gpus_per_trial is not None and gpus_per_trial < 0):
        raise InputError("must be > 0 (GPUs: >= 0)", field="--cpus-per-trial/--gpus-per-trial")
    if ray_address and executor is None:
        executor = "ray"
    return {
        "executor": executor or ("local" if jobs > 1 else "serial"),
        "jobs": jobs,
        "threads": threads,
        "ray_address": ray_address,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
    }


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
) -> None:
    """Re-render the summary table, curves.png and report.html from a saved run folder."""
    import json

    from adacli.report import tables as report

    if _report_suite(run_dir, as_json=as_json, no_plot=no_plot):
        return
    try:
        run = report.load_run(run_dir)
        if reference is not None and run.verdict is not None:
            from adacli.analysis.verdict import check_reference

            check_reference(reference, [s.optimizer for s in run.summaries], field_name="--reference")
            run.verdict.reference = reference
    except AdacliError as e:
        raise fail(e) from None
    curves = _redraw(run, no_plot=no_plot, html_file=html_file)
    if markdown is not None:
        _write_markdown(markdown, _run_markdown(run))
        if markdown == "-":
            return
    if as_json:
        typer.echo(json.dumps(report.run_json(run), indent=1))
        return
    title = f"{run.recipe.get('name', run.run_dir.name)} ({run.status})"
    if isinstance(run.extra.get("sweep"), dict):  # a sweep run: the chosen configurations first
        from adacli.report import sweep as sweep_report

        console.print(sweep_report.sweep_table(run.extra["sweep"]))
    console.print(report.summary_table(run.summaries, run.target, title=title, verdict=run.verdict))
    for path in curves:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _run_results(run) -> dict:
    """results.json's dict of a loaded run (summary and target recomputed for an interrupted one), with
    the statistics (comparisons, best, reference) where the loaded run carries them."""
    from adacli.report import tables as report

    verdict = getattr(run, "verdict", None)
    return report._encode(
        {
            "status": run.status,
            "recipe": run.recipe,
            "environment": run.environment,
            "summary": [s.to_dict() for s in run.summaries],
            "target": report._target_to_dict(run.target),
            **run.extra,
            **(verdict.to_dict() if verdict is not None else {}),
        }
    )


def _run_markdown(run) -> str:
    from adacli.report.markdown import run_markdown

    return run_markdown(_run_results(run))


def _redraw(run, *, no_plot: bool, html_file: str | None) -> list:
    """adacli report: re-draw curves.png and report.html (or --html FILE); a read-only run folder (a shared
    baseline) only gets a warning. Returns the files written."""
    from pathlib import Path

    from adacli.report import tables as report
    from adacli.report.html import write_report_html

    written = []
    if not run.trials:
        return written
    if not no_plot:
        try:
            report.plot_curves(run.trials, run.run_dir / report.CURVES_PNG, target=run.target)
            written.append(run.run_dir / report.CURVES_PNG)
        except OSError as e:
            err_console.print(f"warning: curves.png not re-drawn ({e})", highlight=False)
    if not no_plot or html_file is not None:
        out = Path(html_file) if html_file else None
        try:
            written.append(write_report_html(run.run_dir, run.trials, data=_run_results(run), out=out))
        except OSError as e:
            err_console.print(f"warning: report.html not written ({e})", highlight=False)
    return written


def _write_markdown(target: str, text: str) -> None:
    """--markdown FILE: write (``-``: print to stdout). Appending to $GITHUB_STEP_SUMMARY is the caller's."""
    from pathlib import Path

    if target == "-":
        typer.echo(text, nl=False)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- suite (adacli/suite.py) -----------------------------------------------------------------------


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
    junit_xml: str | None = typer.Option(None, "--junit-xml", help="with --baseline: verdicts as JUnit XML"),
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
    from adacli.app import suite as suite_mod

    try:
        from adacli.recipe.suite import load_suite
        from adacli.run.preflight import check_suite

        suite = load_suite(suite_file).with_overrides(device=device, seeds=seeds, steps=steps)
        warnings = check_suite(suite)
        baselines = None
        if baseline is not None:
            baselines = suite_mod.load_suite_baseline(baseline)
            suite_mod.check_suite_baseline(suite, baselines, baseline)
        elif junit_xml:
            from adacli.errors import InputError

            raise InputError("needs --baseline (it holds the gate's verdicts)", field="--junit-xml")
        scale = _executor_options(jobs, executor, ray_address, cpus_per_trial, gpus_per_trial, threads)
    except AdacliError as e:
        raise fail(e) from None
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {_escape(warning)}", highlight=False, soft_wrap=True)
    outcome = _run_suite(suite_mod, suite, out, resume, scale)
    _show_suite(outcome.results)
    console.print(f"suite folder: {outcome.suite_dir}", highlight=False, soft_wrap=True)
    failed = {r.workload.name: sum(t.status == "failed" for t in r.outcome.trials) for r in outcome.runs}
    if baselines is not None or save_baseline:
        _gate_suite(suite_mod, outcome, baselines, baseline, save_baseline, junit_xml, any(failed.values()))
    if any(failed.values()):  # a trial that raised is a failure, not a result
        where = ", ".join(f"workload {name}" for name, n in failed.items() if n)
        msg = f"[bold red]error:[/] {sum(failed.values())} trial(s) failed ({where})"
        err_console.print(msg, highlight=False)
        raise typer.Exit(1)


def _run_suite(suite_mod, suite, out, resume, scale):
    """Every workload with compare's live display and its table as it finishes; Ctrl-C exits 130."""
    from adacli.report import sweep as sweep_report
    from adacli.report import tables as report

    n = len(suite.workloads)

    def progress(i: int, w):
        console.rule(f"workload {i + 1}/{n}: {w.name}", align="left")
        return sweep_report.WorkersProgress(console)

    def done(i: int, run) -> None:
        o = run.outcome
        title = run.workload.name + ("" if o.status == "complete" else f" ({o.status})")
        console.print(report.summary_table(o.summaries, o.target, title=title, verdict=o.verdict))
        console.print(f"trials run: {o.ran}, reused: {o.reused}", highlight=False)

    try:
        return suite_mod.run_suite(
            suite, out_dir=out, resume=resume, progress=progress, on_done=done, **scale
        )
    except suite_mod.SuiteInterrupted as e:
        d = e.outcome.suite_dir
        err_console.print(
            f"interrupted: finished trials saved in {d}; continue with --resume {d}", highlight=False
        )
        if e.outcome.results.get("scores"):
            _show_suite(e.outcome.results)
        raise typer.Exit(e.exit_code) from None
    except AdacliError as e:
        raise fail(e) from None


def _report_suite(folder: str, *, as_json: bool, no_plot: bool) -> bool:
    """adacli report on a suite folder: its tables (and profiles.png, report.html) again; False for a run
    folder."""
    import json
    from pathlib import Path

    from adacli.app import suite as suite_mod
    from adacli.report import suite as suite_report

    path = Path(folder) / "results.json"
    if suite_mod.results_kind(path) != suite_mod.SUITE_KIND:
        return False
    results = json.loads(path.read_text())
    if as_json:
        typer.echo(json.dumps(results, indent=1))
        return True
    _show_suite(results)
    if not no_plot:
        from adacli.report.html import write_suite_html

        if results.get("scores"):
            suite_report.plot_profiles(results, Path(folder) / suite_mod.PROFILES_PNG)
        console.print(f"wrote {write_suite_html(folder)}", highlight=False, soft_wrap=True)
    for w in results.get("workloads", []):
        console.print(f"{w['name']}: {Path(folder) / w['run_dir']} ({w['status']})", highlight=False)
    return True


def _show_suite(results) -> None:
    from adacli.report import suite as suite_report

    if not results.get("scores"):
        return
    console.print(suite_report.times_table(results))
    console.print(suite_report.suite_table(results))
    if len(results["labels"]) > 2:
        console.print(suite_report.wins_matrix(results))


def _gate_suite(suite_mod, outcome, baselines, baseline, save_baseline, junit_xml, failed) -> None:
    """suite --baseline / --save-baseline: one verdict line and gate table per workload; exit 1 on any
    regression (then no baseline is saved, nor when a trial failed)."""
    from adacli.ci import gate

    passed = not failed
    try:
        if baselines is not None:
            verdicts = suite_mod.gate_suite(outcome, baselines, baseline)
            for name, result in verdicts:
                console.print(gate.gate_table(result, title=f"regression gate: {name}"))
                for note in result.notes:
                    console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)
            for name, result in verdicts:  # one verdict line per workload, after the tables
                n_fail = len(result.failures)
                line = f"[green]PASS[/] {name}"
                if not result.passed:
                    line = f"[bold red]FAIL[/] {name}: {n_fail} regression(s)"
                console.print(line, highlight=False)
            passed = all(r.passed for _, r in verdicts)
            if junit_xml:
                suite_mod.write_suite_junit(verdicts, junit_xml)
                console.print(f"junit xml: {junit_xml}", highlight=False)
        if save_baseline:
            if passed:
                suite_mod.save_suite_baseline(outcome, save_baseline)
                console.print(f"baseline saved: {save_baseline}", highlight=False)
            else:
                why = "a trial failed" if failed else "a regression"
                why = f"baseline not saved ({save_baseline}): {why}"
                err_console.print(why, highlight=False)
    except AdacliError as e:
        raise fail(e) from None
    if not passed:
        raise typer.Exit(1)


# --- gate (adacli/gate.py) -------------------------------------------------------------------------


def _print_gate(result, *, as_json: bool, junit_xml: str | None, out: Console) -> None:
    """Show a gate result (rich table + notes, or JSON on stdout) and write JUnit XML if asked."""
    import json

    from adacli.ci import gate

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
    from adacli.ci import gate
    from adacli.errors import InputError

    if baseline is None:
        if junit_xml:
            raise InputError("needs --baseline (it holds the gate's verdicts)", field="--junit-xml")
        return None
    base = gate.load_baseline(baseline)
    gate.check_setup(base, recipe, baseline_path=baseline)
    return base


def _gate_after_compare(
    run_dir,
    base,
    *,
    baseline: str | None,
    save_baseline: str | None,
    junit_xml: str | None,
    as_json: bool,
    markdown: str | None = None,
) -> None:
    """compare --baseline / --save-baseline: judge the saved run, then save a baseline unless it regressed."""
    from adacli.ci import gate
    from adacli.report import tables as report

    out = err_console if as_json else console  # with --json, stdout carries only the run's JSON
    passed = True
    try:
        run = report.load_run(run_dir)
        if base is not None:
            tol = gate.tolerances_for(run.recipe)
            result = gate.gate_run(run, base, tol, baseline_path=baseline, run_dir=run.run_dir)
            _print_gate(result, as_json=False, junit_xml=junit_xml, out=out)
            passed = result.passed
            _store_gate(run, result)
        if markdown is not None:
            text = _run_markdown(run)
            if base is not None:
                from adacli.report.markdown import gate_markdown

                text = gate_markdown(result.to_dict()) + "\n" + text
            _write_markdown(markdown, text)
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


def _store_gate(run, result) -> None:
    """compare --baseline: keep the verdict in the run folder (gate.json) and show it in report.html."""
    from adacli.report import tables as report
    from adacli.report.html import GATE_JSON, write_report_html

    report.write_json(run.run_dir / GATE_JSON, result.to_dict())
    if run.trials:
        write_report_html(run.run_dir, run.trials)


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
    from adacli.ci import gate
    from adacli.report import tables as report

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
        _print_gate(
            result, as_json=as_json, junit_xml=junit_xml, out=err_console if markdown == "-" else console
        )
        if markdown is not None:
            from adacli.report.markdown import gate_markdown

            _write_markdown(markdown, gate_markdown(result.to_dict()))
    except AdacliError as e:
        raise fail(e) from None
    if not result.passed:
        raise typer.Exit(1)


# --- step-test (adacli/steptest.py) --------------------------------------------------------------------


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
    from pathlib import Path

    from adacli.ci import steptest
    from adacli.errors import CheckFailed, InputError

    out = err_console if as_json else console
    try:
        if fused not in ("auto", "yes", "no"):
            raise InputError(f"unknown value {fused!r}", field="--fused", allowed=["auto", "yes", "no"])
        plan = steptest.plan_step_test(optimizer, recipe_file)
        with out.status("step-test") as status:

            def progress(check: steptest.StepCheck) -> None:
                status.update(f"step-test: {check.optimizer} {check.check} {check.status.upper()}")

            report = steptest.run_step_test(plan, fused=fused, on_check=progress)  # type: ignore[arg-type]
    except AdacliError as e:
        raise fail(e) from None
    if junit_xml:
        path = Path(junit_xml)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(steptest.junit_xml(report), encoding="utf-8")
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


# --- bench (adacli/bench.py) -------------------------------------------------------------------------


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


# --- validate, schema, list (adacli/recipe.py, optim/registry.py, data.py, models.py) ----------------


@app.command("validate")
def validate_cmd(recipe_file: str = typer.Argument(..., metavar="RECIPE", help="a recipe YAML file")) -> None:
    """Check a recipe without running it: keys, values, names, data files, device, optimizers.

    Exit 0 and a short summary when it would run; exit 2 and a one-line error (file:line: field) if not."""
    from adacli.recipe import load_recipe

    try:
        recipe = load_recipe(recipe_file)  # a malformed recipe is rejected before torch is imported
        from adacli.optim.registry import assign_labels, resolve_optimizer
        from adacli.run.preflight import check_environment, preflight

        check_environment(recipe, recipe_file)
        labels = assign_labels(recipe.optimizers)
        _with_reference(recipe, None, recipe_file)
        resolved = [resolve_optimizer(s.name, s.hparams) for s in recipe.optimizers]
        checked = preflight(recipe, recipe_file)
    except AdacliError as e:
        raise fail(e) from None
    for warning in checked.warnings:
        err_console.print(f"[yellow]warning:[/] {_escape(warning)}", highlight=False, soft_wrap=True)
    b = recipe.budget
    budget = (
        f"{b.steps} steps" if b.steps else f"{b.epochs:g} epochs" if b.epochs else f"{b.seconds:g} s"
    ) + f" x batch {b.batch_size}"
    seeds = recipe.seed_list
    d = recipe.dataset
    size = f", image_size {d.image_size}" if d.image_size else ""
    from rich.markup import escape  # recipe text is data, not markup ("[0.9, 0.99]", labels)

    lines = [
        f"[bold green]OK[/] {escape(recipe_file)}: {recipe.name}",
        f"  model {escape(recipe.model.name)}, dataset {d.name}{size}{', augment' if d.augment else ''}, "
        f"budget {budget}, device {recipe.device}, {recipe.precision}",
        f"  {len(seeds)} seed(s) x {len(resolved)} optimizer(s) = {len(seeds) * len(resolved)} trials:",
    ]
    for label, spec, r in zip(labels, recipe.optimizers, resolved, strict=True):
        given = ", ".join(f"{k}={v}" for k, v in spec.hparams.items())
        lines.append(escape(f"    {label}: {r.qualname} ({r.source}){' ' + given if given else ''}"))
    lines += _sweep_lines(recipe)
    lines.append(
        f"  preflight: model built on {checked.device} ({checked.precision}), one forward/backward on a "
        f"batch of {checked.batch_size}, {checked.optimizer_steps} optimizer step(s)"
        + (f" ({checked.not_stepped} of users' own optimizers: built only)" if checked.not_stepped else "")
        + f": OK in {checked.seconds:.2f} s"
    )
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def _sweep_lines(recipe) -> list[str]:
    """validate: what a sweep recipe will run (configurations, selection, trials in all)."""
    from rich.markup import escape

    from adacli.run.sweep import expand, format_values

    sweeps = expand(recipe)
    if not any(sw.axes for sw in sweeps):
        return []
    seeds = recipe.seed_list
    n_sel = len(seeds) if recipe.sweep.seeds == "all" else 1
    total = sum(sw.n for sw in sweeps) * n_sel + (len(seeds) - n_sel) * len(sweeps)
    out = [
        f"  sweep: selection on the val split by {recipe.sweep.metric} on "
        f"{'every seed' if n_sel > 1 else f'seed {seeds[0]}'}, then the choice on every seed: {total} trials:"
    ]
    for sw in sweeps:
        axes = "; ".join(escape(format_values({k: v})).replace("=", " in ", 1) for k, v in sw.axes.items())
        out.append(f"    {sw.label}: {sw.n} configuration(s): {axes or 'nothing swept'}")
    return out


@app.command("schema")
def schema_cmd(
    out: str | None = typer.Option(None, "--out", "-o", metavar="FILE", help="write to FILE, not stdout"),
) -> None:
    """Print the recipe's JSON Schema (point your editor's YAML plugin at it for completion)."""
    import json
    from pathlib import Path

    from adacli.errors import InputError
    from adacli.recipe import recipe_schema

    text = json.dumps(recipe_schema(), indent=2)
    if out:
        try:
            Path(out).write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            raise fail(InputError(f"cannot write the schema: {e.strerror or e}", file=out)) from None
        err_console.print(f"wrote {out}", highlight=False)
    else:
        typer.echo(text)


@app.command("list")
def list_cmd(
    what: str = typer.Argument(..., metavar="models|optimizers|datasets", help="what to list"),
    pattern: str | None = typer.Argument(
        None, metavar="[PATTERN]", help="models: filter, e.g. resnet or '*vit*'"
    ),
) -> None:
    """Show the names a recipe can use: timm models, optimizers (by source), datasets."""
    from rich.table import Table

    from adacli.errors import InputError, closest

    kinds = ["models", "optimizers", "datasets"]
    try:
        if what not in kinds:
            raise InputError(f"cannot list {what!r}", allowed=kinds, suggestion=closest(what, kinds))
        if what == "models":
            from adacli.train.models import model_names

            names = model_names(pattern)
            if not names:
                raise InputError(f"no timm model matches {pattern!r}")
            table = Table(
                title=f"timm models ({len(names)}{' matching ' + repr(pattern) if pattern else ''})"
            )
            table.add_column("model")
            for n in names:
                table.add_row(n)
        elif what == "optimizers":
            table = _optimizers_table()
        else:
            table = _datasets_table()
    except AdacliError as e:
        raise fail(e) from None
    console.print(table)


def _optimizers_table():
    """Every optimizer name with where it resolves to (the name to write in a recipe first)."""
    from rich.table import Table

    from adacli.errors import InputError
    from adacli.optim.registry import (
        PO_EXTRA_HINT,
        PO_PREFIX,
        TIMM_PREFIX,
        optimizer_names,
        resolve_optimizer,
    )

    names = optimizer_names()
    table = Table(
        title="optimizers (plain names: adacli, then torch, then timm; timm:NAME is always timm; "
        "po:NAME is pytorch-optimizer)"
    )
    table.add_column("name")
    table.add_column("source")
    table.add_column("class")
    shadowed = {"adabelief", *names["torch"]}
    rows = [(n, "adacli") for n in names["adacli"]] + [(n, "torch") for n in names["torch"]]
    rows += [(TIMM_PREFIX + n if n in shadowed else n, "timm") for n in names["timm"]]
    rows += [(PO_PREFIX + n, "pytorch_optimizer") for n in names["pytorch_optimizer"]]
    for name, source in rows:
        try:
            cls = resolve_optimizer(name).qualname
        except InputError as e:
            cls = f"[dim]unavailable: {e.message.split(': ', 1)[-1]}[/]"
        table.add_row(name, source, cls)
    if not names["pytorch_optimizer"]:
        table.add_row("po:NAME", "pytorch_optimizer", f"[dim]not installed: {PO_EXTRA_HINT}[/]")
    table.add_row("package.module:Class", "import", "your torch.optim.Optimizer subclass")
    return table


def _datasets_table():
    from rich.table import Table

    from adacli.train.data import DATASET_INFO, dataset_names

    table = Table(title="datasets")
    table.add_column("name")
    table.add_column("what, where")
    for n in dataset_names():
        table.add_row(n, DATASET_INFO.get(n, ""))
    return table


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130
    (143 for a SIGTERM that a run turned into an interrupt, see adacli.run.interrupts)."""
    try:
        app()
    except KeyboardInterrupt as e:
        err_console.print("interrupted")
        sys.exit(getattr(e, "exit_code", 130))
