"""Preflight: everything a run needs, checked before the first trial (DESIGN.md section 1).

Two stages, both raising :class:`InputError` (exit 2) with the file, line and field to fix:

* :func:`check_environment` is cheap and needs no data: dataset files, device, model name and kwargs
  (built on the meta device), optimizer names, hyperparameters and constructors, labels, sweep budgets.
* :func:`preflight` does for real what the first step of every trial will do: it loads the recipe's
  data, builds the model on the real device and precision, runs one forward and backward pass on a
  real training batch and one ``step()`` of every optimizer configuration (every sweep point) on a
  copy of the parameters. A model that cannot take the dataset's images (a ViT's patch size, a CNN's
  downsampling) or an optimizer that cannot step is then an error with a suggested fix before
  anything trains, not a table of failed trials. It also rejects budget settings that cannot mean what
  they say (a warmup longer than the budget, a batch larger than the training set) and returns one
  warning line for each surprising but valid one.

Preflight reuses the trial's own building blocks (device resolution, model creation, the training step
of :mod:`adacli.train.step`, the LR schedule) so that what it checks is what will run; the recipe module
stays the data model only.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adacli.errors import InputError
from adacli.recipe import Recipe
from adacli.recipe.source import format_path, line_at, parse_yaml
from adacli.recipe.spec import MAX_STEPS
from adacli.recipe.suite import Suite

# Preflight's batch: the recipe's batch_size, capped on the CPU (where a big batch costs seconds and
# memory failures are not the question); on a GPU the whole batch, since running out of memory is.
CPU_BATCH_CAP = 64
GPU_BATCH_CAP = 4096
# Image sizes tried (in order, above the current one) when a model rejects the dataset's size.
_CANDIDATE_SIZES = (16, 32, 48, 64, 96, 128, 160, 192, 224, 256)
_HINT_SECONDS = 10.0  # at most this long searching for an image size that works


@dataclass
class PreflightReport:
    """What :func:`preflight` checked and what it cost (``seconds``: wall time, data loading included)."""

    seconds: float
    device: str
    precision: str
    batch_size: int
    train_size: int
    total_steps: int | None
    optimizer_steps: int  # optimizer configurations stepped (every sweep point of every optimizer)
    not_stepped: int = 0  # configurations of users' own optimizers (package.module:Class): built only
    warnings: list[str] = field(default_factory=list)
    data: Any = field(default=None, repr=False)  # the dataset loaded here: the run reuses it


# --- checks that need the environment (no data, no real model) -------------------------------------


def _device_problem(device: str) -> str | None:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"device {device!r} requested but CUDA is not available here (use auto or cpu)"
        if ":" in device:
            index = int(device.split(":")[1])
            if index >= torch.cuda.device_count():
                return f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here"
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "device 'mps' requested but MPS is not available here (use auto or cpu)"
    return None


class _Where:
    """Locates errors in the recipe file: ``where(err, "optimizers", 0, "lr")``."""

    def __init__(self, recipe: Recipe, path: str | os.PathLike[str] | None) -> None:
        self.recipe = recipe
        self.file = str(path) if path is not None else recipe.source_file
        self.lines = recipe._lines
        if not self.lines and path is not None and Path(path).is_file():
            try:
                _, self.lines = parse_yaml(Path(path).read_text(encoding="utf-8"), str(path))
            except InputError:
                self.lines = {}

    def __call__(self, err: InputError, *p: str | int) -> InputError:
        option = self.recipe.option_for(*p)
        if option is not None:  # the command line set this value: name the option, not the file
            return InputError(err.message, field=option, allowed=err.allowed, suggestion=err.suggestion)
        return err.located(file=self.file, line=line_at(self.lines, tuple(p)), field=format_path(tuple(p)))

    def error(self, message: str, *p: str | int) -> InputError:
        return self(InputError(message), *p)


@functools.lru_cache(maxsize=256)
def _init_parameters(cls: type) -> Any:
    """``cls.__init__``'s parameters, read once per class (checked for every point of a sweep)."""
    try:
        return inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return None


