"""The update arithmetic the AdaBelief paths share: the hyperparameter record, host scalars, the foreach
update, device scalars.

Why a module of its own: the reference/foreach optimizer (``adabelief``), the CPU bucket (``_flat``) and the
fused kernels (``_fused``) all need these, and neither may import the other's module (no import cycles):
``adabelief`` imports ``_fused`` and ``_flat`` to dispatch, and all import this module, which imports none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True, slots=True)
class Hyper:
    """AdaBelief's hyperparameters for one param group: the one record every path reads.

    Why a record: the same eleven values travel from a param group to whichever path updates it (single
    tensor, foreach, the CPU bucket, the fused kernels, the capturable variants); passing them as one
    immutable object keeps the paths' signatures short and means no path can take a different set. The
    defaults are the official release's. ``lr`` is a float, or a one-element Tensor (what torch's
    schedulers update in place); the host paths read it once per step with :meth:`on_host`.
    """

    lr: float | Tensor = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-16
    weight_decay: float = 0.0
    amsgrad: bool = False
    weight_decouple: bool = True
    fixed_decay: bool = False
    rectify: bool = True
    degenerated_to_sgd: bool = True
    maximize: bool = False

    @classmethod
    def from_group(cls, group: dict[str, Any]) -> Hyper:
        """The record of a param group (its ``betas`` pair split into ``beta1``, ``beta2``)."""
        beta1, beta2 = group["betas"]
        return cls(
            group["lr"], beta1, beta2, group["eps"], group["weight_decay"], group["amsgrad"],
            group["weight_decouple"], group["fixed_decay"], group["rectify"], group["degenerated_to_sgd"],
            group["maximize"],
        )  # fmt: skip

    def on_host(self) -> Hyper:
        """The record with a Python-float ``lr`` (a Tensor lr read with ``.item()``: free for a CPU tensor;
        the capturable paths never call this, so a CUDA lr is not read back)."""
        return replace(self, lr=self.lr.item()) if isinstance(self.lr, Tensor) else self

    def decay_factor(self, lr: float) -> float:
        """The decoupled decay multiplier ``1 - lr*wd`` (``1 - wd`` with ``fixed_decay``)."""
        return 1.0 - (self.weight_decay if self.fixed_decay else lr * self.weight_decay)


@dataclass(slots=True)  # not frozen: built every step, and a frozen dataclass costs 4x more to build
class StepScalars:
    """The host scalars of one step of the host paths (foreach, bucket, fused), computed as the reference.

    ``kind``: ``"unrectified"`` (``p += value * m / (sqrt(s or max s) / sqrt_bc2 + eps)``), ``"adaptive"``
    (``p += value * m / (sqrt(s) + eps)``), ``"sgd"`` (``p += value * m``) or ``"none"`` (no update).
    """

    kind: str
    value: float
    sqrt_bc2: float


def step_scalars(step: float, hyper: Hyper) -> StepScalars:
    """The bias corrections and rectification of ``step`` for a host-lr record, as the official code."""
    lr: float = hyper.lr  # type: ignore[assignment]
    bias_correction1 = 1 - hyper.beta1**step
    bias_correction2 = 1 - hyper.beta2**step
    sqrt_bc2 = math.sqrt(bias_correction2)
    if not hyper.rectify:
        return StepScalars("unrectified", -lr / bias_correction1, sqrt_bc2)
    kind, step_size = rectification(step, hyper.beta1, hyper.beta2, hyper.degenerated_to_sgd)
    return StepScalars(kind, -step_size * lr, sqrt_bc2)


def rectification(step: float, beta1: float, beta2: float, degenerated_to_sgd: bool) -> tuple[str, float]:
    """The RAdam rectification decision for one step, computed exactly as the official code does.

    Returns ``(kind, step_size)``: kind ``"adaptive"`` means ``p -= lr * step_size * m / (sqrt(s) + eps)``,
    ``"sgd"`` means ``p -= lr * step_size * m``, ``"none"`` means no parameter update this step (the moments
    still advance). ``step_size`` already contains the first-moment bias correction.
    """
    bias_correction1 = 1 - beta1**step
    beta2_t = beta2**step
    n_sma_max = 2 / (1 - beta2) - 1
    n_sma = n_sma_max - 2 * step * beta2_t / (1 - beta2_t)
    if n_sma >= 5:
        step_size = (
            math.sqrt(
                (1 - beta2_t)
                * (n_sma - 4)
                / (n_sma_max - 4)
                * (n_sma - 2)
                / n_sma
                * n_sma_max
                / (n_sma_max - 2)
            )
            / bias_correction1
        )
        return "adaptive", step_size
    if degenerated_to_sgd:
        return "sgd", 1.0 / bias_correction1
    return "none", -1.0


def steps_by_value(steps: list[Tensor]) -> dict[float, list[int]]:
    """Indices of the counters by step value (CPU counters: reading them never syncs a GPU).

    Usually every counter of a group holds the same value: one stacked comparison says so, instead of a
    ``.item()`` per tensor (for a model of a hundred small tensors that loop is a visible part of a step).
    """
    if len(steps) > 1:
        stacked = torch.stack(steps)
        first = stacked[0].item()
        if bool(stacked.eq(first).all()):
            return {first: list(range(len(steps)))}
    by_step: dict[float, list[int]] = {}
    for j, s in enumerate(steps):
        by_step.setdefault(step_value(s), []).append(j)
    return by_step


def step_value(step: Tensor | float) -> float:
    """The host value of a step counter (a CPU tensor: reading it never synchronises with a GPU)."""
    return step.item() if isinstance(step, Tensor) else float(step)


def _update_moments(
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    hyper: Hyper,
) -> None:
    """The moments, op for op as the official release: ``m = b1*m + (1-b1)*g``,
    ``s = b2*s + (1-b2)*(g-m)² + eps`` (eps kept in the state), and the amsgrad maximum. Shared by the
    host-scalar and the capturable foreach paths, which differ only in how the step is scaled."""
    beta1, beta2 = hyper.beta1, hyper.beta2
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
    residual = torch._foreach_sub(grads, exp_avgs)
    torch._foreach_mul_(exp_avg_vars, beta2)
    torch._foreach_addcmul_(exp_avg_vars, residual, residual, value=1 - beta2)
    torch._foreach_add_(exp_avg_vars, hyper.eps)
    if hyper.amsgrad:
        torch._foreach_maximum_(max_exp_avg_vars, exp_avg_vars)


def _working_copies(
    params: list[Tensor], grads: list[Tensor], hyper: Hyper, decay: float | Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """The tensors the update is computed on, weight decay applied: fp32 copies of half parameters, and
    the gradients negated (``maximize``), cast to the parameters' dtype and with the L2 term added, out of
    place (``p.grad`` is never modified). ``decay``: the decoupled multiplier, a float or device scalars."""
    work = [p.float() for p in params] if params[0].dtype in LOW_PRECISION else params
    owned = False  # whether `grads` holds tensors we allocated (and may modify in place)
    if hyper.maximize:
        grads = torch._foreach_neg(grads)
        owned = True
    if grads[0].dtype != work[0].dtype:
        grads = [g.to(work[0].dtype) for g in grads]
        owned = True
    if hyper.weight_decouple:
        if hyper.weight_decay != 0:
            torch._foreach_mul_(work, decay)
    elif hyper.weight_decay != 0:
        if owned:
            torch._foreach_add_(grads, work, alpha=hyper.weight_decay)
        else:
            grads = torch._foreach_add(grads, work, alpha=hyper.weight_decay)
    return work, grads


def foreach_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    *,
    step: float,
    hyper: Hyper,
) -> None:
    """One step for same-device, same-dtype tensors that share a step count (``hyper`` with a host lr)."""
    work, grads = _working_copies(params, grads, hyper, hyper.decay_factor(hyper.lr))  # type: ignore[arg-type]
    scalars = step_scalars(step, hyper)
    _update_moments(grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, hyper)
    if scalars.kind == "unrectified":
        denom = torch._foreach_sqrt(max_exp_avg_vars if hyper.amsgrad else exp_avg_vars)
        torch._foreach_div_(denom, scalars.sqrt_bc2)
        torch._foreach_add_(denom, hyper.eps)
        torch._foreach_addcdiv_(work, exp_avgs, denom, value=scalars.value)
    elif scalars.kind == "adaptive":
        denom = torch._foreach_sqrt(exp_avg_vars)
        torch._foreach_add_(denom, hyper.eps)
        torch._foreach_addcdiv_(work, exp_avgs, denom, value=scalars.value)
    elif scalars.kind == "sgd":
        torch._foreach_add_(work, exp_avgs, alpha=scalars.value)
    if work is not params:
        torch._foreach_copy_(params, work)


# --- capturable: the step-dependent scalars computed on the parameters' device ----------------------------


def device_coefficients(steps: list[Tensor], hyper: Hyper, *, dtype: torch.dtype) -> Tensor:
    """The per-tensor update scalars as a ``(4, n)`` device tensor: decay, adaptive, SGD and sqrt(bc2) rows.

    Why: under CUDA-graph capture (and for ``capturable=True`` in general) the step counters and the
    learning rate live on the device, so the host cannot read them. These are the scalars that
    :func:`rectification` and the host paths compute, evaluated with tensor ops in float64 in the same
    order of operations, then rounded once to the update dtype (as a Python float is when an op takes it).
    Row 1 multiplies ``m / denom`` (zero when the rectified step skips the adaptive update), row 2 multiplies
    ``m`` (the SGD fallback of the first rectified steps, else zero): the update is
    ``p += c1 * (m / denom) + c2 * m`` with no host branch. ``steps`` are already incremented.
    """
    s = torch.stack(steps).to(torch.float64)
    lr = hyper.lr
    if isinstance(lr, Tensor) and lr.device != s.device:
        lr = lr.item()  # a CPU lr for device counters: read it (free) rather than copy it every step
    lr64 = lr.to(torch.float64) if isinstance(lr, Tensor) else lr
    beta1, beta2, weight_decay = hyper.beta1, hyper.beta2, hyper.weight_decay
    zero = torch.zeros_like(s)
    if hyper.weight_decouple and weight_decay != 0:
        decay = 1.0 - (weight_decay if hyper.fixed_decay else lr64 * weight_decay) + zero
    else:
        decay = zero + 1.0
    bias_correction1 = 1 - torch.pow(beta1, s)
    beta2_t = torch.pow(beta2, s)
    bias_correction2 = 1 - beta2_t
    if not hyper.rectify:
        adaptive = -lr64 / bias_correction1 + zero
        sgd = zero
    else:
        n_sma_max = 2 / (1 - beta2) - 1
        n_sma = n_sma_max - 2 * s * beta2_t / (1 - beta2_t)
        radicand = (1 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max
        radicand = radicand / (n_sma_max - 2)
        take = n_sma >= 5
        step_size = torch.sqrt(torch.where(take, radicand, 1.0)) / bias_correction1
        adaptive = torch.where(take, -step_size * lr64, zero)
        fallback = torch.where(take, zero, -(1.0 / bias_correction1) * lr64)
        sgd = fallback if hyper.degenerated_to_sgd else zero
    return torch.stack([decay, adaptive, sgd, torch.sqrt(bias_correction2)]).to(dtype)


def foreach_update_capturable(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    *,
    coefs: Tensor,
    hyper: Hyper,
) -> None:
    """One step of same-device, same-dtype tensors with the device scalars of :func:`device_coefficients`.

    The official ops in the official order, except that the step-dependent scalars are tensors: an
    ``addcdiv_(m, d, value=c)`` becomes ``p += (m / d) * c`` (the order of CUDA's addcdiv kernel).
    """
    decay, adaptive, sgd, sqrt_bc2 = (row.unbind(0) for row in coefs)
    work, grads = _working_copies(params, grads, hyper, decay)
    _update_moments(grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, hyper)
    if not hyper.rectify:
        denom = torch._foreach_sqrt(max_exp_avg_vars if hyper.amsgrad else exp_avg_vars)
        torch._foreach_div_(denom, sqrt_bc2)
    else:
        denom = torch._foreach_sqrt(exp_avg_vars)
    torch._foreach_add_(denom, hyper.eps)
    update = torch._foreach_div(exp_avgs, denom)
    torch._foreach_mul_(update, adaptive)
    torch._foreach_add_(work, update)
    if hyper.rectify and hyper.degenerated_to_sgd:
        fallback = torch._foreach_mul(exp_avgs, sgd)
        torch._foreach_add_(work, fallback)
    if work is not params:
        torch._foreach_copy_(params, work)
