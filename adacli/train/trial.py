"""One budgeted training run (one optimizer x seed x budget) with an honest clock -> ``TrialResult``.

Why the loop looks the way it does (DESIGN.md sections 1 and 4):

* **Fairness** is the caller's promise kept here: ``run_trial`` trains a *copy* of the model it is given
  (the seed's initial model, created once per seed by :func:`initial_model`), draws batches from
  ``data.train_batches(batch_size, seed, device)`` (same seed => same batches in the same order) and
  re-seeds torch's RNG with the trial's seed (dropout / stochastic depth streams start alike). The
  schedule is a ``LambdaLR`` built the same way for every optimizer.
* **The clock counts training only.** Evaluation runs between clock segments; every segment ends with a
  device synchronisation before the clock is read, so queued GPU work is never left out.
* **No per-step host syncs on CUDA.** A ``.item()`` per step would serialise CPU and GPU. Instead each
  step copies its loss into pinned host memory with ``non_blocking=True`` and records CUDA events; the
  loop *polls* those events (``Event.query()`` never blocks) to show progress and to catch divergence as
  soon as the GPU gets there, and reads everything exactly at evaluation points, where it synchronises
  anyway. Per-step times come from the events (relative to the segment's start event), the segment's
  total from the wall clock after the sync. On the CPU reading a loss is free, so the loop checks every
  step with ``perf_counter``.
* **No more overhead than a minimal loop**: nothing in the step beyond forward, backward, ``step()``,
  a scheduler step when there is a schedule, and a few clock reads and list appends
  (``benchmarks/bench_loop.py`` measures the ratio).
* **Divergence is a result, not a crash**: a non-finite loss or one > 1e3 x the initial loss
  (:func:`adacli.analysis.metrics.is_diverged`) stops the trial with status ``diverged``; any other exception from
  the model or optimizer becomes status ``failed`` with a one-line error, so the other trials go on.
  ``KeyboardInterrupt`` is never caught here (the caller saves what finished).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import statistics
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from adacli.analysis.metrics import is_diverged
from adacli.errors import InputError
from adacli.recipe import BudgetSpec, ModelSpec, ScheduleSpec
from adacli.results import EvalPoint, TrialResult

if TYPE_CHECKING:
    from adacli.optim.registry import ResolvedOptimizer
    from adacli.train.data import DataBundle

#: on_step(step, total_steps or None for a time budget, latest known training loss)
StepCallback = Callable[[int, "int | None", float], None]

PROGRESS_INTERVAL_S = 0.1  # at most this often the loop calls on_step (a rich refresh is not free)
DEFAULT_EVALS_PER_RUN = 10  # budget.eval_every unset -> about this many evaluations per run


# --- devices, precision, models --------------------------------------------------------------------


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; an explicit device must exist (InputError otherwise)."""
    if isinstance(name, torch.device):
        return name
    name = name or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise InputError(
            f"unknown device {name!r}", field="device", allowed=["auto", "cpu", "cuda", "cuda:N", "mps"]
        ) from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "device 'cuda' requested but CUDA is not available on this machine",
                field="device",
                allowed=["auto", "cpu"],
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA devices)", field="device"
            )
    elif device.type == "mps" and not (torch.backends.mps.is_available()):
        raise InputError(
            "device 'mps' requested but MPS is not available", field="device", allowed=["auto", "cpu"]
        )
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(
            f"unsupported device {name!r}", field="device", allowed=["auto", "cpu", "cuda", "mps"]
        )
    return device


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


