"""One training step, the one every part of adacli runs: trial, preflight and step-test.

A trial's step, preflight's "one real forward/backward/step" and the step-test's recipe checks must
compute the same thing, or a check passes on code the run never executes. So the pieces live here once:

* :func:`resolve_device` (``auto`` -> CUDA, MPS, CPU) and :func:`place_model` (device, memory format,
  training mode);
* :func:`autocast_for` (the precision's autocast), :func:`grad_scaler` (fp16 loss scaling) and
  :func:`cpu_precision_guard` (oneDNN off for bf16 on the CPU, where its convolution backward corrupts
  gradients);
* :func:`forward_loss` (forward and cross-entropy, the first of a tuple of logits scored),
  :func:`backward_step` (backward and the timed ``optimizer.step()``) and :func:`train_step` (both,
  what a trial does per batch);
* :func:`parameter_copies` (the parameters with their gradients, for a throwaway optimizer step) and
  :func:`evaluate` (loss and accuracy on a whole split).

The guard is global state and costs a context switch, so it is entered once around a whole trial or
check, never per step; nothing here adds work to a trial's step beyond forward, backward and ``step()``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from adacli.errors import InputError

if TYPE_CHECKING:
    from adacli.train.data import DataBundle

#: a factory of the precision's autocast context (a fresh context manager per call)
Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


class StepTimer(Protocol):
    """Times ``optimizer.step()``: ``opt_end(opt_begin())`` around it (a trial's clock is one)."""

    def opt_begin(self) -> Any: ...

    def opt_end(self, token: Any) -> None: ...


class _Untimed:
    def opt_begin(self) -> None:
        return None

    def opt_end(self, token: Any) -> None:
        pass


#: the timer of steps nobody times (preflight, step-test)
UNTIMED: StepTimer = _Untimed()


# --- devices and precision -------------------------------------------------------------------------


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
    problem = _device_problem(device, name)
    if problem is not None:
        raise problem
    return device


def _device_problem(device: torch.device, name: str) -> InputError | None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return InputError(
                "device 'cuda' requested but CUDA is not available on this machine",
                field="device",
                allowed=["auto", "cpu"],
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            return InputError(
                f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA devices)", field="device"
            )
    elif device.type == "mps" and not (torch.backends.mps.is_available()):
        return InputError(
            "device 'mps' requested but MPS is not available", field="device", allowed=["auto", "cpu"]
        )
    elif device.type not in ("cpu", "cuda", "mps"):
        return InputError(
            f"unsupported device {name!r}", field="device", allowed=["auto", "cpu", "cuda", "mps"]
        )
    return None


def place_model(net: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``net`` on ``device``, in channels-last memory format if asked, in training mode."""
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.train()


def autocast_for(device: torch.device, precision: str) -> Autocast:
    """The precision's autocast as a factory (fp32: a null context, no autocast at all)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (fp16 gradients underflow without it); None for fp32 and bf16."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def cpu_precision_guard(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """oneDNN (mkldnn) off for bf16 training on the CPU; nothing otherwise.

    Why: with bf16 autocast on the CPU, torch's oneDNN convolution backward (seen with torch 2.14)
    hands back weight gradients whose memory later allocations overwrite, so the next optimizer step
    reads garbage (NaN losses after a few steps; ``benchmarks/bf16_cpu_grads.py`` reproduces it). With
    oneDNN off the native kernels compute the same bf16 convolutions and the gradients stay intact.
    The flag is global, so it is set for the trial (or check) only and restored afterwards.
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


# --- the step ----------------------------------------------------------------------------------------


def logits_of(out: Any) -> torch.Tensor:
    """The logits of a model's output: some timm models return (logits, aux/distillation logits) in
    training mode, and the first is the one scored."""
    return out[0] if isinstance(out, (tuple, list)) else out


def forward_logits(net: Any, x: torch.Tensor, autocast: Autocast, channels_last: bool) -> torch.Tensor:
    """The model's logits on ``x`` under the precision's autocast (no loss: evaluation scores them)."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast():
        return logits_of(net(x))


def forward_loss(
    net: Any, x: torch.Tensor, y: torch.Tensor, autocast: Autocast, channels_last: bool
) -> torch.Tensor:
    """Forward and mean cross-entropy on a training batch, both under the precision's autocast."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast():
        return F.cross_entropy(logits_of(net(x)), y)


def backward_step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    timer: StepTimer = UNTIMED,
) -> None:
    """Backward, then ``opt.step()`` timed by ``timer`` (with fp16's scaler: scaled, unscaled, updated).

    The gradients must have been cleared (``zero_grad``) before the forward or here before the call.
    """
    if scaler is None:
        loss.backward()
        tok = timer.opt_begin()
        opt.step()
        timer.opt_end(tok)
    else:
        scaler.scale(loss).backward()
        tok = timer.opt_begin()
        scaler.step(opt)
        scaler.update()
        timer.opt_end(tok)


def train_step(
    net: Any,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    autocast: Autocast,
    scaler: torch.amp.GradScaler | None,
    timer: StepTimer,
    channels_last: bool,
) -> torch.Tensor:
    """One eager training step: forward, ``zero_grad``, backward, timed ``step()``; returns the loss
    (not read: reading it is the caller's choice, a host sync on a GPU)."""
    loss = forward_loss(net, x, y, autocast, channels_last)
    opt.zero_grad(set_to_none=True)
    backward_step(loss, opt, scaler, timer)
    return loss


def parameter_copies(net: nn.Module) -> list[torch.Tensor]:
    """Detached copies of ``net``'s parameters carrying copies of their gradients: an optimizer built
    on them can take a real step without touching the model (warm-up, preflight)."""
    copies = [p.detach().clone().requires_grad_(p.requires_grad) for p in net.parameters()]
    for c, p in zip(copies, net.parameters(), strict=True):
        c.grad = None if p.grad is None else p.grad.detach().clone()
    return copies


# --- evaluation --------------------------------------------------------------------------------------


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
    autocast = autocast_for(device, precision)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        for x, y in data.eval_batches(split, batch_size, device):
            logits = forward_logits(model, x, autocast, channels_last and x.dim() == 4).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(dim=1) == y).sum()
            n += int(y.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        return math.nan, math.nan
    return loss_sum.item() / n, 100.0 * correct.item() / n