def tuple_length_problem(cls: type, hparams: dict[str, Any]) -> tuple[str, str] | None:
    """(key, message) when a tuple-valued hyperparameter has the wrong length (``betas: [0.9]``).

    Constructors index such values (``betas[1]``) and would fail with an IndexError that names nothing.
    """
    params = _init_parameters(cls)
    if params is None:
        return None
    for key, value in hparams.items():
        default = params[key].default if key in params else None
        if isinstance(default, tuple) and isinstance(value, (list, tuple)) and len(value) != len(default):
            shown = list(value)
            return key, f"needs {len(default)} values like its default {list(default)}, got {shown}"
    return None


def check_environment(recipe: Recipe, path: str | os.PathLike[str] | None = None) -> None:
    """Everything a run needs that is cheap to check: InputError (exit 2) on the first problem.

    Dataset files present (or download on), the device exists, the timm model name exists and builds
    with its kwargs (on the meta device: no memory, no time), every optimizer resolves (import paths
    import), its hyperparameters are known and its constructor accepts them, labels are unique, a
    sweep has a validation split.
    """
    from adacli.recipe import assign_labels
    from adacli.run.sweep import is_sweep
    from adacli.train.data import check_dataset_files
    from adacli.train.models import check_model_name

    at = _Where(recipe, path)
    try:
        check_dataset_files(recipe.dataset)
    except InputError as e:
        raise at(e, "dataset", "root" if ("dataset", "root") in at.lines else "name") from None
    problem = _device_problem(recipe.device)
    if problem:
        raise at.error(problem, "device")
    try:
        check_model_name(recipe.model.name)
    except InputError as e:
        raise at(e, "model", "name") from None
    _check_meta_model(recipe, at)
    _check_optimizers(recipe, at)
    try:
        assign_labels(recipe.optimizers)
    except InputError as e:
        raise at(e, "optimizers") from None
    if is_sweep(recipe) and recipe.dataset.val_fraction == 0:
        raise at.error(
            "a sweep selects on the validation split, which val_fraction 0 leaves empty: "
            "set dataset.val_fraction: 0.1",
            "dataset",
            "val_fraction" if ("dataset", "val_fraction") in at.lines else "name",
        )
    if is_sweep(recipe) and recipe.seed_plan is not None:
        raise at.error(
            "seeds: {until: decided} does not combine with a sweep (the choice of configuration would "
            "change with the rounds of seeds): give seeds a count",
            "seeds",
        )


def _check_meta_model(recipe: Recipe, at: _Where) -> None:
    """The dataset's shape agrees with what the recipe says about it, the data fits in memory, and the
    model builds on the meta device with that shape (catches bad kwargs in no time)."""
    from adacli.train.data import dataset_shape
    from adacli.train.models import create_model

    try:
        shape = dataset_shape(recipe.dataset)
    except InputError as e:
        raise at(e, "dataset") from None
    except Exception as e:  # an unreadable image folder, a library error: bad input, one line
        raise at.error(f"dataset {recipe.dataset.name} cannot be read: {_one_line(e)}", "dataset") from None
    _check_data_and_model_agree(recipe, at, shape)
    _check_memory(recipe, at)
    num_classes, in_chans, image_size = shape
    try:
        with torch.device("meta"):
            create_model(recipe.model, num_classes=num_classes, in_chans=in_chans, image_size=image_size)
    except InputError as e:
        if isinstance(e.__cause__, (TypeError, ValueError, AssertionError, LookupError, OSError)):
            raise at(e, "model", "kwargs" if recipe.model.kwargs else "name") from None
        # other failures are artefacts of the meta device (e.g. init code copying data): preflight's


#: model kwargs that adacli sets from the dataset (model.kwargs -> what the data says)
_SIZED_BY_DATA = {"num_classes": ("classes", 0), "in_chans": ("channels", 1), "img_size": ("px images", 2)}


