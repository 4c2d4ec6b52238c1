"""The recipe: pydantic models of the YAML file a user writes (DESIGN.md section 3).

Every model forbids unknown keys, because a typo silently ignored (``weight_decy: 0.1``) makes a
comparison quietly wrong. Reading YAML with line numbers is :mod:`adacli.recipe.source`'s. This module
is the data model only: the checks that need data, models or optimizers live in
:mod:`adacli.run.preflight`, so the lower stages (data, models, the optimizer registry) can import the
recipe without a cycle.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from adacli.errors import InputError, closest
from adacli.recipe.source import MAX_RECIPE_BYTES, KeyPath, line_at, parse_yaml, validation_error

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder")
DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"
MAX_SEEDS = 1000  # far beyond any comparison; keeps ``seeds: 1e9`` from building a billion-item plan
# torch's CPU generator (mt19937) is seeded with the low 32 bits of a seed: seeds 1 and 2**32 + 1 give the
# same weights and batches, so a seed list must stay below 2**32 to mean different seeds.
MAX_SEED = 2**32 - 1
# Budgets that can finish (a trial keeps a loss and a time per step, so 10 million steps is already
# hundreds of MB per trial) and sizes that are not typos: the data model refuses anything beyond.
MAX_STEPS = 10_000_000
MAX_EPOCHS = 100_000
MAX_SECONDS = 1_000_000  # 11.6 days of training clock per trial
MAX_BATCH = 1 << 20
MAX_IMAGES = 100_000_000  # synthetic images per split (whether they fit in memory: the preflight)


class StrictModel(BaseModel):
    """A model that refuses unknown keys (a typo silently ignored makes a comparison quietly wrong) and
    non-finite numbers (``.nan``/``.inf`` in any float field: a NaN learning rate "diverges", an infinite
    budget never ends, a NaN target compares false with everything)."""

    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: a value of a free-form mapping (optimizer hyperparameters, model kwargs): what YAML can write, every
#: number finite at any depth (``lr: {grid: [1e-3, .nan]}`` names ``optimizers[0].lr.grid[1]``)
FreeValue = TypeAliasType(
    "FreeValue",
    Union[StrictBool, StrictInt, FiniteFloat, str, list["FreeValue"], dict[str, "FreeValue"], None],  # noqa: UP007
)
#: ``seeds:`` of a recipe or suite: a count, or a list of distinct seeds the generators tell apart
Seeds = Union[  # noqa: UP007
    Annotated[int, Field(ge=1, le=MAX_SEEDS)],
    Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1, max_length=MAX_SEEDS)],
]
SEEDS_HELP = (
    f"a count (1..{MAX_SEEDS}) or a list of 1 to {MAX_SEEDS} distinct integers in 0..2**32-1 "
    "(torch seeds its generator with 32 bits: larger seeds repeat smaller ones)"
)


def distinct_seeds(v: Any) -> Any:
    """A repeated seed repeats the same trial: refused (for recipes and suites alike)."""
    if isinstance(v, list) and len(set(v)) != len(v):
        raise ValueError(f"seeds must be distinct (got {v}): a repeated seed repeats the same trial")
    return v


class ModelSpec(StrictModel):
    """A timm model by name; num_classes, in_chans and img_size come from the dataset."""

    name: str = Field(description="any timm model name, e.g. test_resnet, resnet18, vit_tiny_patch16_224")
    kwargs: dict[str, FreeValue] = Field(default_factory=dict, description="passed to timm.create_model")
    channels_last: bool = Field(False, description="use the channels_last memory format")
    compile: bool | Literal["graph"] = Field(
        False,
        description="true: wrap the model in torch.compile; graph: capture forward, backward and "
        "optimizer step in one CUDA graph (CUDA only; elsewhere, or for an optimizer that cannot be "
        "captured, the trial runs eagerly with a one-line note)",
    )


class DatasetSpec(StrictModel):
    """The images to train and test on, and how they are prepared (splits are fixed whatever the seed)."""

    name: str = Field(description="one of: " + ", ".join(DATASETS))
    image_size: int | None = Field(None, ge=4, le=1024, description="resize images to this size")
    augment: bool = Field(False, description="random crop + horizontal flip for natural images")
    root: str | None = Field(None, description="folder of a downloadable dataset or an imagefolder")
    download: bool = Field(False, description="download a torchvision dataset when files are missing")
    # synthetic only
    num_classes: int | None = Field(
        None, ge=2, le=100_000, description="synthetic: number of classes (others: must match the data)"
    )
    channels: int | None = Field(
        None, ge=1, le=4, description="synthetic: image channels (others: must match the data)"
    )
    train_size: int | None = Field(
        None, ge=1, le=MAX_IMAGES, description="synthetic: training images (others: a cap)"
    )
    test_size: int | None = Field(
        None, ge=1, le=MAX_IMAGES, description="synthetic: test images (others: a cap)"
    )
    difficulty: float | None = Field(
        None, ge=0.0, le=1000.0, description="synthetic: noise relative to signal (synthetic only)"
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="held out of train for sweep selection")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; allowed: {', '.join(DATASETS)}")
        return v


class BudgetSpec(StrictModel):
    """Exactly one of steps | epochs | seconds: the same for every optimizer."""

    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="training steps per trial")
    epochs: float | None = Field(None, gt=0, le=MAX_EPOCHS, description="passes over train (rounded up)")
    seconds: float | None = Field(None, gt=0, le=MAX_SECONDS, description="training-clock seconds (no evals)")
    batch_size: int = Field(64, ge=1, le=MAX_BATCH, description="training batch size")
    eval_every: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="steps between evaluations (default: 10 per run)"
    )
    eval_batch_size: int = Field(512, ge=1, le=MAX_BATCH, description="evaluation batch size")

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetSpec:
        given = [k for k in ("steps", "epochs", "seconds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of steps | epochs | seconds must be given, got {given or 'none'}")
        return self


class TargetSpec(StrictModel):
    """The level that steps- and seconds-to-target measure the time to."""

    metric: Literal["train_loss"] = Field("train_loss", description="smoothed training loss (EMA, beta 0.9)")
    value: float | None = Field(
        None,
        description="default: the highest final smoothed training loss "
        "among the non-diverged trials (the level every one reached)",
    )


class ScheduleSpec(StrictModel):
    """The learning-rate schedule, built alike for every optimizer (a time budget schedules on the clock)."""

    name: Literal["constant", "cosine", "step", "linear"] = Field("constant", description="lr curve")
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="linear warm-up steps, lr/N to lr")
    step_size: int | None = Field(None, ge=1, le=MAX_STEPS, description="step: steps between decays")
    gamma: float = Field(0.1, gt=0, le=1e6, description="step: decay factor")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine/linear: final lr / initial lr")


class OptimizerSpec(BaseModel):
    """An optimizer by name plus its hyperparameters; the hyperparameters are checked by the registry
    (their names and what the constructor accepts); here only that every number is finite."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    __pydantic_extra__: dict[str, FreeValue] = Field(init=False)

    name: str = Field(
        description="adabelief | any torch.optim name (lowercase) | a timm optimizer name | "
        "package.module:Class"
    )
    label: str | None = Field(None, description="name in tables and results (default: derived)")

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SweepSpec(StrictModel):
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


