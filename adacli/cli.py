"""The ``adacli`` command line: thin Typer commands that call the library and map errors to exit codes.

Exit codes (DESIGN.md section 5): 0 success, 1 a check failed, 2 bad input, 130 interrupted.
Each command keeps its logic in the module named for it; here we only parse options, call, and print.
"""

from __future__ import annotations

import os
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
err_console = Console(stderr=True)


def _stdout_console() -> Console:
    """Tables at their natural width in pipes and CI logs, where rich would squeeze them to 80 columns."""
    terminal = Console()
    return terminal if terminal.is_terminal or os.environ.get("COLUMNS") else Console(width=200)


console = _stdout_console()


def fail(error: AdacliError) -> typer.Exit:
    """Print an adacli error as one line on stderr and return the Exit to raise."""
    from rich.markup import escape  # messages hold brackets ("[lo, hi]", "optimizers[0]"): not markup

    err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


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
    jobs: int = typer.Option(1, "--jobs", "-j", help="run N trials at once in local worker processes"),
    executor: str | None = typer.Option(
        None, "--executor", metavar="serial|local|ray", help="where trials run [serial; local with --jobs N]"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", metavar="ADDR", help="ray: cluster address [start a local Ray instance]"
    ),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", help="ray: CPUs reserved per trial"),
    gpus_per_trial: float | None = typer.Option(
        None, "--gpus-per-trial", help="ray: GPUs per trial [1 for CUDA recipes, else 0]"
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch threads per trial [serial: all; local: cores/jobs; ray: CPUs/trial]"
    ),
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_DIR", help="continue a run folder: finished trials are not run again"
    ),
) -> None:
    """Train every optimizer of a recipe on the same model, data and budget, and compare them."""
    import json

    from adacli import compare, report, scaleout, sweep_report
    from adacli.recipe import check_environment, load_recipe

    try:
        recipe = load_recipe(recipe_file)
        recipe = compare.apply_overrides(recipe, device=device, seeds=seeds, steps=steps)
        check_environment(recipe, recipe_file)
        gate_base = _gate_precheck(recipe, baseline, junit_xml)
        scale = _scale_options(
            recipe, jobs, executor, ray_address, cpus_per_trial, gpus_per_trial, threads, resume
        )
    except AdacliError as e:
        raise fail(e) from None

    def show(outcome: compare.CompareOutcome) -> None:
        if as_json:
            run = report.RunData(
                run_dir=outcome.run_dir,
                recipe={},
                environment={},
                trials=outcome.trials,
                summaries=outcome.summaries,
                target=outcome.target,
                status=outcome.status,
            )
            payload = report.run_json(run)
            if getattr(outcome, "sweep", None):
                payload["sweep"] = sweep_report.sweep_json(outcome.sweep)
            typer.echo(json.dumps(payload, indent=1))
            return
        title = f"{recipe.name}" + (" (interrupted)" if outcome.status != "complete" else "")
        if getattr(outcome, "sweep", None):
            console.print(sweep_report.sweep_table(outcome.sweep))
            title += " (chosen configurations)"
        console.print(report.summary_table(outcome.summaries, outcome.target, title=title))
        if isinstance(outcome, scaleout.ScaleOutcome):
            console.print(f"trials run: {outcome.ran}, reused: {outcome.reused}", highlight=False)
        console.print(f"run folder: {outcome.run_dir}", highlight=False, soft_wrap=True)

    # With --json, stdout carries only the JSON: progress goes to stderr.
    progress_console = err_console if as_json else console
    try:
        if scale is not None:  # sweeps, --jobs, --executor, --resume: adacli/scaleout.py
            with sweep_report.WorkersProgress(progress_console) as wprogress:
                outcome = scaleout.run_scaled(
                    recipe, recipe_path=recipe_file, out_dir=out, progress=wprogress, **scale
                )
        else:
            if threads is not None:  # a plain serial run: the trials run in this process
                import torch

                torch.set_num_threads(threads)
            with report.CompareProgress(progress_console) as progress:
                outcome = compare.run_compare(recipe, recipe_path=recipe_file, out_dir=out, progress=progress)
    except compare.CompareInterrupted as e:
        done = len(e.outcome.trials)
        if isinstance(e.outcome, scaleout.ScaleOutcome):  # sweep trials count too
            done = e.outcome.ran + e.outcome.reused
        resume = f"; continue with --resume {e.outcome.run_dir}" if scale is not None else ""
        err_console.print(
            f"interrupted: {done}/{e.outcome.planned} trials finished, saved in {e.outcome.run_dir}{resume}",
            highlight=False,
        )
        if e.outcome.trials:
            show(e.outcome)
        raise typer.Exit(130) from None
    except AdacliError as e:
        raise fail(e) from None
    show(outcome)
    if baseline or save_baseline:
        _gate_after_compare(
            outcome.run_dir,
            gate_base,
            baseline=baseline,
            save_baseline=save_baseline,
            junit_xml=junit_xml,
            as_json=as_json,
        )


