"""The command line's numbers, checked as the recipe's are: finite, in range, the option named.

Why here: every number a run depends on, whether it comes from a recipe or an option, is checked in one
place, the data model (DESIGN.md section 3). ``--threads 100000`` made the OpenMP runtime abort while the
model was built (and the error blamed ``model.kwargs``); ``--cpus-per-trial nan`` reached Ray. Each model
below is validated from the options as typed and turns the first problem into one :class:`InputError`
naming the option (exit 2), before anything is imported or trained.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adacli.errors import InputError

#: threads per trial beyond this many per CPU core only add waiting (and 100,000 aborts OpenMP)
THREADS_PER_CORE = 4


def max_threads() -> int:
    """The most torch threads a trial may be given on this machine."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_threads(v: int | None) -> int | None:
    """``--threads``: at most :func:`max_threads` (a validator shared by the option models)."""
    if v is not None and v > max_threads():
        cores = os.cpu_count() or 1
        raise ValueError(
            f"at most {max_threads()} ({THREADS_PER_CORE} per CPU core; this machine has {cores})"
        )
    return v


class _Options(BaseModel):
    """Options by their command-line names (``--threads``), so that errors name the option."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    @classmethod
    def parse(cls, **values: Any) -> Any:
        """The options from the command line's values (None: not given, the default applies)."""
        given = {k: v for k, v in values.items() if v is not None}
        try:
            return cls.model_validate(given)
        except ValidationError as e:
            raise option_error(e, cls) from None


def option_error(e: ValidationError, model: type[BaseModel]) -> InputError:
    """The first error of an options model as one InputError naming the option (``--threads``)."""
    err = e.errors(include_url=False)[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    field = model.model_fields.get(name)
    option = field.alias if field is not None and field.alias else "--" + name.replace("_", "-")
    msg = err["msg"].removeprefix("Value error, ")
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    ctx = err.get("ctx") or {}
    if err["type"] == "finite_number":
        msg = "must be a finite number"
    elif err["type"] in bounds and ctx:
        msg = f"must be {bounds[err['type']]} {next(iter(ctx.values()))}"
    return InputError(f"{msg} (got {err.get('input')!r})", field=option)


class RunOptions(_Options):
    """``compare`` and ``suite``: where and how trials run (see :mod:`adacli.run.executors`)."""

    jobs: int | None = Field(None, ge=1, alias="--jobs")  # None: adacli chooses (run.pipeline)
    threads: int | None = Field(None, ge=1, alias="--threads")
    cpus_per_trial: float = Field(1.0, gt=0, le=1e6, alias="--cpus-per-trial")
    gpus_per_trial: float | None = Field(None, ge=0, le=1e6, alias="--gpus-per-trial")

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | None) -> int | None:
        return check_threads(v)


class BenchOptions(_Options):
    """``bench``: how long and on how many threads the optimizer steps are timed."""

    rounds: int = Field(5, ge=1, le=10_000, alias="--rounds")
    threads: int | None = Field(2, ge=1, alias="--threads")

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: int | None) -> int | None:
        return check_threads(v)


__all__ = ["THREADS_PER_CORE", "BenchOptions", "RunOptions", "check_threads", "max_threads", "option_error"]