def _check_data_and_model_agree(recipe: Recipe, at: _Where, shape: tuple[int, int, int]) -> None:
    """A dataset key the data contradicts (digits with ``num_classes: 5``), or a model kwarg that
    contradicts the dataset (``num_classes: 3`` for 10 classes): exit 2 naming both."""
    from adacli.train.data import shape_contradiction

    wrong = shape_contradiction(recipe.dataset)
    if wrong is not None:
        key, why = wrong
        raise at.error(f"{why}: set it to match or remove it", "dataset", key)
    ds = recipe.dataset.name
    for key, (what, i) in _SIZED_BY_DATA.items():
        value = recipe.model.kwargs.get(key)
        if value is not None and value != shape[i]:
            raise at.error(
                f"{value!r} contradicts dataset {ds} ({shape[i]} {what}): adacli sizes the model from the "
                "dataset; remove it from model.kwargs",
                "model",
                "kwargs",
                key,
            )


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(recipe: Recipe, at: _Where) -> None:
    """A synthetic dataset (and one training batch of it) that cannot fit in memory is exit 2 before
    anything is allocated (allocating it failed with a traceback, or got the process killed)."""
    from adacli.train.data import synthetic_bytes

    need = synthetic_bytes(recipe.dataset, recipe.budget.batch_size)
    free = _available_memory()
    if need and free is not None and need > 0.8 * free:
        d = recipe.dataset
        raise at.error(
            f"the synthetic dataset ({d.train_size or 2048} + {d.test_size or 512} images of "
            f"{d.image_size or 32} px) needs about {need / 2**30:.1f} GiB, and {free / 2**30:.1f} GiB of "
            "memory are free here: lower train_size, test_size or image_size",
            "dataset",
            "train_size" if ("dataset", "train_size") in at.lines else "name",
        )


#: a recipe with at most this many optimizer configurations in all takes a real step of each in the
#: preflight; a larger sweep (up to 20 x 1,000 points) takes one per optimizer there, and each swept value
#: one step on a 2x2 stand-in parameter in check_environment (validate stays within seconds)
REAL_STEP_LIMIT = 64


def _check_optimizers(recipe: Recipe, at: _Where) -> None:
    """Names resolve, hyperparameters are known and fit, every sweep point constructs (on a 2x2 dummy
    parameter: fast enough for 20,000 points); for a large sweep, every swept value also takes one step on
    that parameter (see :data:`REAL_STEP_LIMIT`); equal budgets."""
    from adacli.run.sweep import check_budgets, covering_configs, optimizer_configs

    configs = [optimizer_configs(recipe, i, file=at.file) for i in range(len(recipe.optimizers))]
    large = sum(map(len, configs)) > REAL_STEP_LIMIT
    for i, points in enumerate(configs):
        resolved = _resolve(recipe, i, at)
        for config in points:
            wrong = tuple_length_problem(resolved.cls, config)
            if wrong is not None:
                raise at.error(wrong[1], "optimizers", i, wrong[0])
            _build_config(recipe, i, config, at, step=False)
        if large and resolved.source != "import":  # a user's step() may act on the world: built only
            for config in covering_configs(recipe, i, file=at.file):
                _build_config(recipe, i, config, at, step=True)
    check_budgets(recipe, file=at.file)


def _resolve(recipe: Recipe, i: int, at: _Where) -> Any:
    """Optimizer ``i`` resolved (its name and hyperparameter names), errors located at the key."""
    from adacli.optim.registry import resolve_optimizer

    spec = recipe.optimizers[i]
    try:
        return resolve_optimizer(spec.name, spec.hparams)
    except InputError as e:
        hparam_error = e.message.startswith("unknown hyperparameter")
        bad = next((k for k in spec.hparams if hparam_error and k not in (e.allowed or [])), None)
        if bad is not None:
            raise at(e, "optimizers", i, bad) from None
        raise at(e, "optimizers", i, "name") from None


