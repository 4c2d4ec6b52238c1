"""The recipe: pydantic models of the YAML file a user writes (DESIGN.md section 3).

Every model forbids unknown keys, because a typo silently ignored (``weight_decy: 0.1``) makes a
comparison quietly wrong. Loading with line numbers lives below the models. This module is the data
model only: the checks that need data, models or optimizers live in :mod:`adacli.preflight`, so the
lower stages (data, models, the optimizer registry) can import the recipe without a cycle.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from adacli.errors import InputError

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder")
DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"
MAX_SEEDS = 1000  # far beyond any comparison; keeps ``seeds: 1e9`` from building a billion-item plan


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelSpec(_Strict):
    """A timm model by name; num_classes, in_chans and img_size come from the dataset."""

    name: str = Field(description="any timm model name, e.g. test_resnet, resnet18, vit_tiny_patch16_224")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to timm.create_model")
    channels_last: bool = Field(False, description="use the channels_last memory format")
    compile: bool | Literal["graph"] = Field(
        False,
        description="true: wrap the model in torch.compile; graph: capture forward, backward and "
        "optimizer step in one CUDA graph (CUDA only; elsewhere, or for an optimizer that cannot be "
        "captured, the trial runs eagerly with a one-line note)",
    )


class DatasetSpec(_Strict):
    """The images to train and test on, and how they are prepared (splits are fixed whatever the seed)."""

    name: str = Field(description="one of: " + ", ".join(DATASETS))
    image_size: int | None = Field(None, ge=4, le=1024, description="resize images to this size")
    augment: bool = Field(False, description="random crop + horizontal flip for natural images")
    root: str | None = Field(None, description="folder of a downloadable dataset or an imagefolder")
    download: bool = Field(False, description="download a torchvision dataset when files are missing")
    # synthetic only
    num_classes: int | None = Field(None, ge=2, description="synthetic: number of classes")
    channels: int | None = Field(None, ge=1, le=4, description="synthetic: image channels")
    train_size: int | None = Field(None, ge=1, description="synthetic: training images (others: a cap)")
    test_size: int | None = Field(None, ge=1, description="synthetic: test images (others: a cap)")
    difficulty: float | None = Field(None, ge=0.0, description="synthetic: noise relative to signal")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="held out of train for sweep selection")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(DATASETS)}")
        return v


class BudgetSpec(_Strict):
    """Exactly one of steps | epochs | seconds: the same for every optimizer."""

    steps: int | None = Field(None, ge=1, description="training steps per trial")
    epochs: float | None = Field(None, gt=0, description="passes over train (rounded up)")
    seconds: float | None = Field(None, gt=0, description="training-clock seconds (no evals)")
    batch_size: int = Field(64, ge=1, description="training batch size")
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations (default: 10 per run)")
    eval_batch_size: int = Field(512, ge=1, description="evaluation batch size")

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetSpec:
        given = [k for k in ("steps", "epochs", "seconds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of steps | epochs | seconds must be given, got {given or 'none'}")
        return self


class TargetSpec(_Strict):
    """The level that steps- and seconds-to-target measure the time to."""

    metric: Literal["train_loss"] = Field("train_loss", description="smoothed training loss (EMA, beta 0.9)")
    value: float | None = Field(
        None,
        description="default: the highest final smoothed training loss "
        "among the non-diverged trials (the level every one reached)",
    )


class ScheduleSpec(_Strict):
    """The learning-rate schedule, built alike for every optimizer (a time budget schedules on the clock)."""

    name: Literal["constant", "cosine", "step", "linear"] = Field("constant", description="lr curve")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up steps, lr/N to lr")
    step_size: int | None = Field(None, ge=1, description="step: steps between decays")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine/linear: final lr / initial lr")


class OptimizerSpec(BaseModel):
    """An optimizer by name plus its hyperparameters; the hyperparameters are checked by the registry."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(
        description="adabelief | any torch.optim name (lowercase) | a timm optimizer name | "
        "package.module:Class"
    )
    label: str | None = Field(None, description="name in tables and results (default: derived)")

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SweepSpec(_Strict):
    """How a hyperparameter sweep picks each optimizer's configuration (see docs/scale-out.md).

    A sweep is any optimizer hyperparameter written as a grid (a list, or ``{grid: [...]}``) or as
    ``{log_range: [lo, hi], n: N}``; this section only says how the winner is chosen.
    """

    metric: Literal["val_accuracy", "val_loss"] = Field(
        "val_accuracy",
        description="selection metric on the validation split at the end of the budget "
        "(val_accuracy: highest wins, ties by lower val loss; val_loss: lowest wins, ties by accuracy)",
    )
    seeds: Literal["first", "all"] = Field(
        "first", description="select on the first seed only, or on the mean over every seed"
    )
    equal_budget: bool = Field(
        True,
        description="every optimizer must get the same number of configurations; false allows "
        "different counts (the tables then say so)",
    )


