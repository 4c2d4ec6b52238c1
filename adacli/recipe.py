"""The recipe: pydantic models of the YAML file a user writes (DESIGN.md section 3).

Every model forbids unknown keys, because a typo silently ignored (``weight_decy: 0.1``) makes a
comparison quietly wrong. Loading with line numbers and the checks that need the environment live
below the models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder")
DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class ModelSpec(_Strict):
    """A timm model by name; num_classes, in_chans and img_size come from the dataset."""

    name: str = Field(description="any timm model name, e.g. test_resnet, resnet18, vit_tiny_patch16_224")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to timm.create_model")
    channels_last: bool = Field(False, description="use the channels_last memory format")
    compile: bool = Field(False, description="wrap the model in torch.compile")


class DatasetSpec(_Strict):
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

    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    seconds: float | None = Field(None, gt=0)
    batch_size: int = Field(64, ge=1)
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations (default: 10 per run)")
    eval_batch_size: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetSpec:
        given = [k for k in ("steps", "epochs", "seconds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of steps | epochs | seconds must be given, got {given or 'none'}")
        return self


class TargetSpec(_Strict):
    metric: Literal["train_loss"] = "train_loss"
    value: float | None = Field(None, description="default: the highest final smoothed training loss "
                                "among the non-diverged trials (the level every one reached)")


class ScheduleSpec(_Strict):
    name: Literal["constant", "cosine", "step", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    step_size: int | None = Field(None, ge=1, description="step: steps between decays")
    gamma: float = Field(0.1, gt=0, description="step: decay factor")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine/linear: final lr / initial lr")


class OptimizerSpec(BaseModel):
    """An optimizer by name plus its hyperparameters; the hyperparameters are checked by the registry."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="adabelief | any torch.optim name (lowercase) | a timm optimizer name | "
                      "package.module:Class")
    label: str | None = Field(None, description="name in tables and results (default: derived)")

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


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
    seeds: Annotated[int, Field(ge=1)] | list[int] = Field(1, description="a count or an explicit list")
    device: str = Field("auto", description=DEVICES_HELP)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    target: TargetSpec = Field(default_factory=TargetSpec)
    schedule: ScheduleSpec | None = None
    optimizers: list[OptimizerSpec] = Field(min_length=1)
    gate: GateSpec = Field(default_factory=GateSpec)

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