def _scale_options(recipe, jobs, executor, ray_address, cpus_per_trial, gpus_per_trial, threads, resume):
    """compare's --jobs/--executor/--ray-address/--resume: None for a plain serial run, else the keyword
    arguments of scaleout.run_scaled (bad combinations: InputError, exit 2, before any training)."""
    from adacli import scaleout
    from adacli.errors import InputError
    from adacli.executors import EXECUTORS

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
    if not scaleout.wants_scaleout(recipe, jobs=jobs, executor=executor, resume=resume):
        return None
    kind = executor or ("local" if jobs > 1 else "serial")
    return {
        "executor": kind,
        "jobs": jobs,
        "threads": threads,
        "ray_address": ray_address,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
        "resume": resume,
    }


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
    except AdacliError as e:
        raise fail(e) from None
    curves = None
    if not no_plot and run.trials:
        try:  # a read-only run folder (a shared baseline) still gets its table
            report.plot_curves(run.trials, run.run_dir / report.CURVES_PNG, target=run.target)
            curves = run.run_dir / report.CURVES_PNG
        except OSError as e:
            err_console.print(f"warning: curves.png not re-drawn ({e})", highlight=False)
    if as_json:
        typer.echo(json.dumps(report.run_json(run), indent=1))
        return
    title = f"{run.recipe.get('name', run.run_dir.name)} ({run.status})"
    if isinstance(run.extra.get("sweep"), dict):  # a sweep run: the chosen configurations first
        from adacli import sweep_report

        console.print(sweep_report.sweep_table(run.extra["sweep"]))
    console.print(report.summary_table(run.summaries, run.target, title=title))
    if curves is not None:
        console.print(f"curves: {curves}", highlight=False)


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

    from adacli import steptest
    from adacli.errors import CheckFailed, InputError

    out = err_console if as_json else console
    try:
        if fused not in ("auto", "yes", "no"):
            raise InputError(f"unknown value {fused!r}", field="--fused", allowed=["auto", "yes", "no"])
        plan = steptest.plan_step_test(optimizer, recipe_file)
        with out.status("step-test") as status:

            def progress(check: steptest.Check) -> None:
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

    from adacli import bench

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
    from adacli.optim.registry import assign_labels, resolve_optimizer
    from adacli.recipe import check_environment, load_recipe

    try:
        recipe = load_recipe(recipe_file)
        check_environment(recipe, recipe_file)
        labels = assign_labels(recipe.optimizers)
        resolved = [resolve_optimizer(s.name, s.hparams) for s in recipe.optimizers]
    except AdacliError as e:
        raise fail(e) from None
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
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def _sweep_lines(recipe) -> list[str]:
    """validate: what a sweep recipe will run (configurations, selection, trials in all)."""
    from rich.markup import escape

    from adacli.sweep import expand, format_values

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

    from adacli.recipe import recipe_schema

    text = json.dumps(recipe_schema(), indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
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
            from adacli.models import model_names

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
    from adacli.optim.registry import TIMM_PREFIX, optimizer_names, resolve_optimizer

    names = optimizer_names()
    table = Table(title="optimizers (plain names: adacli, then torch, then timm; timm:NAME is always timm)")
    table.add_column("name")
    table.add_column("source")
    table.add_column("class")
    shadowed = {"adabelief", *names["torch"]}
    rows = [(n, "adacli") for n in names["adacli"]] + [(n, "torch") for n in names["torch"]]
    rows += [(TIMM_PREFIX + n if n in shadowed else n, "timm") for n in names["timm"]]
    for name, source in rows:
        try:
            cls = resolve_optimizer(name).qualname
        except InputError as e:
            cls = f"[dim]unavailable: {e.message.split(': ', 1)[-1]}[/]"
        table.add_row(name, source, cls)
    table.add_row("package.module:Class", "import", "your torch.optim.Optimizer subclass")
    return table


def _datasets_table():
    from rich.table import Table

    from adacli.data import DATASET_INFO, dataset_names

    table = Table(title="datasets")
    table.add_column("name")
    table.add_column("what, where")
    for n in dataset_names():
        table.add_row(n, DATASET_INFO.get(n, ""))
    return table


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