class GateSpec(_Strict):
    """Tolerances of the regression gate (adacli gate / compare --baseline)."""

    accuracy_drop: float = Field(1.0, ge=0, description="allowed drop of final test accuracy, points")
    sigma_k: float = Field(2.0, ge=0, description="also allow k x the seed std of the baseline")
    gap_growth: float = Field(2.0, ge=0, description="allowed growth of the generalization gap, points")
    steps_growth: float = Field(0.25, ge=0, description="allowed relative growth of steps-to-target")
    step_time_growth: float | None = Field(None, ge=0, description="opt-in: allowed relative slowdown")


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="used for the run folder")
    model: ModelSpec
    dataset: DatasetSpec
    budget: BudgetSpec
    seeds: (
        Annotated[int, Field(ge=1, le=MAX_SEEDS)]
        | Annotated[list[Annotated[int, Field(ge=0, lt=2**63)]], Field(min_length=1, max_length=MAX_SEEDS)]
    ) = Field(1, description=f"a count (1..{MAX_SEEDS}) or an explicit list of distinct seeds >= 0")
    device: str = Field("auto", description=DEVICES_HELP)
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="bf16/fp16: autocast")
    target: TargetSpec = Field(default_factory=TargetSpec)
    schedule: ScheduleSpec | None = None
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    gate: GateSpec = Field(default_factory=GateSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    reference: str | None = Field(
        None, description="label of the reference optimizer: the table gains a 'Δ vs ref' column"
    )

    # Where the recipe came from (set by load_recipe): for error messages of later checks.
    _file: str | None = PrivateAttr(None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @field_validator("optimizers", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``optimizers: [adabelief, adam]``: a bare name is an optimizer with its defaults."""
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name becomes a folder under runs/: ``..``, ``.`` or a hidden name would escape or hide it."""
        if v.startswith("."):
            raise ValueError("a run name cannot start with '.': it names a folder under runs/")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct (got {v}): a repeated seed repeats the same trial")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"unknown device {v!r}; allowed: {DEVICES_HELP}")
        return v

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def source_file(self) -> str | None:
        """The file load_recipe read this recipe from (None when built in Python)."""
        return self._file

    def line_of(self, *path: str | int) -> int | None:
        """The line of a key in the recipe file (or of its nearest enclosing key), e.g.
        ``line_of("optimizers", 1, "lr")``; None when unknown."""
        return _line(self._lines, tuple(path))


# --- loading with line numbers ----------------------------------------------------------------------
# Below: YAML -> dict with a line for every key/item, pydantic validation errors mapped to one-line
# InputErrors (file:line: field.path: what is wrong; allowed; did you mean). The checks that need the
# environment (data files, device, model, optimizers) are adacli.preflight's.

Path_ = tuple[str | int, ...]


def _fmt_path(path: Path_) -> str:
    """``optimizers[0].lr``; a key that is not a plain name is quoted (``model['a b']``)."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not re.fullmatch(r"[\w.:\-]+", str(p)):
            out += f"[{str(p)!r}]"
        else:
            out += f".{p}" if out else str(p)
    return out


def _recipe_loader() -> type:
    """A SafeLoader that reads ``3e-6`` and ``1E5`` as floats.

    PyYAML follows YAML 1.1, where a float needs a dot (``3.0e-6``); ``lr: 3e-6`` would arrive as the
    string ``"3e-6"`` and fail deep inside an optimizer's constructor. YAML 1.2 (and every user) reads
    it as a number, so we add that resolver.
    """
    import yaml

    # libyaml's parser when PyYAML has it (about 10x faster on a large malformed file), else Python's.
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class RecipeLoader(base):  # type: ignore[misc, valid-type]
        pass

    RecipeLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return RecipeLoader


# Limits that keep a malformed or hostile file from hanging or crashing the loader (DESIGN.md section
# 6: a malformed recipe is rejected in < 2 s whatever its size or aliases). A real recipe is a few
# hundred bytes, a handful of aliases, nested a few levels, a few hundred values.
MAX_RECIPE_BYTES = 64 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 40
MAX_VALUES = 5_000  # keys and items after aliases are expanded (an alias bomb expands exponentially)


def _check_yaml_shape(text: str, file: str) -> None:
    """Count aliases and nesting on the event stream (linear, no recursion) before anything is built."""
    import yaml

    aliases = depth = 0
    for events, event in enumerate(yaml.parse(text, Loader=_recipe_loader()), start=1):
        if events > 2 * MAX_VALUES:
            line = event.start_mark.line + 1
            raise InputError(f"more than {MAX_VALUES} values: not a recipe", file=file, line=line)
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                line = event.start_mark.line + 1
                msg = f"more than {MAX_ALIASES} YAML aliases (*name): a recipe needs a few at most"
                raise InputError(msg, file=file, line=line)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _yaml_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML (safe) and record the 1-based line of every mapping key and sequence item by path.

    Duplicate keys are errors: YAML would silently keep the last one, which is the same silent-typo
    trap as an unknown key. Aliases, nesting and the expanded size are limited (see MAX_*).
    """
    import yaml

    loader = _recipe_loader()(text)
    lines: dict[Path_, int] = {}
    count = [0]
    try:
        _check_yaml_shape(text, file)
        node = loader.get_single_node()
        if node is None:
            return None, lines

        def walk(n: Any, path: Path_) -> None:
            count[0] += 1
            if count[0] > MAX_VALUES:
                msg = f"more than {MAX_VALUES} values once YAML aliases are expanded (an alias bomb?)"
                raise InputError(msg, file=file, line=n.start_mark.line + 1)
            if isinstance(n, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for k, v in n.value:
                    key = loader.construct_object(k, deep=True)
                    line = k.start_mark.line + 1
                    if isinstance(key, (str, int)) and key in seen:
                        raise InputError(
                            f"duplicate key {key!r} (first on line {seen[key]})",
                            file=file,
                            line=line,
                            field=_fmt_path((*path, key)),
                        )
                    if isinstance(key, (str, int)):
                        seen[key] = line
                        lines[(*path, key)] = line
                        walk(v, (*path, key))
            elif isinstance(n, yaml.SequenceNode):
                for i, item in enumerate(n.value):
                    lines[(*path, i)] = item.start_mark.line + 1
                    walk(item, (*path, i))

        walk(node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(f"{e.context or ''} {e.problem or ''}".split())
        raise InputError(
            f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {' '.join(str(e).split())}", file=file) from None
    except RecursionError:  # the limits above should prevent it; never a traceback if they do not
        raise InputError(f"nested too deeply (limit {MAX_DEPTH} levels)", file=file) from None
    finally:
        loader.dispose()
    return data, lines


def _field_model(path: Path_, root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    """The pydantic model that holds the keys at ``path`` (e.g. ('optimizers', 0) -> OptimizerSpec);
    ``root``: the model of the whole file (default Recipe; a suite file has its own)."""
    import typing

    model: Any = root or Recipe
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = None
        stack = [ann]
        while stack:  # unwrap Optional[...] / list[...] / Annotated[...] down to a model class
            a = stack.pop()
            if isinstance(a, type) and issubclass(a, BaseModel):
                model = a
                break
            stack.extend(typing.get_args(a))
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _literal_values(path: Path_, root: type[BaseModel] | None = None) -> list[str] | None:
    import typing

    if not path or not isinstance(path[-1], str):
        return None
    parent = _field_model(path[:-1], root)
    if parent is None or path[-1] not in parent.model_fields:
        return None
    ann = parent.model_fields[path[-1]].annotation
    for a in [ann, *typing.get_args(ann)]:
        if typing.get_origin(a) is Literal:
            return [str(v) for v in typing.get_args(a)]
    return None


def _data_path(data: Any, loc: tuple, root: type[BaseModel] | None = None) -> Path_:
    """The part of a pydantic error location that exists in the data (drops union tags like 'list[int]'),
    plus a missing field's name (so 'model.name' is named even though the key is absent)."""
    path: list[str | int] = []
    cur = data
    for part in loc:
        in_dict = isinstance(cur, dict) and part in cur
        in_list = isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        if in_dict or in_list:
            path.append(part)
            cur = cur[part]
        else:
            model = _field_model(tuple(path), root)
            if isinstance(part, str) and model is not None and part in model.model_fields:
                path.append(part)
            break
    return tuple(path)


def _line(lines: dict[Path_, int], path: Path_) -> int | None:
    for i in range(len(path), 0, -1):
        if path[:i] in lines:
            return lines[path[:i]]
    return None


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validation_error(
    e: Any, data: Any, lines: dict[Path_, int], file: str, root: type[BaseModel] | None = None
) -> InputError:
    """The first pydantic error as one InputError: file, line, field path, what is allowed.

    ``root``: the model validated (default Recipe), so that allowed keys and values come from it."""
    from adacli.errors import closest

    errors = e.errors(include_url=False)
    # An unknown key first: a misspelt required key ('optimisers') is also reported missing, and the
    # unknown key with its did-you-mean is the one that says what to fix.
    first = next((err for err in errors if err["type"] == "extra_forbidden"), errors[0])
    path = _data_path(data, first["loc"], root)
    same = [err for err in errors if _data_path(data, err["loc"], root) == path]
    kind = first["type"]
    line = _line(lines, path)
    field = _fmt_path(path) or None

    if kind == "extra_forbidden":
        key = path[-1] if path else first["loc"][-1]
        model = _field_model(path[:-1], root)
        allowed = list(model.model_fields) if model else None
        return InputError(
            f"unknown key {key!r}",
            file=file,
            line=line,
            field=field,
            allowed=allowed,
            suggestion=closest(str(key), allowed) if allowed else None,
        )
    value = first.get("input")
    if path and path[-1] == "name" and path[:-1] == ("dataset",) and isinstance(value, str):
        return InputError(
            f"unknown dataset {value!r}",
            file=file,
            line=line,
            field=field,
            allowed=DATASETS,
            suggestion=closest(value, DATASETS),
        )
    if kind == "literal_error":
        allowed = _literal_values(path, root)
        return InputError(
            f"{value!r} is not allowed",
            file=file,
            line=line,
            field=field,
            allowed=allowed,
            suggestion=closest(str(value), allowed) if allowed else None,
        )
    if kind == "missing":
        return InputError("missing required key", file=file, line=line, field=field)
    if path[:1] == ("seeds",) and "distinct" not in first["msg"]:
        msg = (
            f"seeds is a count (1..{MAX_SEEDS}) or a list of 1 to {MAX_SEEDS} distinct integers >= 0 "
            f"(got {_short_repr(value)})"
        )
        return InputError(msg, file=file, line=line, field=field)
    msgs = list(dict.fromkeys(err["msg"].removeprefix("Value error, ") for err in same))
    msg = " or ".join(m[0].lower() + m[1:] if i else m for i, m in enumerate(msgs))
    if kind != "missing" and not isinstance(value, (dict, list)) and value is not None:
        msg += f" (got {_short_repr(value)})"
    return InputError(msg, file=file, line=line, field=field)


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; every problem is one InputError naming file, line and field.

    The returned recipe remembers its file and the line of every key (``recipe.line_of(...)``), so later
    checks (``adacli.preflight.check_environment``) can point at the line too.
    """
    from pydantic import ValidationError

    file = str(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(
            "recipe file not found" if not p.exists() else "recipe path is not a file", file=file
        )
    try:
        size = p.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise InputError(f"{size} bytes: a recipe is at most {MAX_RECIPE_BYTES // 1024} KiB", file=file)
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read recipe: {e}", file=file) from None
    data, lines = _yaml_with_lines(text, file)
    if data is None:
        raise InputError("empty recipe; see `adacli schema` or recipes/quickstart.yaml", file=file)
    if not isinstance(data, dict):
        raise InputError(
            f"a recipe is a mapping of keys (name, model, ...), not a {type(data).__name__}", file=file
        )
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, data, lines, file) from None
    recipe._file = file
    recipe._lines = lines
    return recipe


def recipe_schema() -> dict[str, Any]:
    """The recipe's JSON Schema (for editor completion and validation of YAML files)."""
    schema = Recipe.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "adacli recipe",
        "description": "An adacli optimizer-comparison recipe (YAML); see docs/recipes.md.",
    }
