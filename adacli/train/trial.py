"""One budgeted training run (one optimizer x seed x budget) with an honest clock -> ``TrialResult``.

The trial loop (:func:`run_trial`) reads as a minimal training script: take a batch, take a step
(:func:`adacli.train.step.train_step`, or its CUDA graph :class:`adacli.train.graph.GraphedStep`), step
the LR schedule (:mod:`adacli.train.schedule`), record the step (:mod:`adacli.train.clock`), and at an
evaluation point stop the clock and evaluate. Why it looks the way it does (DESIGN.md sections 1 and 4):

* **Fairness** is the caller's promise kept here: ``run_trial`` trains a *copy* of the model it is given
  (the seed's initial model, created once per seed by :func:`initial_model`), draws batches from
  ``data.train_batches(batch_size, seed, device)`` (same seed => same batches in the same order) and
  re-seeds torch's RNG with the trial's seed (dropout / stochastic depth streams start alike). The
  schedule is a ``LambdaLR`` built the same way for every optimizer.
* **The clock counts training only.** Evaluation runs between clock segments; every segment ends with a
  device synchronisation before the clock is read, so queued GPU work is never left out.
* **No per-step host syncs on CUDA**: the CUDA recorder reads losses from pinned memory as the GPU
  finishes them and synchronises only at evaluation points (see :mod:`adacli.train.clock`).
* **No more overhead than a minimal loop**: nothing in the step beyond forward, backward, ``step()``,
  a scheduler step when there is a schedule, and a few clock reads and list appends
  (``benchmarks/bench_loop.py`` measures the ratio).
* **Divergence is a result, not a crash**: a non-finite loss or one > 1e3 x the initial loss
  (:func:`adacli.analysis.metrics.is_diverged`) stops the trial with status ``diverged``; any other
  exception from the model or optimizer becomes status ``failed`` with a one-line error, so the other
  trials go on. ``KeyboardInterrupt`` is never caught here (the caller saves what finished).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from adacli.recipe import BudgetSpec, ModelSpec, ScheduleSpec
from adacli.results import EvalPoint, TrialResult
from adacli.train.clock import MemoryMeter, Recorder, recorder
from adacli.train.graph import GraphedStep, graph_problem, make_capturable, note_once, unverified_note
from adacli.train.schedule import build_scheduler
from adacli.train.step import (
    autocast_for,
    cpu_precision_guard,
    evaluate,
    forward_loss,
    grad_scaler,
    parameter_copies,
    place_model,
    resolve_device,
    train_step,
)

if TYPE_CHECKING:
    from adacli.optim.registry import ResolvedOptimizer
    from adacli.train.data import DataBundle

#: on_step(step, total_steps or None for a time budget, latest known training loss)
StepCallback = Callable[[int, "int | None", float], None]
#: a training step on one batch, returning its loss tensor (eager or graphed)
StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PROGRESS_INTERVAL_S = 0.1  # at most this often the loop calls on_step (a rich refresh is not free)
DEFAULT_EVALS_PER_RUN = 10  # budget.eval_every unset -> about this many evaluations per run


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialConfig:
    """What a trial needs besides model, data, optimizer and seed: the same for every trial of a run."""

    budget: BudgetSpec
    schedule: ScheduleSpec | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool | str = False  # True: torch.compile; "graph": one CUDA graph per step (see graph_problem)

    @classmethod
    def from_recipe(cls, recipe: Any, device: torch.device | str | None = None) -> TrialConfig:
        return cls(
            budget=recipe.budget,
            schedule=recipe.schedule,
            device=resolve_device(device or recipe.device),
            precision=recipe.precision,
            channels_last=recipe.model.channels_last,
            compile=recipe.model.compile,
        )

    def total_steps(self, data: DataBundle) -> int | None:
        """Steps of a step or epoch budget (None for a time budget)."""
        b = self.budget
        if b.steps is not None:
            return b.steps
        if b.epochs is not None:
            return max(1, math.ceil(b.epochs * data.steps_per_epoch(b.batch_size)))
        return None


# --- the seed's model, its fingerprint, the optimizer's state ---------------------------------------


def initial_model(spec: ModelSpec, data: DataBundle, seed: int) -> nn.Module:
    """The seed's initial model (on the CPU): created once per seed and copied into every trial of it."""
    from adacli.train.models import create_model

    torch.manual_seed(seed)
    return create_model(
        spec, num_classes=data.num_classes, in_chans=data.in_chans, image_size=data.image_size
    )


