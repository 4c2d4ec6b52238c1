"""AdaBelief with the numerics of the official ``adabelief-pytorch`` 0.2.1, on torch's optimizer paths.

Why this exists: the official release is a per-parameter Python loop that prints on construction, keeps its
flags global and shares one rectification buffer across every param group, and gives bf16 parameters bf16
state. adacli's comparisons are only as trustworthy as this optimizer, so it reproduces the official update
arithmetic exactly (DESIGN.md section 2) while fixing those defects, and runs it on paths modelled on
``torch/optim/adam.py``:

* ``single``: ``_single_tensor_adabelief``, the readable reference, one parameter at a time, op for op the
  official code.
* ``foreach``: ``_multi_tensor_adabelief``, the same ops as ``torch._foreach_*`` calls over every tensor of a
  param group that shares a device and dtype (on CPU, cut into cache-sized chunks so that consecutive ops
  hit the cache; a group's many small CPU tensors go through one flat bucket, ``adacli.optim._flat``).
* ``fused``: one pass over memory per element (``adacli.optim._fused``): a C++/OpenMP kernel on CPU, a
  Triton kernel on CUDA.
* ``capturable`` / ``capturable-fused``: the foreach ops or the Triton kernel with the step-dependent
  scalars computed on the device (CUDA graphs).

:func:`choose_path` is the one place a path is chosen (from the device and the ``foreach``, ``fused`` and
``capturable`` settings); every path takes the group's hyperparameters as one :class:`Hyper` record.

The step counter is a float32 CPU tensor per parameter, as in torch's Adam with ``capturable=False``: bias
corrections and the RAdam rectification term are computed on the host from it, so ``step()`` never reads a
CUDA tensor back (no host synchronisation). With ``capturable=True`` (for CUDA graphs) the counters and the
learning rate live on the parameters' device and those scalars are computed there
(``adacli.optim._math.device_coefficients``), so ``step()`` issues no host work that depends on the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from adacli.optim import _flat, _fused, _math
from adacli.optim._math import (
    LOW_PRECISION,
    Hyper,
    device_coefficients,
    foreach_update,
    foreach_update_capturable,
    rectification,
    step_value,
    steps_by_value,
)

__all__ = ["AdaBelief", "Hyper", "adabelief", "choose_path", "default_path", "rectification"]

# Per-group keys the official release does not store in its param groups; an official checkpoint's groups
# get them from this optimizer's constructor arguments when loaded.
_FLAG_KEYS = (
    "weight_decouple",
    "fixed_decay",
    "rectify",
    "degenerated_to_sgd",
    "maximize",
    "foreach",
    "fused",
    "capturable",
)

#: the paths whose step scalars are computed on the device (no host read of the lr or the step)
_DEVICE_SCALAR_PATHS = ("capturable", "capturable-fused")


def default_path(device: torch.device | str) -> str:
    """The path ``foreach=None, fused=None`` selects on a device: ``"fused"`` or ``"foreach"``.

    Chosen from measurements (docs/adabelief.md), and on CUDA from what has run on a GPU: see
    ``adacli.optim._fused.fused_is_default``.
    """
    if _fused.fused_is_default(torch.device(device)):
        return "fused"
    return "foreach"


def choose_path(device: torch.device, *, foreach: bool | None, fused: bool | None, capturable: bool) -> str:
    """The path a param group on ``device`` takes: ``"single"``, ``"foreach"``, ``"fused"``,
    ``"capturable"`` (foreach ops with device scalars) or ``"capturable-fused"`` (Triton, device scalars).

    The one place a path is decided. ``foreach=None, fused=None`` takes :func:`default_path`. With
    ``capturable`` every path but the CPU fused kernel computes its step scalars on the device; the CPU
    kernel reads the CPU counters directly (there is no device to synchronise with). ``fused=True`` on
    CUDA selects the Triton kernel, with a one-time warning while it is unverified on GPUs.
    """
    if foreach and fused:
        raise ValueError("foreach and fused cannot both be True: choose one path")
    if foreach is None and fused is None:
        path = default_path(device)
    else:
        path = "fused" if fused else "foreach" if foreach else "single"
    if path == "fused" and device.type == "cuda":
        _fused.warn_unverified_cuda_kernel()
    if capturable and not (path == "fused" and device.type == "cpu"):
        return "capturable-fused" if path == "fused" else "capturable"
    return path


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al., NeurIPS 2020) with the update of ``adabelief-pytorch`` 0.2.1.

    Arguments and defaults are the official ones (``lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0,
    amsgrad=False, weight_decouple=True, fixed_decay=False, rectify=True, degenerated_to_sgd=True``) plus
    ``maximize``, ``foreach``, ``fused`` and ``capturable`` as in ``torch.optim.Adam``. Every argument may be
    set per param group. ``capturable=True`` keeps step counters (and a Tensor ``lr``) on the parameters'
    device so that ``step()`` can be captured in a CUDA graph; a Tensor ``lr`` (e.g. ``torch.tensor(1e-3)``)
    is what torch's LR schedulers update in place, which a captured step then reads. fp16/bf16 parameters
    keep fp32 optimizer state (the update is computed in fp32 and rounded once).
    ``foreach=None, fused=None`` picks the fastest measured path for the parameters' device
    (:func:`default_path`).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0,
        amsgrad: bool = False,
        weight_decouple: bool = True,
        fixed_decay: bool = False,
        rectify: bool = True,
        degenerated_to_sgd: bool = True,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("a Tensor lr must hold one element")
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if foreach and fused:
            raise ValueError("foreach and fused cannot both be True: choose one path")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            weight_decouple=weight_decouple,
            fixed_decay=fixed_decay,
            rectify=rectify,
            degenerated_to_sgd=degenerated_to_sgd,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            capturable=capturable,
        )
        super().__init__(params, defaults)

    # --- state handling ---------------------------------------------------------------------------------

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore from pickle or ``load_state_dict``: fill per-group flags, normalise step counters."""
        super().__setstate__(state)
        defaults = getattr(self, "defaults", {})
        for group in self.param_groups:
            group.pop("buffer", None)  # the official release's shared rectification cache: not ours
            for key in ("amsgrad", *_FLAG_KEYS):
                group.setdefault(key, defaults.get(key, _CONSTRUCTOR_DEFAULTS[key]))
        self._place_steps()

    def _place_steps(self) -> None:
        """Step counters go to the parameter's device for capturable groups, else to the CPU."""
        for group in self.param_groups:
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and "step" in p_state:
                    device = p.device if group["capturable"] else None
                    p_state["step"] = _as_step_tensor(p_state["step"], device)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict from this class or from the official ``adabelief_pytorch.AdaBelief``.

        torch casts floating state to the parameter's dtype (and moves ``step`` to the parameter's device
        for fused groups); adacli keeps fp32 state for fp16/bf16 parameters and a CPU step counter, so the
        loaded state is re-taken from the saved tensors without the lossy round trip. Param groups saved by
        the official release lack the per-group flags: they come from this optimizer's constructor.
        """
        saved_state = state_dict["state"]
        saved_ids = [pid for g in state_dict["param_groups"] for pid in g["params"]]
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        for pid, p in zip(saved_ids, params, strict=True):
            if pid not in saved_state or p not in self.state:
                continue
            p_state = self.state[p]
            for key, value in saved_state[pid].items():
                if key == "step":
                    p_state[key] = _as_step_tensor(value)
                elif isinstance(value, Tensor) and value.is_floating_point():
                    p_state[key] = value.to(device=p.device, dtype=_state_dtype(p), copy=True)
        self._place_steps()

    def _init_group(self, group: dict[str, Any]) -> list[list[Tensor]]:
        """The group's parameters that have gradients, with their gradients and state, as the parallel
        lists ``[params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps]`` (the max list
        empty without amsgrad), creating state lazily (fp32 for half parameters).

        This loop runs every step over every parameter: on the CPU with a hundred small tensors its cost
        is a visible part of the step, so it does only what each step needs.
        """
        amsgrad = group["amsgrad"]
        group_params = group["params"]
        lists: list[list[Tensor]] = [[], [], [], [], [], []]
        params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps = lists
        # the parameters' state dicts, looked up once (a tensor's hash is a Python call) and reused while
        # the group's parameters and the optimizer's state mapping are the same objects
        refs = self.__dict__.setdefault("_state_refs", {})
        ref = refs.get(id(group))
        if ref is None or ref[0] is not self.state or not _flat.same(ref[1], group_params):
            ref = refs[id(group)] = (self.state, list(group_params), [None] * len(group_params))
        states = ref[2]
        for j, p in enumerate(group_params):
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(
                    "AdaBelief does not support sparse gradients; use torch.optim.SparseAdam for "
                    "sparse parameters (e.g. nn.Embedding(sparse=True)) or make the gradients dense"
                )
            state = states[j]
            if state is None:
                state = states[j] = self.state[p]
            if len(state) == 0 or (amsgrad and "max_exp_avg_var" not in state):
                self._new_state(group, p, state)
            params.append(p)
            grads.append(grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_vars.append(state["exp_avg_var"])
            if amsgrad:
                max_exp_avg_vars.append(state["max_exp_avg_var"])
            state_steps.append(state["step"])
        return lists

    @staticmethod
    def _new_state(group: dict[str, Any], p: Tensor, state: dict[str, Tensor]) -> None:
        """Zero moments (fp32 for half parameters) and a step counter (on the device when capturable)."""
        if torch.is_complex(p):
            raise RuntimeError(
                "AdaBelief does not support complex parameters: the official update squares the complex "
                "residual, so its 'variance' is complex and the step is not AdaBelief's; keep the parameter "
                "real (torch.view_as_real) and use torch.view_as_complex in the model"
            )
        dtype = _state_dtype(p)
        if len(state) == 0:
            step_device = p.device if group["capturable"] else None
            state["step"] = torch.zeros((), dtype=torch.float32, device=step_device)
            state["exp_avg"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            state["exp_avg_var"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
        if group["amsgrad"] and "max_exp_avg_var" not in state:
            state["max_exp_avg_var"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; ``closure`` re-evaluates the model and returns the loss."""
        self._check_capture()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            lists = self._init_group(group)
            if lists[0]:
                self._step_group(index, group, lists)
        return loss

    def _step_group(self, index: int, group: dict[str, Any], lists: list[list[Tensor]]) -> None:
        """One group on the path :func:`choose_path` picks, through the CPU shortcuts where they apply:
        the flat bucket of small tensors (foreach) and the direct kernel call (fused)."""
        device = lists[0][0].device
        path = choose_path(
            device, foreach=group["foreach"], fused=group["fused"], capturable=group["capturable"]
        )
        hyper = Hyper.from_group(group)
        if path not in _DEVICE_SCALAR_PATHS:
            hyper = hyper.on_host()
        if device.type == "cpu" and path == "foreach":
            lists = self._flat_small(index, hyper, lists)
        elif device.type == "cpu" and path == "fused" and not group["capturable"]:  # noqa: SIM102
            if self._fused_cpu_fast(index, hyper, lists):  # False: the general fused path below
                return
        cache = self.__dict__.setdefault("_fused_cache", {})
        _run_path(path, *lists, hyper, cache)  # type: ignore[call-arg]

    def _flat_small(self, index: int, hyper: Hyper, lists: list[list[Tensor]]) -> list[list[Tensor]]:
        """Update the group's small fp32 CPU tensors as one flat bucket (``adacli.optim._flat``) on the
        foreach path; returns the lists of the tensors left for the per-tensor foreach ops."""
        params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps = lists
        buckets = self.__dict__.setdefault("_flat_buckets", {})
        bucket = buckets.get(index)
        idx = bucket.idx if bucket is not None and _flat.same(params, bucket.all_params) else None
        if idx is None:
            idx = _flat.select(params)
            if not idx:
                buckets.pop(index, None)
                return lists
        keys = ("exp_avg", "exp_avg_var", *(("max_exp_avg_var",) if hyper.amsgrad else ()))
        current = {
            "exp_avg": exp_avgs, "exp_avg_var": exp_avg_vars, "max_exp_avg_var": max_exp_avg_vars,
            "step": state_steps,
        }  # fmt: skip
        if (
            bucket is None
            or bucket.idx is not idx
            or not bucket.matches({k: [current[k][i] for i in idx] for k in (*keys, "step")})
        ):
            steps = [state_steps[i] for i in idx]
            if not bool(torch.stack(steps).eq(steps[0]).all()):  # other step counts: no bucket
                buckets.pop(index, None)
                return lists
            bucket = buckets[index] = _flat.build(params, idx, self.state, keys)
        counters = bucket.flats["step"]
        counters.add_(1.0)
        _flat.update(bucket, [grads[i] for i in idx], step=counters[0].item(), hyper=hyper)
        rest = bucket.rest
        return [[lst[i] for i in rest] if lst else lst for lst in lists]

    def _fused_cpu_fast(self, index: int, hyper: Hyper, lists: list[list[Tensor]]) -> bool:
        """The fused CPU kernel called directly for a group whose counters all agree (the usual case);
        False when the group needs the general fused path (mixed dtypes, counters that differ).

        Why: for a model of a hundred small tensors the per-step host work around the kernel (grouping by
        device and dtype, advancing a hundred counters, checking that they agree) costs as much as the
        kernel. Here the counters are views of one tensor (one ``add_`` advances them all) and the
        group's layout is checked once per parameter set. Same kernel, same scalars: same results.
        """
        params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps = lists
        cache = self.__dict__.setdefault("_step_flats", {})
        entry = cache.get(index)
        if entry is None or not _flat.same(entry[0], state_steps):
            dtype = params[0].dtype
            if dtype not in (torch.float32, torch.float64) or any(p.dtype != dtype for p in params):
                return False
            if any(p.device.type != "cpu" for p in params) or not _fused.cpu_kernel_available():
                return False
            counters = torch.stack(state_steps)
            if not bool(counters.eq(counters[0]).all()):
                return False
            views = list(counters.unbind(0))
            for p, v in zip(params, views, strict=True):
                self.state[p]["step"] = v
            entry = cache[index] = (views, counters)
        counters = entry[1]
        counters.add_(1.0)
        scalars, flags = _fused.kernel_scalars(counters[0].item(), hyper)
        _fused.run_cpu(params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, scalars=scalars, flags=flags)
        return True

    def _check_capture(self) -> None:
        """A step captured in a CUDA graph must be capturable: a host-side step count would be baked in."""
        capturing = torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
        if capturing and not all(group["capturable"] for group in self.param_groups):
            raise RuntimeError(
                "AdaBelief step() is being captured in a CUDA graph but capturable=False: "
                "construct it with capturable=True"
            )
        if capturing and any(
            isinstance(g["lr"], Tensor) and g["lr"].device.type == "cpu" for g in self.param_groups
        ):
            raise RuntimeError("a captured AdaBelief step needs its Tensor lr on the GPU, not the CPU")