class GateSpec(StrictModel):
    """Tolerances of the regression gate (adacli gate / compare --baseline)."""

    accuracy_drop: float = Field(1.0, ge=0, description="allowed drop of final test accuracy, points")
    sigma_k: float = Field(2.0, ge=0, description="also allow k x the seed std of the baseline")
    gap_growth: float = Field(2.0, ge=0, description="allowed growth of the generalization gap, points")
    steps_growth: float = Field(0.25, ge=0, description="allowed relative growth of steps-to-target")
    step_time_growth: float | None = Field(None, ge=0, description="opt-in: allowed relative slowdown")


#: the metrics a verdict compares (adacli.analysis.verdict), in table order; the first is the default primary
VERDICT_METRICS = (
    "final_test_accuracy",
    "generalization_gap",
    "steps_to_target",
    "seconds_to_target",
    "final_train_loss",
    "best_test_accuracy",
    "loss_gap",
    "mean_train_loss",
    "step_time_ms",
    "optimizer_step_ms",
)
VerdictMetric = Literal[
    "final_test_accuracy",
    "generalization_gap",
    "steps_to_target",
    "seconds_to_target",
    "final_train_loss",
    "best_test_accuracy",
    "loss_gap",
    "mean_train_loss",
    "step_time_ms",
    "optimizer_step_ms",
]
SPENDING = ("pocock", "obrien-fleming")


class VerdictSpec(StrictModel):
    """What the verdict decides on (docs/statistics.md): the primary metric, whose comparisons give the
    headline and "best", and each metric's practical margin (the difference that does not matter)."""

    primary: VerdictMetric = Field("final_test_accuracy", description="the metric of the headline and 'best'")
    margins: dict[VerdictMetric, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="metric -> margin: points for accuracies and gaps, nats for loss_gap, a fraction "
        "for times, step costs and losses (0.05 = within 5 %); defaults in docs/statistics.md",
    )


