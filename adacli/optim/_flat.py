"""The foreach path's small-tensor bucket on the CPU: a model's many small tensors updated as one flat array.

Why: on the CPU a foreach op is a C++ loop that dispatches one kernel per tensor (about 3 us each), so for a
model of 100 small tensors the ten ops of a step cost ~3 ms of dispatch and little arithmetic (measured on
test_convnext's 101 tensors / 0.27 M parameters: two foreach ops 0.79 ms, the same two ops on one flat
array 0.22 ms). So the optimizer keeps the moments of every small CPU parameter of a group in one flat
buffer per state (the per-parameter state tensors are views into it, so ``state_dict`` and checkpoints
look as before; ``torch.save`` stores the shared buffer once), gathers the gradients with one ``cat``, runs
the official ops on the flat arrays, and applies the result to the parameters with one foreach op.

The arithmetic is the reference path's, op for op and in the same order (elementwise ops do not depend on
how the elements are laid out), so results equal the per-tensor foreach path.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from adacli.optim import _math

#: tensors up to this many elements go into the bucket (larger ones: the chunked foreach path, where
#: dispatch is negligible next to the arithmetic; the same size as its chunks)
FLAT_MAX_NUMEL = 1 << 18
#: elements per slice of the flat ops (whole parameters, so a slice may be larger): its arrays (p, g, m,
#: s, r, denom: 256 KB each) stay in a core's L2 cache
SLICE = 1 << 16
#: fewer small tensors than this: the per-tensor path is as fast
FLAT_MIN_TENSORS = 8


def same(a: list[Tensor], b: list[Tensor]) -> bool:
    """The same tensor objects in the same order (identity: no data is read)."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


@dataclass
class Bucket:
    """One group's small tensors: the members and the flat state their per-parameter state views.

    ``step`` is bucketed too (0-dim views of one counter array), so one ``add_`` advances every member
    and all members share one step count by construction.
    """

    all_params: list[Tensor]  # the group's parameters with gradients when the bucket was built
    idx: list[int]  # which of them are members
    rest: list[int]  # which are not (the regular paths update them)
    params: list[Tensor]
    views: dict[str, list[Tensor]]  # state key -> per-parameter views into flats[key]
    flats: dict[str, Tensor]
    slices: list[tuple[int, int, int, int, int | None]]  # see _slices
    scratch: dict[str, Tensor] = field(default_factory=dict)  # g, r, denom: reused every step
    scratch_views: list[Tensor] = field(default_factory=list)  # denom views, shaped like the params
    split: list[Tensor] = field(default_factory=list)  # parameters cut into pieces (must stay contiguous)

    def matches(self, states: dict[str, list[Tensor]]) -> bool:
        """Whether the bucket holds exactly the state keys of ``states`` (turning ``amsgrad`` on or off in
        the group adds or drops ``max_exp_avg_var``: the bucket is then rebuilt), the members still hold
        its state tensors (not replaced, e.g. by a load), and the parameters cut into pieces are still
        contiguous (walked as flat memory)."""
        if states.keys() != self.views.keys():
            return False
        if not all(p.is_contiguous() for p in self.split):
            return False
        return all(same(states[k], self.views[k]) for k in self.views)


def select(params: list[Tensor]) -> list[int]:
    """The members of a bucket: small fp32 CPU parameters (none when there are too few to pay)."""
    idx = [
        i
        for i, p in enumerate(params)
        if p.dtype == torch.float32 and p.device.type == "cpu" and p.numel() <= FLAT_MAX_NUMEL
    ]
    return idx if len(idx) >= FLAT_MIN_TENSORS else []


def build(
    all_params: list[Tensor], idx: list[int], state: dict[Tensor, dict[str, Tensor]], keys: tuple[str, ...]
) -> Bucket:
    """Move the state ``keys`` (and ``step``) of the members into flat buffers (values copied); the state
    then holds views into them."""
    params = [all_params[i] for i in idx]
    sizes = [p.numel() for p in params]
    shapes = [p.shape for p in params]
    views: dict[str, list[Tensor]] = {}
    flats: dict[str, Tensor] = {}
    for key in (*keys, "step"):
        flat = torch.cat([state[p][key].reshape(-1) for p in params])
        flats[key] = flat
        if key == "step":
            views[key] = list(flat.unbind(0))
        else:
            views[key] = [v.view(s) for v, s in zip(flat.split(sizes), shapes, strict=True)]
        for p, v in zip(params, views[key], strict=True):
            state[p][key] = v
    first = flats[keys[0]]
    scratch = {name: torch.empty_like(first) for name in ("g", "r", "denom")}
    denom_views = [v.view(s) for v, s in zip(scratch["denom"].split(sizes), shapes, strict=True)]
    members = set(idx)
    rest = [i for i in range(len(all_params)) if i not in members]
    splittable = [p.is_contiguous() for p in params]
    bucket = Bucket(list(all_params), idx, rest, params, views, flats, _slices(sizes, splittable))
    bucket.scratch, bucket.scratch_views = scratch, denom_views
    bucket.split = [p for p, n, ok in zip(params, sizes, splittable, strict=True) if ok and n > SLICE]
    return bucket


