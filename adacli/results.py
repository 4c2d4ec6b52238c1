"""The records that flow from a trial to metrics, reports and the gate, and the one JSON codec.

These dataclasses are the contract between the stages of the pipeline (the train stage produces them,
analysis, report, run and ci consume them) and they are what ``results.json`` stores, so every field is
JSON-serialisable and ``from_dict(to_dict(x)) == x``. Accuracies are in percent; times in seconds unless
the name says ms.

The codec: non-finite floats (the loss of a diverged trial) are stored as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` so that every file stays strict JSON that any parser reads;
:func:`encode` and :func:`decode` are each other's inverse for numbers, :func:`dumps` writes strict JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

TrialStatus = Literal["ok", "diverged", "failed", "interrupted"]


@dataclass
class EvalPoint:
    """One evaluation: on the fixed train-eval subset and on the test split, at a training step."""

    step: int
    seconds: float  # training clock at this step (evaluation time excluded)
    train_eval_loss: float
    train_eval_accuracy: float  # percent
    test_loss: float
    test_accuracy: float  # percent


@dataclass
class TrialResult:
    """One optimizer x seed x budget training run, as measured."""

    label: str  # the optimizer's label in the recipe (unique within a run)
    optimizer: str  # the name as written in the recipe (e.g. "adabelief", "torch.optim:SGD")
    optimizer_class: str  # resolved class with its module, e.g. "adacli.optim.adabelief.AdaBelief"
    hparams: dict[str, Any]  # every resolved hyperparameter, defaults included
    seed: int
    status: TrialStatus = "ok"
    error: str | None = None  # why a trial failed/diverged, one line
    # Per training step (index i is step i+1): training loss and the training clock after that step.
    losses: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    evals: list[EvalPoint] = field(default_factory=list)
    step_time_ms: float | None = None  # median wall time of a whole training step
    optimizer_step_ms: float | None = None  # median time of optimizer.step()
    state_bytes: int | None = None  # optimizer state size after training
    peak_memory_bytes: int | None = None  # peak device memory (CUDA) or process RSS growth (CPU)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping (e.g. sweep info)

    @property
    def steps_done(self) -> int:
        return len(self.losses)

    @property
    def train_seconds(self) -> float:
        return self.times[-1] if self.times else 0.0

    @property
    def final_eval(self) -> EvalPoint | None:
        return self.evals[-1] if self.evals else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        data = dict(data)
        data["evals"] = [EvalPoint(**e) for e in data.get("evals", [])]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Stat:
    """Mean and standard deviation over seeds (std is 0 for one seed); None when no seed has a value.

    ``ci95`` is the 95% Student-t confidence interval of the mean (None for fewer than two seeds), clipped
    to the metric's range; ``ci95_clipped`` says which end was cut ([low, high], None when neither). The
    statistics stage (:mod:`adacli.analysis.verdict`) fills both in.
    """

    mean: float | None
    std: float | None = None
    n: int = 0
    ci95: list[float] | None = None
    ci95_clipped: list[bool] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class OptimizerSummary:
    """Aggregated metrics of one optimizer label over its seeds (see DESIGN.md section 4)."""

    optimizer: str  # the label
    optimizer_class: str
    hparams: dict[str, Any]
    n_trials: int
    n_diverged: int
    final_test_accuracy: Stat
    best_test_accuracy: Stat
    final_train_eval_accuracy: Stat
    generalization_gap: Stat  # train-eval accuracy - test accuracy, in points
    loss_gap: Stat  # test loss - train-eval loss
    steps_to_target: Stat  # over the seeds that reached the target
    seconds_to_target: Stat
    reached_fraction: float  # fraction of trials that reached the target
    mean_train_loss: Stat  # normalized AUC of the training-loss curve
    final_train_loss: Stat  # smoothed, at the end
    step_time_ms: Stat
    optimizer_step_ms: Stat
    state_bytes: int | None
    peak_memory_bytes: int | None
    n_failed: int = 0  # trials that ended "failed" or "interrupted" (not in the means, not diverged)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizerSummary:
        data = dict(data)
        for f in dataclasses.fields(cls):
            if f.type == "Stat" and isinstance(data.get(f.name), dict):
                data[f.name] = Stat(**data[f.name])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Target:
    """The training-loss level that defines convergence speed, and where it came from."""

    metric: str  # "train_loss" (smoothed training loss)
    value: float | None  # None when no trial finished
    source: Literal["recipe", "default"]
    description: str  # human-readable, printed under the table


# --- the JSON codec ---------------------------------------------------------------------------------

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by strings, recursively (``json.dumps(allow_nan=False)``
    then succeeds); dict keys become strings."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    return obj


def decode_number(value: Any) -> Any:
    """One stored number back to a float (the inverse of :func:`encode` for a numeric field)."""
    return _NONFINITE.get(value, value) if isinstance(value, str) else value


def decode(obj: Any) -> Any:
    """Every stored non-finite number in ``obj`` back to a float, recursively (for figures only: a
    hyperparameter that is the string ``"NaN"`` would be decoded too; trials use :func:`trial_from_json`)."""
    if isinstance(obj, dict):
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return decode_number(obj)


def dumps(obj: Any, *, indent: int | None = 1) -> str:
    """Strict JSON of ``obj`` (non-finite floats encoded), ending in a newline."""
    return json.dumps(encode(obj), indent=indent, allow_nan=False, default=str) + "\n"


def trial_from_json(data: dict[str, Any]) -> TrialResult:
    """A TrialResult from its stored dict; only numeric fields are decoded (hparams keep their strings)."""
    d = dict(data)
    d["losses"] = [decode_number(x) for x in d.get("losses", [])]
    d["times"] = [decode_number(x) for x in d.get("times", [])]
    d["evals"] = [{k: decode_number(v) for k, v in e.items()} for e in d.get("evals", [])]
    for k in ("step_time_ms", "optimizer_step_ms"):
        if k in d:
            d[k] = decode_number(d[k])
    return TrialResult.from_dict(d)


def target_to_dict(target: Target | None) -> dict[str, Any] | None:
    return None if target is None else dataclasses.asdict(target)