_CONSTRUCTOR_DEFAULTS: dict[str, Any] = dict(
    amsgrad=False,
    weight_decouple=True,
    fixed_decay=False,
    rectify=True,
    degenerated_to_sgd=True,
    maximize=False,
    foreach=None,
    fused=None,
    capturable=False,
)


def _state_dtype(p: Tensor) -> torch.dtype:
    """Optimizer state dtype for a parameter: fp32 for fp16/bf16 (half-precision state loses the EMA)."""
    return torch.float32 if p.dtype in LOW_PRECISION else p.dtype


def _as_step_tensor(step: Any, device: torch.device | None = None) -> Tensor:
    """A step counter as a float32 tensor, on the CPU unless ``device`` (official checkpoints hold ints)."""
    if isinstance(step, Tensor):
        return step.detach().to(device=device or "cpu", dtype=torch.float32, copy=True).reshape(())
    return torch.tensor(float(step), dtype=torch.float32, device=device)


# --- functional API ---------------------------------------------------------------------------------------


def adabelief(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
    *,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    cache: dict | None = None,
) -> None:
    """Functional AdaBelief: update ``params`` and the state lists in place, on :func:`choose_path`'s path.

    ``state_steps`` are float32 tensors (on the CPU, or on the parameters' device when ``capturable``); each
    is incremented by one. ``hyper``: the hyperparameters (:class:`Hyper`). ``foreach=None, fused=None``
    picks :func:`default_path` for the parameters' device. ``cache``: a dict the caller keeps across steps
    (the fused CUDA path caches its address tables there). ``capturable``: the step-dependent scalars are
    computed on the device (foreach ops, or the Triton kernel on CUDA); on the CPU the fused kernel reads
    the CPU counters directly (no device to sync).
    """
    if not params:
        return
    path = choose_path(params[0].device, foreach=foreach, fused=fused, capturable=capturable)
    if path not in _DEVICE_SCALAR_PATHS:
        hyper = hyper.on_host()
    _run_path(path, params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps, hyper, cache)