def _build_config(recipe: Recipe, i: int, config: dict[str, Any], at: _Where, *, step: bool) -> None:
    """Construct one configuration on a 2x2 parameter (and take one step with a gradient of ones)."""
    from adacli.optim.registry import resolve_optimizer

    spec = recipe.optimizers[i]
    param = torch.nn.Parameter(torch.zeros(2, 2))
    try:
        opt = resolve_optimizer(spec.name, config).build([param])
        if step:
            param.grad = torch.ones(2, 2)
            opt.step()
    except InputError as e:
        raise at(e, "optimizers", i) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a constructor (or a step) failing any other way still names the optimizer
        if not step:
            raise at.error(f"{spec.name!r} cannot be constructed: {_one_line(e)}", "optimizers", i) from None
        given = ", ".join(f"{k}={v}" for k, v in config.items())
        raise at.error(
            f"{spec.name!r} ({given}) fails its first step() on a 2x2 stand-in parameter: {_one_line(e)}; "
            "check its hyperparameters",
            "optimizers",
            i,
        ) from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())[:300].rstrip(".")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- the real preflight: data, model, one forward/backward, one step per optimizer ----------------


def preflight(
    recipe: Recipe,
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device | None = None,
) -> PreflightReport:
    """Do once, for real, what the first step of every trial does; InputError (exit 2) on any failure.

    Call it after :func:`check_environment` (compare and validate do; a suite runs it per workload).
    The global RNG state is restored afterwards, so results stay bit-identical with or without it.
    ``device`` overrides the recipe's (as ``compare --device`` does).
    """
    from adacli.train.data import load_data
    from adacli.train.trial import TrialConfig

    t0 = time.perf_counter()
    at = _Where(recipe, path)
    config = TrialConfig.from_recipe(recipe, device)
    try:
        data = load_data(recipe.dataset)  # what the run loads: it is handed on
    except InputError as e:
        raise at(e, "dataset") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a corrupt file, an allocation that fails: bad input, never a traceback
        raise at.error(f"dataset {recipe.dataset.name} cannot be loaded: {_one_line(e)}", "dataset") from None
    total = config.total_steps(data)
    warnings = check_budget_settings(recipe, train_size=data.split_size("train"), total=total, path=path)
    from adacli.run.sweep import is_sweep

    if is_sweep(recipe) and data.split_size("val") == 0:
        raise at.error(
            f"a sweep selects on the validation split, which val_fraction {recipe.dataset.val_fraction} "
            f"leaves empty for {data.name}: raise dataset.val_fraction",
            "dataset",
            "val_fraction" if ("dataset", "val_fraction") in at.lines else "name",
        )
    cap = GPU_BATCH_CAP if config.device.type == "cuda" else CPU_BATCH_CAP
    batch_size = min(recipe.budget.batch_size, cap, data.split_size("train"))
    with _rng_kept(config.device):
        stepped, not_stepped = _forward_backward_step(recipe, data, config, batch_size, total, at)
    if config.device.type == "cuda":
        torch.cuda.empty_cache()
    return PreflightReport(
        seconds=time.perf_counter() - t0,
        device=str(config.device),
        precision=config.precision,
        batch_size=batch_size,
        train_size=data.split_size("train"),
        total_steps=total,
        optimizer_steps=stepped,
        not_stepped=not_stepped,
        warnings=warnings,
        data=data,
    )


def check_recipe(
    recipe: Recipe, path: str | os.PathLike[str] | None = None, *, device: str | torch.device | None = None
) -> PreflightReport:
    """Both stages, as ``compare`` runs them: :func:`check_environment`, then :func:`preflight`.

    The one call for code that runs recipes itself (a suite, per workload): InputError on the first
    problem, else the report (cost and warning lines to show).
    """
    check_environment(recipe, path)
    return preflight(recipe, path, device=device)