def state_fingerprint(model: nn.Module) -> str:
    """A short SHA-1 of every parameter and buffer: equal fingerprints = equal initial weights."""
    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer state (shared storages counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                # views into one flat buffer (AdaBelief's CPU small-tensor bucket) are distinct state
                key = (v.untyped_storage().data_ptr(), v.storage_offset(), v.device.index or 0)
                if key in seen and v.numel() > 1:
                    continue
                seen.add(key)
                total += v.numel() * v.element_size()
    return total


def warm_up(
    train_net: Any,
    net: nn.Module,
    data: DataBundle,
    config: TrialConfig,
    optimizer: ResolvedOptimizer | None = None,
) -> None:
    """One forward/backward on a train-eval batch before the clock starts; weights and buffers restored.

    First calls pay one-off costs: cuDNN/oneDNN algorithm selection, allocator growth, lazy kernel
    loading and, with ``compile: true``, compilation. Without a warm-up they land on the clock of
    whichever trial runs first and make that optimizer look slower (about 1 s on a GPU). Optimizers have
    such costs too (AdaBelief's fused kernels: Triton's JIT on CUDA, the C++ build on CPU), so adacli's,
    torch's and timm's optimizers also take one throwaway step on copies of the parameters. A user's
    optimizer (``package.module:Class``) is not stepped: it may count or act on its steps.
    """
    saved = copy.deepcopy(net.state_dict())
    x, y = next(iter(data.eval_batches("train_eval", config.budget.batch_size, config.device)))
    autocast = autocast_for(config.device, config.precision)
    forward_loss(train_net, x, y, autocast, config.channels_last).backward()
    if optimizer is not None and optimizer.source != "import":
        copies = parameter_copies(net)
        optimizer.build(copies).step()
        del copies
    net.zero_grad(set_to_none=True)
    net.load_state_dict(saved)
    if config.device.type == "cuda":
        torch.cuda.synchronize(config.device)


# --- the trial -------------------------------------------------------------------------------------


def run_trial(
    model: nn.Module,
    data: DataBundle,
    optimizer: ResolvedOptimizer,
    config: TrialConfig,
    *,
    seed: int,
    label: str | None = None,
    on_step: StepCallback | None = None,
    copy_model: bool = True,
) -> TrialResult:
    """Train a copy of ``model`` with ``optimizer`` for ``config.budget`` and measure it.

    ``model`` is the seed's initial model (see :func:`initial_model`); it is deep-copied (unless
    ``copy_model=False``) so every optimizer of the seed starts from the same weights. Returns a
    ``TrialResult`` with status ``ok``, ``diverged`` or ``failed``; raises only ``KeyboardInterrupt``.
    ``peak_memory_bytes`` is the growth above what was allocated when the trial started (CUDA), or of
    the process RSS sampled at evaluation points (CPU).
    """
    if config.device.type == "cuda":  # events, streams and stats of the trial's own GPU (cuda:N)
        with torch.cuda.device(config.device):
            return _run_trial(model, data, optimizer, config, seed, label, on_step, copy_model)
    with cpu_precision_guard(config.device, config.precision):
        return _run_trial(model, data, optimizer, config, seed, label, on_step, copy_model)


def _run_trial(
    model: nn.Module,
    data: DataBundle,
    optimizer: ResolvedOptimizer,
    config: TrialConfig,
    seed: int,
    label: str | None,
    on_step: StepCallback | None,
    copy_model: bool,
) -> TrialResult:
    """The trial as a training script: prepare, loop over batches, evaluate at the cadence's points."""
    cadence = _Cadence.of(config, data)
    result = _blank_result(optimizer, config, data, seed, label, cadence.total)
    memory = MemoryMeter(config.device)
    rec = recorder(config.device)
    progress = _Progress(on_step, cadence.total, rec) if on_step is not None else None
    opt, stop = None, "budget"
    try:
        net = place_model(copy.deepcopy(model) if copy_model else model, config.device, config.channels_last)
        opt = optimizer.build(net.parameters())
        train_net: Any = torch.compile(net) if config.compile is True else net
        warm_up(train_net, net, data, config, optimizer)
        _seed_torch(seed, config.device)
        sched = build_scheduler(opt, config.schedule, cadence.total, config.budget.seconds, rec.clock)
        step_fn = _step_fn(train_net, opt, data, config, seed, rec, result, scheduled=sched is not None)

        step = 0
        rec.start_segment()
        for x, y in data.train_batches(config.budget.batch_size, seed, config.device):
            loss = step_fn(x, y)
            if sched is not None:
                sched.step()
            rec.step_done(loss)
            step += 1
            rec.poll()
            done = cadence.done(step, rec)
            if progress is not None:
                progress.update(step, done)
            if not (done or cadence.eval_due(step, rec)):
                continue
            rec.end_segment()  # syncs; the clock stops here
            memory.sample()
            if rec.first_bad is not None:
                stop = "diverged"
                break
            cadence.evaluated(step, rec.base)
            result.evals.append(_eval_point(net, data, config, step, rec.base))
            if done:
                break
            rec.start_segment()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a user's optimizer or model failing is a result, not a crash of the run
        stop = _record_failure(result, e, rec)
    if stop == "diverged":
        _cut_at_divergence(result, rec)
    _record_measurements(result, rec, opt, memory, stop, data.steps_per_epoch(config.budget.batch_size))
    if progress is not None:
        progress.final(result.losses)
    return result


# --- the trial's helpers: cadence, step, records ----------------------------------------------------


@dataclass
class _Cadence:
    """When the trial evaluates and when it stops: a step budget (``total``) or a time budget
    (``seconds`` of training clock); evaluations every ``every`` steps or, for a time budget without
    ``eval_every``, every ``every_s`` seconds (about :data:`DEFAULT_EVALS_PER_RUN` per run)."""

    total: int | None
    seconds: float | None
    every: int | None
    every_s: float | None
    next_step: int | None
    next_s: float | None

    @classmethod
    def of(cls, config: TrialConfig, data: DataBundle) -> _Cadence:
        total = config.total_steps(data)
        seconds = config.budget.seconds
        every = config.budget.eval_every or (max(1, (total or 0) // DEFAULT_EVALS_PER_RUN) if total else None)
        every_s = None if every else (seconds or 0.0) / DEFAULT_EVALS_PER_RUN
        return cls(total, seconds, every, every_s, every or None, every_s)

    def done(self, step: int, rec: Recorder) -> bool:
        """The budget is spent, or the loss diverged (as far as the recorder has read it)."""
        return (
            (self.total is not None and step >= self.total)
            or (self.seconds is not None and rec.clock() >= self.seconds)
            or rec.first_bad is not None
        )

    def eval_due(self, step: int, rec: Recorder) -> bool:
        return (self.next_step is not None and step >= self.next_step) or (
            self.next_s is not None and rec.clock() >= self.next_s
        )

    def evaluated(self, step: int, clock: float) -> None:
        """Move the next evaluation point past ``step`` and the training ``clock``."""
        if self.next_step is not None and self.every:
            while self.next_step <= step:
                self.next_step += self.every
        if self.next_s is not None and self.every_s:
            while self.next_s <= clock:
                self.next_s += self.every_s


class _Progress:
    """Calls ``on_step`` at most every :data:`PROGRESS_INTERVAL_S` (and at the end) with the latest loss."""

    def __init__(self, on_step: StepCallback, total: int | None, rec: Recorder) -> None:
        self.on_step, self.total, self.rec = on_step, total, rec
        self.last = time.perf_counter()

    def update(self, step: int, done: bool) -> None:
        now = time.perf_counter()
        if done or now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            v = self.rec.latest()
            if v is not None:
                self.on_step(step, self.total, v)

    def final(self, losses: list[float]) -> None:
        if losses:
            self.on_step(len(losses), self.total, losses[-1])


def _blank_result(
    optimizer: ResolvedOptimizer,
    config: TrialConfig,
    data: DataBundle,
    seed: int,
    label: str | None,
    total: int | None,
) -> TrialResult:
    """The trial's record before it trains: who, and under which settings."""
    result = TrialResult(
        label=label or optimizer.name,
        optimizer=optimizer.name,
        optimizer_class=optimizer.qualname,
        hparams=dict(optimizer.hparams),
        seed=seed,
    )
    budget = config.budget
    result.extra.update(
        device=str(config.device),
        precision=config.precision,
        budget={k: v for k, v in budget.model_dump().items() if v is not None},
        total_steps=total,
        steps_per_epoch=data.steps_per_epoch(budget.batch_size),
        schedule=config.schedule.model_dump() if config.schedule else None,
    )
    return result


def _seed_torch(seed: int, device: torch.device) -> None:
    """Restart torch's random streams at the trial's seed (dropout, stochastic depth start alike)."""
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(seed)


def _step_fn(
    train_net: Any,
    opt: torch.optim.Optimizer,
    data: DataBundle,
    config: TrialConfig,
    seed: int,
    rec: Recorder,
    result: TrialResult,
    *,
    scheduled: bool,
) -> StepFn:
    """The trial's step: the captured CUDA graph for ``model.compile: graph`` where it can run, else the
    eager :func:`~adacli.train.step.train_step` with ``optimizer.step()`` timed by the recorder."""
    if config.compile == "graph":
        # (train_net is the plain module here: torch.compile is compile: true, not graph)
        graphed = _graph_or_note(train_net, opt, data, config, seed, scheduled=scheduled)
        result.extra["graph"] = graphed is not None
        if graphed is not None:
            return graphed.step
    return partial(
        train_step,
        train_net,
        opt,
        autocast=autocast_for(config.device, config.precision),
        scaler=grad_scaler(config.device, config.precision),
        timer=rec,
        channels_last=config.channels_last,
    )


def _graph_or_note(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    data: DataBundle,
    config: TrialConfig,
    seed: int,
    *,
    scheduled: bool,
) -> GraphedStep | None:
    """The captured step for ``model.compile: graph``, or None (eager) after a one-line note saying why."""
    problem = graph_problem(opt, config.device, config.precision)
    if problem is not None:
        note_once(f"model.compile: graph: {problem}; running eagerly")
        return None
    unverified = unverified_note(config.device)
    if unverified is not None:
        note_once(unverified)
    make_capturable(opt, config.device, scheduled)
    # a batch of the training shape from another stream of draws: the trial's own batches stay untouched
    x, y = next(data.train_batches(config.budget.batch_size, seed + 7919, config.device))
    graphed = GraphedStep.capture(
        net, opt, x, y, device=config.device, precision=config.precision, channels_last=config.channels_last
    )
    _seed_torch(seed, config.device)  # the warm-up drew random numbers (dropout): restart the streams
    return graphed


def _eval_point(net: nn.Module, data: DataBundle, config: TrialConfig, step: int, clock: float) -> EvalPoint:
    kw = dict(
        batch_size=config.budget.eval_batch_size,
        device=config.device,
        precision=config.precision,
        channels_last=config.channels_last,
    )
    tr_loss, tr_acc = evaluate(net, data, "train_eval", **kw)
    te_loss, te_acc = evaluate(net, data, "test", **kw)
    return EvalPoint(
        step=step,
        seconds=clock,
        train_eval_loss=tr_loss,
        train_eval_accuracy=tr_acc,
        test_loss=te_loss,
        test_accuracy=te_acc,
    )


def _record_failure(result: TrialResult, e: Exception, rec: Recorder) -> str:
    """Status ``failed`` with a one-line error; the clock stopped. Returns the stop reason."""
    result.status = "failed"
    result.error = f"{type(e).__name__}: {e}".splitlines()[0][:500]
    with contextlib.suppress(Exception):
        rec.end_segment()
    return "failed"


def _cut_at_divergence(result: TrialResult, rec: Recorder) -> None:
    """Status ``diverged``: the record ends at the first diverged step (losses, times, evaluations)."""
    bad = rec.first_bad if rec.first_bad is not None else len(rec.losses) - 1
    result.status = "diverged"
    value = rec.losses[bad]
    result.error = f"loss {value:.4g} at step {bad + 1} (initial {rec.losses[0]:.4g}): " + (
        "not finite" if not math.isfinite(value) else "more than 1e3 x the initial loss"
    )
    del rec.losses[bad + 1 :], rec.times[bad + 1 :]
    result.evals = [e for e in result.evals if e.step <= bad + 1]


def _record_measurements(
    result: TrialResult,
    rec: Recorder,
    opt: torch.optim.Optimizer | None,
    memory: MemoryMeter,
    stop: str,
    steps_per_epoch: int,
) -> None:
    """Losses, times, median step costs, state and peak memory, and why the trial stopped."""
    result.losses = list(rec.losses)
    result.times = list(rec.times)
    result.step_time_ms = _median_ms(rec.step_s)
    result.optimizer_step_ms = _median_ms(rec.opt_s)
    result.state_bytes = optimizer_state_bytes(opt) if opt is not None else None
    result.peak_memory_bytes = memory.peak_growth()
    result.extra["stop_reason"] = stop
    result.extra["epochs"] = len(result.losses) / steps_per_epoch if steps_per_epoch else None


def _median_ms(values: list[float]) -> float | None:
    return statistics.median(values) * 1e3 if values else None