def _run_path(
    path: str,
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
    cache: dict | None,
) -> None:
    """Run the named path (``hyper`` with a host lr unless the path computes its scalars on the device)."""
    if not params:
        return
    lists = (params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps)
    if path == "fused":
        _fused.fused_adabelief(*lists, hyper, cache=cache)
    elif path == "capturable-fused":
        _fused.fused_adabelief(*lists, hyper, capturable=True, cache=cache)
    elif path == "capturable":
        _capturable_adabelief(*lists, hyper)
    elif path == "foreach":
        _multi_tensor_adabelief(*lists, hyper)
    elif path == "single":
        _single_tensor_adabelief(*lists, hyper)
    else:
        raise ValueError(f"unknown AdaBelief path {path!r}")


def _single_tensor_adabelief(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
) -> None:
    """The reference path: the official update, op for op, one parameter at a time (``hyper``: host lr)."""
    lr: float = hyper.lr  # type: ignore[assignment]
    beta1, beta2, eps, weight_decay = hyper.beta1, hyper.beta2, hyper.eps, hyper.weight_decay
    for i, param in enumerate(params):
        grad = -grads[i] if hyper.maximize else grads[i]
        exp_avg, exp_avg_var = exp_avgs[i], exp_avg_vars[i]
        step_t = state_steps[i]
        step_t += 1
        step = step_value(step_t)

        low = param.dtype in LOW_PRECISION
        p = param.float() if low else param
        if grad.dtype != p.dtype:
            grad = grad.to(p.dtype)

        # 1. weight decay: decoupled (p *= 1 - lr*wd, or 1 - wd when fixed) or L2 (out of place on grad)
        if hyper.weight_decouple:
            if weight_decay != 0:
                p.mul_(1.0 - (weight_decay if hyper.fixed_decay else lr * weight_decay))
        elif weight_decay != 0:
            grad = grad.add(p, alpha=weight_decay)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step

        # 2. moments: the second is the EMA of the squared residual g - m, with eps added into the state
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        grad_residual = grad - exp_avg
        exp_avg_var.mul_(beta2).addcmul_(grad_residual, grad_residual, value=1 - beta2)
        exp_avg_var.add_(eps)
        if hyper.amsgrad:
            torch.maximum(max_exp_avg_vars[i], exp_avg_var, out=max_exp_avg_vars[i])

        # 3. update
        if not hyper.rectify:
            var = max_exp_avg_vars[i] if hyper.amsgrad else exp_avg_var
            denom = (var.sqrt() / math.sqrt(bias_correction2)).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
        else:
            # the official rectified update normalises by exp_avg_var (not the amsgrad max), as here
            kind, step_size = _math.rectification(step, beta1, beta2, hyper.degenerated_to_sgd)
            if kind == "adaptive":
                denom = exp_avg_var.sqrt().add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size * lr)
            elif kind == "sgd":
                p.add_(exp_avg, alpha=-step_size * lr)

        if low:
            param.copy_(p)