def _slices(sizes: list[int], splittable: list[bool]) -> list[tuple[int, int, int, int, int | None]]:
    """The work items: ``(start, end, first param, end param, None)`` for a run of whole parameters of
    about ``SLICE`` elements, ``(start, end, i, i + 1, offset)`` for a piece of a larger (contiguous)
    parameter ``i`` starting at element ``offset`` of it."""
    out: list[tuple[int, int, int, int, int | None]] = []
    start = first = offset = 0
    for i, n in enumerate(sizes):
        if n > SLICE and splittable[i]:
            if offset > start:
                out.append((start, offset, first, i, None))
            out += [(offset + k, offset + min(n, k + SLICE), i, i + 1, k) for k in range(0, n, SLICE)]
            offset += n
            start, first = offset, i + 1
            continue
        offset += n
        if offset - start >= SLICE:
            out.append((start, offset, first, i + 1, None))
            start, first = offset, i + 1
    if offset > start:
        out.append((start, offset, first, len(sizes), None))
    return out


def update(b: Bucket, grads: list[Tensor], *, step: float, hyper: _math.Hyper) -> None:
    """One step of the bucket's parameters: the reference ops of ``_math.foreach_update`` on flat arrays.

    The work goes slice by slice (runs of whole parameters of about ``SLICE`` elements): gather the
    slice's gradients, update its moments, compute its denominator and update its parameters while the
    slice's arrays are still in the core's cache, so each array crosses the memory bus once per step.
    ``hyper`` has a host lr. (One loop, no helper calls per slice: on small models a step is mostly this
    Python code.)
    """
    h, scalars = hyper, _math.step_scalars(step, hyper)
    kind, value = scalars.kind, scalars.value
    decay = h.decay_factor(h.lr) if h.weight_decouple else 1.0  # type: ignore[arg-type]
    copy_grad = h.maximize or (h.weight_decay != 0 and not h.weight_decouple)  # the step modifies g
    m_all, s_all = b.flats["exp_avg"], b.flats["exp_avg_var"]
    smax_all = b.flats.get("max_exp_avg_var") if h.amsgrad else None
    g_all, r_all, d_all = b.scratch["g"], b.scratch["r"], b.scratch["denom"]
    for a, e, i, j, off in b.slices:
        if off is None:  # a run of whole parameters
            params, m_views, d_views = b.params[i:j], b.views["exp_avg"][i:j], b.scratch_views[i:j]
            grad = grads[i]
            if j == i + 1 and not h.maximize and h.weight_decay == 0 and grad.dtype == g_all.dtype:
                g = grad.reshape(-1)  # a parameter alone in its slice: read its gradient in place
            else:
                g = g_all[a:e]
                torch.cat([t.reshape(-1) for t in grads[i:j]], out=g)
        else:  # a piece of one large parameter: flat views of it, its gradient and its state
            params = [b.params[i].view(-1)[off : off + e - a]]
            m_views, d_views = [m_all[a:e]], [d_all[a:e]]
            g = grads[i].reshape(-1)[off : off + e - a]
            if copy_grad or g.dtype != g_all.dtype:
                g = g_all[a:e].copy_(g)  # our copy, modified below
        if h.maximize:
            g.neg_()
        if h.weight_decay != 0:
            if h.weight_decouple:
                torch._foreach_mul_(params, decay)
            else:
                g.add_(torch.cat([p.reshape(-1) for p in params]), alpha=h.weight_decay)
        m, v, r, d = m_all[a:e], s_all[a:e], r_all[a:e], d_all[a:e]
        m.mul_(h.beta1).add_(g, alpha=1 - h.beta1)
        torch.sub(g, m, out=r)
        v.mul_(h.beta2).addcmul_(r, r, value=1 - h.beta2).add_(h.eps)
        vmax = v
        if smax_all is not None:
            vmax = smax_all[a:e]
            torch.maximum(vmax, v, out=vmax)
        if kind == "sgd":  # torch's add_ fuses the multiply-add: left to add_
            torch._foreach_add_(params, m_views, alpha=value)
        elif kind != "none":
            if kind == "adaptive":  # rectified: sqrt(s) + eps
                torch.sqrt(v, out=d)
            else:  # unrectified: sqrt(s or max s) / sqrt(bc2) + eps
                torch.sqrt(vmax, out=d)
                d.div_(scalars.sqrt_bc2)
            d.add_(h.eps)
            torch._foreach_addcdiv_(params, m_views, d_views, value=value)