def _autocast(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def _logits(out: Any) -> torch.Tensor:
    # Some timm models return (logits, aux/distillation logits) in training mode: score the first.
    return out[0] if isinstance(out, (tuple, list)) else out


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


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# --- schedule --------------------------------------------------------------------------------------


def lr_factor(schedule: ScheduleSpec | None, step: int, progress: float) -> float:
    """The learning-rate multiplier before optimizer step ``step + 1``.

    ``progress`` in [0, 1] is how far the budget is spent after warm-up (steps for step/epoch budgets,
    the training clock for a time budget), so cosine/linear/step schedules end where the budget ends.
    """
    if schedule is None:
        return 1.0
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    lo = schedule.min_lr_ratio
    if schedule.name == "cosine":
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule.name == "linear":
        return 1.0 - (1.0 - lo) * p
    if schedule.name == "step":
        if schedule.step_size is not None:
            return schedule.gamma ** ((step - schedule.warmup_steps) // schedule.step_size)
        return schedule.gamma ** min(2, int(p * 3))  # no step_size: decay at 1/3 and 2/3 of the budget
    return 1.0


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


# --- step recorders: the clock and the per-step records ------------------------------------------


class _CpuRecorder:
    """Synchronous devices: read the loss and ``perf_counter`` every step (both cost microseconds)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.times: list[float] = []
        self.step_s: list[float] = []
        self.opt_s: list[float] = []
        self.base = 0.0
        self.seg_start = self.last = time.perf_counter()
        self.first_bad: int | None = None

    def start_segment(self) -> None:
        self.seg_start = self.last = time.perf_counter()

    def clock(self) -> float:
        return self.base + time.perf_counter() - self.seg_start

    def opt_begin(self) -> float:
        return time.perf_counter()

    def opt_end(self, token: float) -> None:
        self.opt_s.append(time.perf_counter() - token)

    def step_done(self, loss: torch.Tensor) -> None:
        now = time.perf_counter()
        v = loss.item()
        self.losses.append(v)
        self.times.append(self.base + now - self.seg_start)
        self.step_s.append(now - self.last)
        self.last = now
        if self.first_bad is None and is_diverged(v, self.losses[0]):
            self.first_bad = len(self.losses) - 1

    def poll(self) -> None:
        pass

    def end_segment(self) -> None:
        self.base += time.perf_counter() - self.seg_start


class _CudaRecorder:
    """CUDA: losses to pinned memory and CUDA events per step; no host sync until ``end_segment``."""

    CHUNK = 1024

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.losses: list[float] = []
        self.times: list[float] = []
        self.step_s: list[float] = []
        self.opt_s: list[float] = []
        self.base = 0.0
        self.first_bad: int | None = None
        self._chunks: list[torch.Tensor] = []
        self._n = 0  # steps recorded (some not yet read)
        self._ends: list[torch.cuda.Event] = []  # end events of this segment's steps
        self._opts: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._pending: deque[tuple[int, torch.cuda.Event]] = deque()
        self._polled: dict[int, float] = {}
        self._seg_first = 0
        self._initial: float | None = None  # the first step's loss, once read
        self.stream = torch.cuda.current_stream(device)
        self.seg_start_wall = time.perf_counter()
        self.seg_start_ev = self._event()

    def _event(self) -> torch.cuda.Event:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record(self.stream)
        return ev

    def start_segment(self) -> None:
        torch.cuda.synchronize(self.device)
        self._seg_first = self._n
        self._ends, self._opts = [], []
        self.seg_start_ev = self._event()
        self.seg_start_wall = time.perf_counter()

    def clock(self) -> float:
        # Host-side clock (runs ahead of the GPU by the launch queue); only used to decide when a time
        # budget or a time-based evaluation is due. Recorded times come from events and synced walls.
        return self.base + time.perf_counter() - self.seg_start_wall

    def opt_begin(self) -> torch.cuda.Event:
        return self._event()

    def opt_end(self, token: torch.cuda.Event) -> None:
        self._opts.append((token, self._event()))

    def step_done(self, loss: torch.Tensor) -> None:
        i = self._n
        if i // self.CHUNK >= len(self._chunks):
            self._chunks.append(torch.empty(self.CHUNK, dtype=torch.float32, pin_memory=True))
        self._chunks[i // self.CHUNK][i % self.CHUNK].copy_(loss.detach(), non_blocking=True)
        ev = self._event()
        self._ends.append(ev)
        self._pending.append((i, ev))
        self._n += 1

    def _value(self, i: int) -> float:
        return float(self._chunks[i // self.CHUNK][i % self.CHUNK])

    def poll(self) -> None:
        """Read the losses of the steps the GPU has finished (never blocks)."""
        while self._pending and self._pending[0][1].query():
            i, _ = self._pending.popleft()
            v = self._value(i)
            self._polled[i] = v
            if self._initial is None:
                self._initial = v
            if self.first_bad is None and is_diverged(v, self._initial):
                self.first_bad = i

    def latest(self) -> float | None:
        if self._polled:
            return self._polled[max(self._polled)]
        return self.losses[-1] if self.losses else None

    def end_segment(self) -> None:
        torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self.seg_start_wall
        self._pending.clear()
        self._polled.clear()
        prev = self.seg_start_ev
        for i, ev in zip(range(self._seg_first, self._n), self._ends, strict=True):
            v = self._value(i)
            self.losses.append(v)
            if self._initial is None:
                self._initial = v
            self.times.append(self.base + self.seg_start_ev.elapsed_time(ev) / 1e3)
            self.step_s.append(prev.elapsed_time(ev) / 1e3)
            prev = ev
            if self.first_bad is None and is_diverged(v, self.losses[0]):
                self.first_bad = i
        self.opt_s.extend(a.elapsed_time(b) / 1e3 for a, b in self._opts)
        self._ends, self._opts = [], []
        self.base = max(self.base + wall, self.times[-1] if self.times else 0.0)


class _DeferredRecorder(_CpuRecorder):
    """Other asynchronous devices (MPS): keep loss tensors, synchronise and read them at segment ends."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self._tensors: list[torch.Tensor] = []
        self._host_times: list[float] = []

    def step_done(self, loss: torch.Tensor) -> None:
        self._tensors.append(loss.detach())
        self._host_times.append(time.perf_counter())

    def end_segment(self) -> None:
        if self.device.type == "mps":
            torch.mps.synchronize()
        end = time.perf_counter()
        if self._tensors:
            values = torch.stack(self._tensors).float().cpu().tolist()
            # host enqueue times, with the last step ending when the device really finished
            stamps = [*self._host_times[:-1], end]
            for v, t in zip(values, stamps, strict=True):
                self.losses.append(v)
                self.times.append(self.base + t - self.seg_start)
                self.step_s.append(t - self.last)
                self.last = t
                if self.first_bad is None and is_diverged(v, self.losses[0]):
                    self.first_bad = len(self.losses) - 1
        self._tensors, self._host_times = [], []
        self.base += end - self.seg_start


def _recorder(device: torch.device) -> _CpuRecorder | _CudaRecorder | _DeferredRecorder:
    if device.type == "cuda":
        return _CudaRecorder(device)
    if device.type == "cpu":
        return _CpuRecorder()
    return _DeferredRecorder(device)


# --- evaluation ------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataBundle,
    split: str,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (percent) of ``model`` on a split; one host sync at the end."""
    was_training = model.training
    model.eval()
    autocast = _autocast(device, precision)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        for x, y in data.eval_batches(split, batch_size, device):
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = _logits(model(x))
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
            n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        return math.nan, math.nan
    return loss_sum.item() / n, 100.0 * correct.item() / n


# --- the trial -------------------------------------------------------------------------------------


def _median_ms(values: list[float]) -> float | None:
    return statistics.median(values) * 1e3 if values else None


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


def cpu_precision_guard(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """oneDNN (mkldnn) off for bf16 training on the CPU; nothing otherwise.

    Why: with bf16 autocast on the CPU, torch's oneDNN convolution backward (seen with torch 2.14)
    hands back weight gradients whose memory later allocations overwrite, so the next optimizer step
    reads garbage (NaN losses after a few steps; ``benchmarks/bf16_cpu_grads.py`` reproduces it). With
    oneDNN off the native kernels compute the same bf16 convolutions and the gradients stay intact.
    The flag is global, so it is set for the trial only and restored afterwards.
    """
    if device.type != "cpu" or precision != "bf16":
        return contextlib.nullcontext()
    return _onednn_off()


@contextlib.contextmanager
def _onednn_off() -> Iterator[None]:
    # torch.backends.mkldnn.flags() would also reset oneDNN's TF32 setting (and warn about Intel GPUs)
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


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
    device = config.device
    budget = config.budget
    result = TrialResult(
        label=label or optimizer.name,
        optimizer=optimizer.name,
        optimizer_class=optimizer.qualname,
        hparams=dict(optimizer.hparams),
        seed=seed,
    )
    total = config.total_steps(data)
    seconds = budget.seconds
    steps_per_epoch = data.steps_per_epoch(budget.batch_size)
    eval_every = budget.eval_every or (max(1, (total or 0) // DEFAULT_EVALS_PER_RUN) if total else None)
    eval_dt = None if eval_every else (seconds or 0.0) / DEFAULT_EVALS_PER_RUN  # time budget, no eval_every
    result.extra.update(
        device=str(device),
        precision=config.precision,
        budget={k: v for k, v in budget.model_dump().items() if v is not None},
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        schedule=config.schedule.model_dump() if config.schedule else None,
    )

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        mem0 = torch.cuda.memory_allocated(device)
    rss0 = _rss_bytes()
    rss_peak = rss0
    rec = _recorder(device)
    stop_reason = "budget"
    opt = None
    try:
        net = copy.deepcopy(model) if copy_model else model
        net = net.to(device)
        if config.channels_last:
            net = net.to(memory_format=torch.channels_last)
        net.train()
        opt = optimizer.build(net.parameters())
        train_net: Any = torch.compile(net) if config.compile is True else net
        _warm_up(train_net, net, data, config, optimizer)
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(seed)

        sched = _scheduler(opt, config.schedule, total, seconds)
        graphed = None
        if config.compile == "graph":
            graphed = _graph_or_note(net, opt, data, config, seed, scheduled=sched is not None)
            result.extra["graph"] = graphed is not None

        scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
        autocast = _autocast(device, config.precision)
        channels_last = config.channels_last
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = data.train_batches(
            budget.batch_size, seed, device
        )

        step = 0
        next_eval = eval_every if eval_every else None
        next_eval_t = eval_dt
        last_report = time.perf_counter()
        rec.start_segment()
        while True:
            x, y = next(batches)
            if graphed is not None:  # copy into the static inputs (and their layout), replay the step
                loss = graphed.step(x, y)
            else:
                loss = _eager_step(train_net, opt, x, y, autocast, scaler, rec, channels_last)
            if sched is not None:
                if seconds:
                    sched.clock = rec.clock()  # type: ignore[attr-defined]
                sched.step()
            rec.step_done(loss)
            step += 1
            rec.poll()

            done = (total is not None and step >= total) or (seconds is not None and rec.clock() >= seconds)
            if rec.first_bad is not None:
                stop_reason = "diverged"
                done = True
            eval_due = (next_eval is not None and step >= next_eval) or (
                next_eval_t is not None and rec.clock() >= next_eval_t
            )
            if on_step is not None:
                now = time.perf_counter()
                if done or now - last_report >= PROGRESS_INTERVAL_S:
                    last_report = now
                    v = _latest(rec)
                    if v is not None:
                        on_step(step, total, v)
            if not (done or eval_due):
                continue
            rec.end_segment()  # syncs; the clock stops here
            if rss0 is not None:
                rss_peak = max(rss_peak or 0, _rss_bytes() or 0)
            if rec.first_bad is not None:
                stop_reason = "diverged"
                break
            if next_eval is not None:
                while next_eval <= step:
                    next_eval += eval_every  # type: ignore[operator]
            if next_eval_t is not None and eval_dt:
                while next_eval_t <= rec.base:
                    next_eval_t += eval_dt
            result.evals.append(_eval_point(net, data, config, step, rec.base))
            if done:
                break
            rec.start_segment()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a user's optimizer or model failing is a result, not a crash of the run
        result.status = "failed"
        result.error = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        with contextlib.suppress(Exception):
            rec.end_segment()
    else:
        if stop_reason == "diverged":
            bad = rec.first_bad if rec.first_bad is not None else len(rec.losses) - 1
            result.status = "diverged"
            value = rec.losses[bad]
            result.error = f"loss {value:.4g} at step {bad + 1} (initial {rec.losses[0]:.4g}): " + (
                "not finite" if not math.isfinite(value) else "more than 1e3 x the initial loss"
            )
            del rec.losses[bad + 1 :], rec.times[bad + 1 :]
            result.evals = [e for e in result.evals if e.step <= bad + 1]

    result.losses = list(rec.losses)
    result.times = list(rec.times)
    result.step_time_ms = _median_ms(rec.step_s)
    result.optimizer_step_ms = _median_ms(rec.opt_s)
    result.state_bytes = optimizer_state_bytes(opt) if opt is not None else None
    if device.type == "cuda":
        result.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device) - mem0)
    elif rss0 is not None and rss_peak is not None:
        result.peak_memory_bytes = max(0, rss_peak - rss0)
    result.extra["stop_reason"] = stop_reason if result.status != "failed" else "failed"
    result.extra["epochs"] = len(result.losses) / steps_per_epoch if steps_per_epoch else None
    if on_step is not None and result.losses:
        on_step(len(result.losses), total, result.losses[-1])
    return result


def _eager_step(
    train_net: Any,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    scaler: torch.amp.GradScaler | None,
    rec: Any,
    channels_last: bool,
) -> torch.Tensor:
    """One eager training step (forward, backward, optimizer step timed by ``rec``); returns the loss."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast():
        loss = F.cross_entropy(_logits(train_net(x)), y)
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        tok = rec.opt_begin()
        opt.step()
        rec.opt_end(tok)
    else:
        scaler.scale(loss).backward()
        tok = rec.opt_begin()
        scaler.step(opt)
        scaler.update()
        rec.opt_end(tok)
    return loss


def _scheduler(
    opt: torch.optim.Optimizer, schedule: ScheduleSpec | None, total: int | None, seconds: float | None
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A LambdaLR from the recipe's schedule (None when the lr is constant: no per-step cost at all).

    For a time budget the schedule's progress is the training clock over the budget, which the loop
    stores on ``sched.clock`` before each ``sched.step()``.
    """
    if schedule is None or (schedule.name == "constant" and not schedule.warmup_steps):
        return None
    warm = schedule.warmup_steps
    sched: Any = None

    def factor(i: int) -> float:
        if total is not None:
            p = (i - warm) / max(1, total - warm)
        else:
            p = (getattr(sched, "clock", 0.0) / seconds) if seconds else 0.0
        return lr_factor(schedule, i, p)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    sched.clock = 0.0
    return sched


def _latest(rec: Any) -> float | None:
    if isinstance(rec, _CudaRecorder):
        return rec.latest()
    return rec.losses[-1] if rec.losses else None


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


def _warm_up(
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
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(config.device, config.precision)():
        loss = F.cross_entropy(_logits(train_net(x)), y)
    loss.backward()
    if optimizer is not None and optimizer.source != "import":
        copies = [p.detach().clone().requires_grad_(p.requires_grad) for p in net.parameters()]
        for c, p in zip(copies, net.parameters(), strict=True):
            c.grad = None if p.grad is None else p.grad.detach().clone()
        optimizer.build(copies).step()
        del copies
    net.zero_grad(set_to_none=True)
    net.load_state_dict(saved)
    if config.device.type == "cuda":
        torch.cuda.synchronize(config.device)


# --- whole-step CUDA graphs (model.compile: graph) -------------------------------------------------

#: optimizers whose ``step()`` can be captured (with ``capturable=True`` where they have it)
GRAPH_OPTIMIZERS = (
    "adacli.optim.adabelief.AdaBelief",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.sgd.SGD",
)
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuDNN/cuBLAS workspaces, lazy state)
_notes_shown: set[str] = set()


def graph_problem(opt: torch.optim.Optimizer, device: torch.device, precision: str) -> str | None:
    """Why a trial cannot run as one CUDA graph per step, or None when it can.

    The capture bakes in every host-side value, so the step must not read the GPU (fp16's loss scaler
    does) and the optimizer must keep its step-dependent values on the device: adacli's AdaBelief and
    torch's Adam/AdamW with ``capturable=True``, and SGD (no step count; ``dampening`` 0, because a
    captured SGD cannot take its first-step branch). A user's class may do anything on the host.
    """
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device (this trial runs on {device.type})"
    if precision == "fp16":
        return "fp16 loss scaling reads the GPU every step"
    cls = type(opt)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in GRAPH_OPTIMIZERS:
        return f"{name} is not known to be capturable (AdaBelief, torch Adam/AdamW/SGD are)"
    if isinstance(opt, torch.optim.SGD) and any(g.get("dampening", 0) for g in opt.param_groups):
        return "SGD with dampening > 0 takes a first-step branch a captured step cannot"
    return None


def make_capturable(opt: torch.optim.Optimizer, device: torch.device, scheduled: bool) -> None:
    """Switch a fresh optimizer (no state yet) to its capturable form before its first step.

    ``capturable=True`` keeps step counters on the device; with a schedule the lr becomes a device tensor,
    which torch's LR schedulers update in place (``fill_``) and every replay reads. torch's foreach SGD
    reads a Tensor lr on the host, so a scheduled SGD takes its fused path (the same update).
    """
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = True
        if scheduled:
            if isinstance(opt, torch.optim.SGD):
                group["foreach"], group["fused"] = False, True
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


def _note_once(text: str) -> None:
    """A one-line note on stderr, once per process per text (a run has many trials)."""
    if text not in _notes_shown:
        _notes_shown.add(text)
        print(f"note: {text}", file=sys.stderr, flush=True)


class GraphedStep:
    """Forward, backward and ``optimizer.step()`` captured once, replayed per training step.

    Built by :meth:`capture`: a few eager steps on a side stream (as torch's whole-network capture
    recipe does), the capture, then the model and optimizer put back to where they were before, in
    place (the graph holds their addresses), so the trial starts from the seed's initial weights and a
    fresh optimizer state, as the eager loop does. Gradients are zeroed inside the graph (not set to
    None), so they keep one address from the warm-up on and the fused AdaBelief's address table built
    then is reused inside the capture.
    """

    def __init__(self, graph: Any, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        self.graph, self.x, self.y, self.loss = graph, x, y, loss

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on batch ``(x, y)``; returns the (static) loss tensor, not yet read."""
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss

    @classmethod
    def capture(
        cls, net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, config: TrialConfig
    ) -> GraphedStep:
        autocast = _autocast(config.device, config.precision)
        fmt = torch.channels_last if config.channels_last and x.dim() == 4 else torch.contiguous_format
        static_x, static_y = x.contiguous(memory_format=fmt).clone(memory_format=fmt), y.clone()
        saved = {k: v.detach().clone() for k, v in net.state_dict().items()}

        def train_step() -> torch.Tensor:
            opt.zero_grad(set_to_none=False)
            with autocast():
                loss = F.cross_entropy(_logits(net(static_x)), static_y)
            loss.backward()
            opt.step()
            return loss

        side = torch.cuda.Stream(config.device)
        side.wait_stream(torch.cuda.current_stream(config.device))
        with torch.cuda.stream(side), warnings.catch_warnings():
            # torch warns once that a capturable optimizer stepped outside a capture: that is this warm-up
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(GRAPH_WARMUP_STEPS):
                train_step()
        torch.cuda.current_stream(config.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_loss = train_step()
        with torch.no_grad():  # undo the warm-up, in place
            for k, v in net.state_dict().items():
                v.copy_(saved[k])
            for state in opt.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()
        torch.cuda.synchronize(config.device)
        return cls(graph, static_x, static_y, static_loss)


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
        _note_once(f"model.compile: graph: {problem}; running eagerly")
        return None
    make_capturable(opt, config.device, scheduled)
    # a batch of the training shape from another stream of draws: the trial's own batches stay untouched
    x, y = next(data.train_batches(config.budget.batch_size, seed + 7919, config.device))
    graphed = GraphedStep.capture(net, opt, x, y, config)
    torch.manual_seed(seed)  # the warm-up drew random numbers (dropout): restart the trial's streams
    torch.cuda.manual_seed_all(seed)
    return graphed