def _multi_tensor_adabelief(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
) -> None:
    """The foreach path: the reference ops as ``torch._foreach_*`` calls per (device, dtype) group."""
    if not params:
        return
    amsgrad = hyper.amsgrad
    lists: list[list[Tensor]] = [params, grads, exp_avgs, exp_avg_vars]
    if amsgrad:
        lists.append(max_exp_avg_vars)
    lists.append(state_steps)
    grouped = Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
    for device_lists, _ in grouped.values():
        d_lists = [*device_lists[:4], device_lists[4] if amsgrad else []]
        d_steps = device_lists[-1]
        torch._foreach_add_(d_steps, torch.tensor(1.0), alpha=1.0)
        # parameters whose step counters differ (e.g. added to the group later) take different scalars
        by_step = steps_by_value(d_steps)
        for step, idx in by_step.items():
            sub = d_lists
            if len(idx) != len(d_steps):
                sub = [[lst[j] for j in idx] if lst else [] for lst in d_lists]
            if sub[0][0].device.type == "cpu":
                # each of n threads works on 1/n of every tensor: the per-thread working set stays the same
                pieces = _cpu_chunks(sub, _CPU_CHUNK * max(1, torch.get_num_threads()))
            else:
                pieces = [sub]
            for piece in pieces:
                foreach_update(*piece, step=step, hyper=hyper)