@contextlib.contextmanager
def _rng_kept(device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def check_budget_settings(
    recipe: Recipe, *, train_size: int, total: int | None, path: str | os.PathLike[str] | None = None
) -> list[str]:
    """Settings that contradict the budget are InputErrors; surprising but valid ones are warnings.

    ``train_size``: training images after the validation split; ``total``: training steps (None for a
    time budget, where only the batch is checked). Returns the warning lines.
    """
    at = _Where(recipe, path)
    b, s = recipe.budget, recipe.schedule
    if b.batch_size > train_size:
        raise at.error(
            f"{b.batch_size} is larger than the training set ({train_size} images of "
            f"{recipe.dataset.name} after the validation split): set budget.batch_size <= {train_size}",
            "budget",
            "batch_size",
        )
    if total is None:
        return []
    if b.epochs is not None and total > MAX_STEPS:  # the data model bounds steps; epochs: known here
        raise at.error(
            f"{b.epochs:g} epochs of {train_size // b.batch_size} steps are {total:,} steps per trial, more "
            f"than the {MAX_STEPS:,} a trial can record: lower budget.epochs",
            "budget",
            "epochs",
        )
    if s is not None and s.warmup_steps and s.warmup_steps >= total:
        raise at.error(
            f"warmup_steps {s.warmup_steps} >= the budget's {total} steps: the learning rate would never "
            f"reach its value; set schedule.warmup_steps below {total}",
            "schedule",
            "warmup_steps",
        )
    if s is not None and s.name == "step" and s.step_size is not None and s.step_size >= total:
        raise at.error(
            f"step_size {s.step_size} >= the budget's {total} steps: the learning rate would never decay; "
            f"set schedule.step_size below {total} (or schedule.name: constant)",
            "schedule",
            "step_size",
        )
    warnings = []
    if b.eval_every is not None and b.eval_every > total:
        line = recipe.line_of("budget", "eval_every")
        where = f"{at.file}:{line}: " if at.file and line else ""
        warnings.append(
            f"{where}budget.eval_every {b.eval_every} > the budget's {total} steps: "
            "the only evaluation is the final one"
        )
    return warnings


def _forward_backward_step(
    recipe: Recipe, data: Any, config: Any, batch_size: int, total: int | None, at: _Where
) -> tuple[int, int]:
    """Build the model, one forward/backward on a real batch, one step of every optimizer config.

    The trial's own step functions (:mod:`adacli.train.step`), under the trial's precision guard, so
    preflight computes what the trials will."""
    from adacli.train.step import autocast_for, cpu_precision_guard, forward_loss, place_model
    from adacli.train.trial import initial_model

    seed = recipe.seed_list[0]
    with cpu_precision_guard(config.device, config.precision):
        try:
            net = place_model(initial_model(recipe.model, data, seed), config.device, config.channels_last)
            x, y = next(data.train_batches(batch_size, seed, config.device))
            autocast = autocast_for(config.device, config.precision)
            forward_loss(net, x, y, autocast, config.channels_last).backward()
        except InputError as e:
            raise at(e, "model", "kwargs" if recipe.model.kwargs else "name") from None
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            raise _model_error(recipe, data, config, batch_size, e, at) from None
        return _step_every_optimizer(recipe, net, config, total, at)


def _step_every_optimizer(
    recipe: Recipe, net: torch.nn.Module, config: Any, total: int | None, at: _Where
) -> tuple[int, int]:
    """One ``step()`` (and one schedule step) of every sweep configuration, each on fresh copies (of
    each optimizer's first one only, beyond :data:`REAL_STEP_LIMIT` configurations in all).

    A user's own optimizer (``package.module:Class``) is built but not stepped, as in the trial's
    warm-up: its ``step()`` may act on the world (count its steps, write files), and preflight must not
    change what the run then measures. Returns (configurations stepped, configurations not stepped).
    """
    from adacli.optim.registry import resolve_optimizer
    from adacli.run.sweep import optimizer_configs
    from adacli.train.schedule import build_scheduler
    from adacli.train.step import parameter_copies

    stepped = not_stepped = 0
    configs = [optimizer_configs(recipe, i, file=at.file) for i in range(len(recipe.optimizers))]
    if sum(map(len, configs)) > REAL_STEP_LIMIT:  # a large sweep: its values were stepped on a stand-in
        configs = [points[:1] for points in configs]
    for i, spec in enumerate(recipe.optimizers):
        for hparams in configs[i]:
            resolved = resolve_optimizer(spec.name, hparams)
            if resolved.source == "import":
                not_stepped += 1
                continue
            params = parameter_copies(net)
            try:
                opt = resolved.build(params)
                sched = build_scheduler(opt, recipe.schedule, total, recipe.budget.seconds)  # as the trial
                opt.step()
                if sched is not None:
                    sched.step()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:
                given = ", ".join(f"{k}={v}" for k, v in hparams.items())
                raise at.error(
                    f"{spec.name!r}{' (' + given + ')' if given else ''} fails its first step() on "
                    f"model {recipe.model.name} ({config.device}, {config.precision}): {_one_line(e)}; "
                    "check its hyperparameters",
                    "optimizers",
                    i,
                ) from None
            del opt, params
            stepped += 1
    return stepped, not_stepped


# --- a model that cannot take the data: say why and what to set -----------------------------------

_PATCH = re.compile(r"divisible by (?:the )?patch size \(?(\d+)\)?", re.I)
_TOO_SMALL = re.compile(
    r"kernel size can't be greater than actual input size|output size is too small|"
    r"input size .* too small|smaller than the kernel",
    re.I,
)


def _model_error(
    recipe: Recipe, data: Any, config: Any, batch_size: int, e: Exception, at: _Where
) -> InputError:
    """The InputError for a model whose first forward/backward failed, with a fix where one is found."""
    name, size, ds = recipe.model.name, data.image_size, recipe.dataset.name
    text = _one_line(e)
    if isinstance(e, torch.OutOfMemoryError):
        return at.error(
            f"model {name} runs out of memory on {config.device} at batch {batch_size} "
            f"({ds}, image_size {size}): lower budget.batch_size or dataset.image_size",
            "budget",
            "batch_size",
        )
    if "more than 1 value per channel" in text:
        return at.error(
            f"model {name} needs batches of at least 2 in training (batch norm): set budget.batch_size: 2 "
            "or more",
            "budget",
            "batch_size",
        )
    patch = _PATCH.search(text)
    if patch or _TOO_SMALL.search(text):
        need = "image sizes divisible by " + patch.group(1) if patch else "larger images"
        fix = _working_size(recipe, data, size, int(patch.group(1)) if patch else None)
        hint = f": set dataset.image_size: {fix}" if fix else ": raise dataset.image_size"
        return at.error(
            f"{name} needs {need} (dataset {ds} is {size} px here){hint}",
            "dataset",
            "image_size" if ("dataset", "image_size") in at.lines else "name",
        )
    return at.error(
        f"{name} fails its first forward/backward pass on {ds} (image_size {size}, batch {batch_size}, "
        f"{config.device}, {config.precision}): {text}; check model.kwargs, dataset.image_size and precision",
        "model",
        "name",
    )


def _working_size(recipe: Recipe, data: Any, size: int, multiple: int | None) -> int | None:
    """The smallest image size above ``size`` at which the model runs a forward pass (CPU, batch 2)."""
    from adacli.train.models import create_model

    candidates = [c for c in _CANDIDATE_SIZES if c > size and (multiple is None or c % multiple == 0)]
    if multiple is not None:
        candidates.insert(0, math.ceil(size / multiple) * multiple if size > multiple else multiple)
    deadline = time.perf_counter() + _HINT_SECONDS
    for candidate in dict.fromkeys(candidates):
        if time.perf_counter() > deadline:
            break
        try:
            with _rng_kept(torch.device("cpu")), torch.no_grad():
                net = create_model(
                    recipe.model, num_classes=data.num_classes, in_chans=data.in_chans, image_size=candidate
                )
                net.eval()(torch.zeros(2, data.in_chans, candidate, candidate))
            return candidate
        except Exception:  # this size does not work either: try the next
            continue
    return None


def check_suite(suite: Suite) -> list[str]:
    """Every workload checked as ``compare`` checks a recipe (data, device, model, optimizers, then the
    real preflight: one forward/backward and one step of each optimizer) before any training.

    Returns the warning lines, each prefixed with its workload's name."""
    from adacli.analysis.verdict import check_reference

    warnings: list[str] = []
    for i, w in enumerate(suite.workloads):
        try:
            report = check_recipe(w.recipe, w.recipe.source_file)
            check_reference(w.recipe.reference, suite.labels, file=w.recipe.source_file,
                            line=w.recipe.line_of("reference"))  # fmt: skip
        except InputError as e:
            if w.recipe_path is None and e.file == suite.file:
                raise e.under(f"workloads[{i}]") from None
            raise
        warnings += [f"{w.name}: {line}" for line in report.warnings]
    return warnings
