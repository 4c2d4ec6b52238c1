"""``adacli validate``, ``adacli schema`` and ``adacli list``: whether a recipe would run, what it may say."""

from __future__ import annotations

from typing import Any

import typer

from adacli.cli.common import app, console, err_console, fail, warn
from adacli.errors import AdacliError


@app.command("validate")
def validate_cmd(recipe_file: str = typer.Argument(..., metavar="RECIPE", help="a recipe YAML file")) -> None:
    """Check a recipe without running it: keys, values, names, data files, device, optimizers.

    Exit 0 and a short summary when it would run; exit 2 and a one-line error (file:line: field) if not."""
    from adacli.recipe import load_recipe

    try:
        recipe = load_recipe(recipe_file)  # a malformed recipe is rejected before torch is imported
        from adacli.app.compare import with_reference

        with_reference(recipe, None)  # labels and the reference: static, also before torch
        from adacli.optim.registry import resolve_optimizer
        from adacli.recipe import assign_labels
        from adacli.run.preflight import check_environment, preflight

        check_environment(recipe, recipe_file)
        labels = assign_labels(recipe.optimizers)
        resolved = [resolve_optimizer(s.name, s.hparams) for s in recipe.optimizers]
        checked = preflight(recipe, recipe_file)
    except AdacliError as e:
        raise fail(e) from None
    for warning in checked.warnings:
        warn(warning)
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
        f"  {len(seeds)} seed(s) x {len(resolved)} optimizer(s) = {len(seeds) * len(resolved)} trials"
        + _rounds_text(recipe, len(resolved)),
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


def _rounds_text(recipe: Any, n_optimizers: int) -> str:
    """validate: what seeds until decided adds (``, then rounds of 3 seeds up to 20 (80 trials) ...``)."""
    plan = recipe.seed_plan
    if plan is None:
        return ":"
    return (
        f" first, then rounds of {plan.round_size} seed(s) until decided, up to {plan.max} seeds "
        f"({plan.max * n_optimizers} trials):"
    )


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
