"""The suite file: one optimizer list judged on several workloads (DESIGN.md section 3).

A suite file names the optimizers once and lists workloads (recipe files, or inline recipe keys). Each
workload becomes a normal :class:`~adacli.recipe.Recipe` (the suite's optimizers, the suite's seeds unless
the workload sets its own); :mod:`adacli.app.suite` runs them. Every problem is one InputError naming the
file that holds the key (the suite file, or the workload's recipe file), its line and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from adacli.errors import InputError, closest
from adacli.recipe.source import KeyPath, format_path, line_at, parse_yaml, validation_error
from adacli.recipe.spec import (
    SEEDS_HELP,
    OptimizerSpec,
    Recipe,
    Seeds,
    StrictModel,
    distinct_seeds,
    recipe_validation_error,
)

MEASURES = ("steps", "seconds")


class SuiteSpec(StrictModel):
    """The suite file: workloads judged together with one optimizer list."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="used for the suite folder")
    seeds: Seeds | None = Field(
        None, description="default seeds of every workload (as a recipe's); a workload may set its own"
    )
    optimizers: list[OptimizerSpec] = Field(min_length=1, description="the same list for every workload")
    reference: str | None = Field(None, description="label the speed-ups are measured against [first]")
    measure: Literal["steps", "seconds"] = Field("steps", description="time to target in steps or seconds")
    workloads: list[dict[str, Any]] = Field(
        min_length=1,
        description="each {recipe: path} (its optimizers are ignored) or inline recipe keys but optimizers",
    )

    @field_validator("optimizers", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``optimizers: [adabelief, adam]``, as in a recipe."""
        return [{"name": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        return distinct_seeds(v)


@dataclass
class Workload:
    """One workload of a suite: its recipe (the suite's optimizers) and where it came from."""

    name: str
    recipe: Recipe
    recipe_path: str | None  # the recipe file, or None for an inline workload


@dataclass
class Suite:
    spec: SuiteSpec
    workloads: list[Workload]
    file: str
    labels: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.spec.reference or self.labels[0]

    def with_overrides(self, **overrides: Any) -> Suite:
        """The command line's --device/--seeds/--steps on every workload (see Recipe.with_overrides)."""
        for w in self.workloads:
            w.recipe = w.recipe.with_overrides(**overrides)
        return self


def _read_yaml(path: Path, what: str) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    file = str(path)
    if not path.is_file():
        raise InputError(
            f"{what} file not found" if not path.exists() else f"{what} path is not a file", file=file
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what}: {e}", file=file) from None
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise InputError(f"a {what} is a mapping of keys (name, ...), not {kind}", file=file)
    return data, lines


def _at(message: str, file: Path, lines: dict[KeyPath, int], path: tuple, **kw: Any) -> InputError:
    """An InputError at ``path`` of ``file`` (its line and dotted field)."""
    return InputError(message, file=str(file), line=line_at(lines, path), field=format_path(path), **kw)


def _check_keys(
    data: dict[str, Any], fields: list[str], file: Path, lines: dict[KeyPath, int], at: tuple
) -> None:
    """Unknown keys first: pydantic would report the key a typo left "missing" before the typo itself."""
    unknown = next((k for k in data if k not in fields), None)
    if unknown is not None:
        msg = f"unknown key {unknown!r}"
        raise _at(msg, file, lines, (*at, unknown), allowed=fields, suggestion=closest(str(unknown), fields))


def _workload(
    entry: Any, i: int, spec: SuiteSpec, raw_optimizers: Any, suite_file: Path, lines: dict[KeyPath, int]
) -> Workload:
    """Workload ``i`` as a Recipe: a recipe file (plus overrides) or inline keys, with the suite's
    optimizers and (unless the entry sets them) its seeds. Errors name the file that holds the key."""
    here = ("workloads", i)
    if not isinstance(entry, dict):
        raise InputError(
            "a workload is {recipe: path} or inline recipe keys (name, model, dataset, budget ...)",
            file=str(suite_file),
            line=line_at(lines, here),
            field=format_path(here),
        )
    if "optimizers" in entry:
        msg = "a workload has no optimizers of its own: the suite's list runs on every workload"
        raise _at(msg, suite_file, lines, (*here, "optimizers"))
    _check_keys(entry, ["recipe", *Recipe.model_fields], suite_file, lines, here)
    overrides = {k: v for k, v in entry.items() if k != "recipe"}
    sub_lines = {p[2:]: n for p, n in lines.items() if p[:2] == here and len(p) > 2}
    prefix = format_path(here)
    if "recipe" in entry:
        path: Path | None = _recipe_path(entry["recipe"], suite_file, lines, here)
        data, rlines = _read_yaml(path, "recipe")
        if "workloads" in data:  # the suite itself, or another suite: not a workload
            what = "this suite file itself" if path.resolve() == suite_file.resolve() else "a suite file"
            msg = f"{entry['recipe']!r} is {what}, not a recipe: a workload is one recipe"
            raise _at(msg, suite_file, lines, (*here, "recipe"))
        data = {k: v for k, v in data.items() if k != "optimizers"}
        file = str(path)
    else:
        path, data, rlines, file = None, {}, sub_lines, str(suite_file)
    data.update(overrides)
    if spec.seeds is not None and "seeds" not in entry:
        data["seeds"] = spec.seeds
    data["optimizers"] = raw_optimizers
    if "reference" not in entry:  # the optimizers are the suite's, and so is the reference of each table
        data["reference"] = spec.reference
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        err = recipe_validation_error(e, data, rlines, file)
        key = (err.field or "").split(".")[0].split("[")[0]
        if path is None or key in overrides:  # the key is written in the suite file
            err = recipe_validation_error(e, data, sub_lines, str(suite_file)).under(prefix)
        raise err from None
    where = rlines if path is None else {p: n for p, n in rlines.items() if p[:1] not in overrides}
    recipe._file = file
    recipe._lines = where
    return Workload(recipe.name, recipe, str(path) if path is not None else None)


def _recipe_path(value: Any, suite_file: Path, lines: dict[KeyPath, int], here: tuple) -> Path:
    """A workload's recipe file, relative to the suite file."""
    if not isinstance(value, str) or not value.strip():
        raise _at("recipe is the path of a recipe file", suite_file, lines, (*here, "recipe"))
    p = Path(value)
    return p if p.is_absolute() else suite_file.parent / p


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Read and validate a suite file and every workload; each problem is one InputError (exit 2)."""
    from adacli.recipe.spec import assign_labels

    suite_file = Path(path)
    file = str(suite_file)
    data, lines = _read_yaml(suite_file, "suite")
    if "workloads" not in data and {"model", "dataset", "budget"} & set(data):
        raise InputError(
            f"a recipe, not a suite (no 'workloads:'): run it with `adacli compare {file}`, or list it in a "
            "suite as `workloads: [{recipe: ...}]`",
            file=file,
        )
    _check_keys(data, list(SuiteSpec.model_fields), suite_file, lines, ())
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as e:
        seeds = {("seeds",): "seeds is " + SEEDS_HELP}
        raise validation_error(e, data, lines, file, root=SuiteSpec, messages=seeds) from None
    workloads = [
        _workload(w, i, spec, data["optimizers"], suite_file, lines) for i, w in enumerate(spec.workloads)
    ]
    seen: dict[str, int] = {}
    for i, w in enumerate(workloads):
        if w.name in seen:
            raise InputError(
                f"two workloads are named {w.name!r} (workloads[{seen[w.name]}] too): each gets its own run "
                "folder, set a distinct name",
                file=file,
                line=line_at(lines, ("workloads", i)),
                field=f"workloads[{i}].name",
            )
        seen[w.name] = i
    try:
        labels = assign_labels(spec.optimizers)
    except InputError as e:
        raise e.located(file=file, line=line_at(lines, ("optimizers",)), field="optimizers") from None
    if spec.reference is not None and spec.reference not in labels:
            raise InputError(
            f"reference {spec.reference!r} is not an optimizer label of this suite",
            file=file,
            line=line_at(lines, ("reference",)),
            field="reference",
            allowed=labels,
            suggestion=closest(spec.reference, labels),
        )
    for w in workloads:  # every workload's table, and its default target, are about the suite's reference
        if w.recipe.reference is None:
            w.recipe.reference = spec.reference or labels[0]
    return Suite(spec, workloads, file, labels)