class SeedPlan(StrictModel):
    """Seeds until decided: ``min`` seeds, then rounds of ``step`` more until the primary comparisons
    with the reference are decided (better, worse or equivalent) or ``max`` seeds have run; the error
    rates stay valid under this optional stopping (group-sequential design, docs/statistics.md)."""

    min: int = Field(3, ge=2, le=MAX_SEEDS, description="seeds of the first round")
    max: int = Field(20, ge=2, le=MAX_SEEDS, description="the most seeds a run may use")
    step: int | None = Field(None, ge=1, le=MAX_SEEDS, description="seeds added per round (default: min)")
    until: Literal["decided"] = Field(description="decided: stop once the primary comparisons are decided")
    spending: Literal["pocock", "obrien-fleming"] = Field(
        "pocock", description="alpha-spending function of the group-sequential design"
    )

    @model_validator(mode="after")
    def _order(self) -> SeedPlan:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self

    @property
    def round_size(self) -> int:
        return self.step or self.min


class Recipe(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="used for the run folder")
    model: ModelSpec
    dataset: DatasetSpec
    budget: BudgetSpec
    seeds: Seeds | SeedPlan = Field(
        1, description=SEEDS_HELP + ", or {min, max, until: decided}: add seeds until the verdict is decided"
    )
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
    verdict: VerdictSpec = Field(default_factory=VerdictSpec)

    # Where the recipe came from (set by load_recipe): for error messages of later checks.
    _file: str | None = PrivateAttr(None)
    _lines: dict[KeyPath, int] = PrivateAttr(default_factory=dict)
    # Keys the command line replaced (``--device`` ...): their errors name the option, not the file.
    _options: dict[KeyPath, str] = PrivateAttr(default_factory=dict)

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
        return distinct_seeds(v)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"unknown device {v!r}; allowed: {DEVICES_HELP}")
        return v

    @property
    def labels(self) -> list[str]:
        """The optimizers' unique labels, in order (see :func:`assign_labels`; InputError for duplicates)."""
        return assign_labels(self.optimizers)

    @property
    def seed_list(self) -> list[int]:
        """The seeds to run; with seeds until decided, those of the first round (the run adds the rest)."""
        if isinstance(self.seeds, SeedPlan):
            return list(range(self.seeds.min))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def seed_plan(self) -> SeedPlan | None:
        """The seeds-until-decided plan, or None for a fixed number of seeds."""
        return self.seeds if isinstance(self.seeds, SeedPlan) else None

    def with_seeds(self, seeds: int | list[int]) -> Recipe:
        """A copy running exactly ``seeds`` (a round of a seeds-until-decided run), file and lines kept."""
        new = self.model_copy(update={"seeds": seeds})
        new._file, new._lines = self._file, self._lines
        return new

    @property
    def source_file(self) -> str | None:
        """The file load_recipe read this recipe from (None when built in Python)."""
        return self._file

    def with_overrides(
        self,
        *,
        device: str | None = None,
        seeds: int | None = None,
        steps: int | None = None,
        until_decided: bool = False,
    ) -> Recipe:
        """This recipe with the command line's ``--device``, ``--seeds``, ``--steps`` and
        ``--seeds-until-decided`` applied (``--steps`` replaces any steps/epochs/seconds budget;
        ``--seeds-until-decided`` turns a fixed count into ``{min: count (at least 2), max: max(20, count),
        until: decided}``, or ``--seeds N`` into ``min: N``); itself when there is nothing to override.

        Re-validated through the models, so a bad value is one InputError naming the option; the copy
        keeps the file and line numbers of the original for later messages.
        """
        if device is None and seeds is None and steps is None and not until_decided:
            return self
        data = self.model_dump()
        if device is not None:
            data["device"] = device
        if seeds is not None:
            data["seeds"] = seeds
        if until_decided and not isinstance(data["seeds"], dict):
            count = data["seeds"] if isinstance(data["seeds"], int) else len(data["seeds"])
            data["seeds"] = {"min": max(2, count), "max": max(20, count), "until": "decided"}
        if steps is not None:
            data["budget"].update(steps=steps, epochs=None, seconds=None)
        from pydantic import ValidationError

        try:
            new = Recipe.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            option = {"device": "--device", "seeds": "--seeds"}.get(str(err["loc"][0]), "--steps")
            msg = err["msg"].removeprefix("Value error, ")
            raise InputError(f"{msg} (got {_short(err.get('input'))})", field=option) from None
        new._file, new._lines = self._file, self._lines
        given = {("device",): device, ("seeds",): seeds, ("budget", "steps"): steps}
        names = {("device",): "--device", ("seeds",): "--seeds", ("budget", "steps"): "--steps"}
        new._options = {**self._options, **{k: names[k] for k, v in given.items() if v is not None}}
        return new

    def option_for(self, *path: str | int) -> str | None:
        """The command-line option that set the key at ``path`` (``--device``), or None when the recipe
        file did: an error about that value must blame the option, not a line of the file."""
        return next((opt for key, opt in self._options.items() if tuple(path[: len(key)]) == key), None)

    def line_of(self, *path: str | int) -> int | None:
        """The line of a key in the recipe file (or of its nearest enclosing key), e.g.
        ``line_of("optimizers", 1, "lr")``; None when unknown."""
        return line_at(self._lines, tuple(path))


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt_value(x) for x in v)
    return str(v)