# On CPU a foreach op is a loop over its tensors, so running each op over a whole model streams every tensor
# from DRAM once per op (about ten times per step). Cutting the lists into chunks of about this many elements
# (flat views of large tensors, runs of small ones) keeps a chunk's working set (p, g, m, s and two
# temporaries: 6 MB) in the last-level cache across the ops. Measured on resnet18 shapes, 1 thread:
# unchunked 205 ms, 16K 160 ms (Python overhead per call dominates), 64K 90 ms, 256K 74 ms, 1M 82 ms.
# With n threads the chunk is n times larger: the same work per thread, and n times fewer parallel regions
# (which cost the most when the cores are shared with other jobs).
_CPU_CHUNK = 1 << 18


def _cpu_chunks(lists: list[list[Tensor]], chunk: int) -> list[list[list[Tensor]]]:
    """Cut parallel tensor lists (empty lists allowed) into chunks of about ``chunk`` elements each."""
    live = [k for k, lst in enumerate(lists) if lst]
    chunks: list[list[list[Tensor]]] = []
    cur: list[list[Tensor]] = [[] for _ in lists]
    total = 0

    def flush() -> None:
        nonlocal cur, total
        if total:
            chunks.append(cur)
        cur, total = [[] for _ in lists], 0

    for i, t in enumerate(lists[0]):
        numel = t.numel()
        if numel > chunk and all(lists[k][i].is_contiguous() for k in live):
            flats = [lists[k][i].view(-1) for k in live]
            start = 0
            while numel - start >= chunk:
                piece: list[list[Tensor]] = [[] for _ in lists]
                for k, flat in zip(live, flats, strict=True):
                    piece[k].append(flat[start : start + chunk])
                chunks.append(piece)
                start += chunk
            if start == numel:
                continue
            for k, flat in zip(live, flats, strict=True):
                cur[k].append(flat[start:])
            total += numel - start
        else:
            for k in live:
                cur[k].append(lists[k][i])
            total += numel
        if total >= chunk:
            flush()
    flush()
    return chunks


def _capturable_adabelief(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
) -> None:
    """The capturable foreach path: device step counters, device scalars, no host read of either.

    Every parameter keeps its own step count (one ``(4, n)`` scalar tensor per (device, dtype) group holds
    each tensor's scalars), so parameters that joined later still get their own bias corrections.
    """
    lists: list[list[Tensor]] = [params, grads, exp_avgs, exp_avg_vars]
    if hyper.amsgrad:
        lists.append(max_exp_avg_vars)
    lists.append(state_steps)
    grouped = Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
    for device_lists, _ in grouped.values():
        d_params = device_lists[0]
        d_steps = device_lists[-1]
        if any(st.device != d_params[0].device for st in d_steps):
            raise RuntimeError("capturable=True needs every step counter on its parameter's device")
        torch._foreach_add_(d_steps, 1.0)
        work_dtype = torch.float32 if d_params[0].dtype in LOW_PRECISION else d_params[0].dtype
        coefs = device_coefficients(d_steps, hyper, dtype=work_dtype)
        d_max = device_lists[4] if hyper.amsgrad else []
        foreach_update_capturable(*device_lists[:4], d_max, coefs=coefs, hyper=hyper)