def assign_labels(specs: Sequence[OptimizerSpec]) -> list[str]:
    """Unique labels for a recipe's optimizers, in order.

    ``label`` if given; else the name, and where several entries share a name, the name plus the
    hyperparameters that differ among them (``adam(lr=0.01)`` vs ``adam(lr=0.001)``): the label alone
    must tell the rows of a table apart. Explicit labels must be unique (InputError otherwise).
    """
    explicit = [s.label for s in specs if s.label]
    dup = next((lbl for lbl in explicit if explicit.count(lbl) > 1), None)
    if dup is not None:
        raise InputError(f"two optimizers have the label {dup!r}; labels must be unique", field="optimizers")

    labels: list[str | None] = [s.label for s in specs]
    by_name: dict[str, list[int]] = {}
    for i, s in enumerate(specs):
        if not s.label:
            by_name.setdefault(s.name, []).append(i)
    taken = set(explicit)
    for name, idx in by_name.items():
        if len(idx) == 1 and name not in taken:
            labels[idx[0]] = name
            continue
        keys: list[str] = []
        for i in idx:
            for k in specs[i].hparams:
                if k not in keys:
                    keys.append(k)

        def shown(i: int, k: str) -> str | None:
            hp = specs[i].hparams
            return json.dumps(hp[k], default=repr, sort_keys=True) if k in hp else None

        differ = [k for k in keys if len({shown(i, k) for i in idx}) > 1]
        for i in idx:
            parts = [f"{k}={_fmt_value(specs[i].hparams[k])}" for k in differ if k in specs[i].hparams]
            labels[i] = f"{name}({', '.join(parts)})" if parts else name
    # Whatever still collides (identical entries, or a derived label equal to an explicit one) gets
    # -2, -3 ...; the first occurrence keeps the plain label.
    out: list[str] = []
    used = set(explicit)
    for i, lbl in enumerate(labels):
        assert lbl is not None
        if specs[i].label:
            out.append(lbl)
            continue
        candidate, n = lbl, 1
        while candidate in used:
            n += 1
            candidate = f"{lbl}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Errors:
    """A pydantic error whose list is narrowed to some of its errors (``validation_error`` reads
    ``errors()``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self._errors = errors

    def errors(self, include_url: bool = False) -> list[dict[str, Any]]:
        return self._errors


def recipe_validation_error(e: Any, data: Any, lines: dict[KeyPath, int], file: str) -> InputError:
    """A pydantic error of a recipe (or of a suite's inline workload) as one InputError.

    ``seeds`` written as a mapping is a seeds-until-decided plan: its own errors are reported
    (``seeds.until: 'forever' is not allowed; allowed: decided``), not the union's summary."""
    seeds = "seeds is " + SEEDS_HELP + ", or {min, max, until: decided}"
    messages = {("seeds",): seeds}
    if isinstance(data, dict) and isinstance(data.get("seeds"), dict):
        errors = e.errors(include_url=False)
        plan = [err for err in errors if err["loc"][:1] == ("seeds",) and "SeedPlan" in str(err["loc"][1:2])]
        e = _Errors(plan + [err for err in errors if err["loc"][:1] != ("seeds",)]) if plan else e
        messages = {}
    err = validation_error(
        e, data, lines, file, root=Recipe, choices={("dataset", "name"): DATASETS}, messages=messages
    )
    key = (err.field or "").removeprefix("verdict.margins.")
    if (err.field or "").startswith("verdict.margins.") and key not in VERDICT_METRICS:
        err = InputError(
            f"unknown metric {key!r}", file=file, line=err.line, field=err.field,
            allowed=list(VERDICT_METRICS), suggestion=closest(key, VERDICT_METRICS),
        )  # fmt: skip
    return err


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file; every problem is one InputError naming file, line and field.

    The returned recipe remembers its file and the line of every key (``recipe.line_of(...)``), so later
    checks (``adacli.run.preflight.check_environment``) can point at the line too.
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
    data, lines = parse_yaml(text, file)
    if data is None:
        raise InputError("empty recipe; see `adacli schema` or recipes/quickstart.yaml", file=file)
    if not isinstance(data, dict):
        raise InputError(
            f"a recipe is a mapping of keys (name, model, ...), not a {type(data).__name__}", file=file
        )
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        raise recipe_validation_error(e, data, lines, file) from None
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
