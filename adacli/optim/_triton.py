"""The fused AdaBelief kernel for CUDA, in Triton: one launch per (device, dtype) group, one pass over memory.

Why one launch over an address table: a launch per tensor costs tens of microseconds of Python and driver
time, which for a model of 150+ tensors is more than the whole update. The host builds one table with a
record per program (the addresses of its block in p, g, m, s and max-s, its element count and its tensor's
index), copies it to the GPU once from pinned memory, and keeps it in a cache keyed on every tensor's data
pointer, shape and dtype: while the parameters, gradients and state stay where they are (always, inside a
CUDA graph; in practice, with torch's caching allocator) no step copies anything to the device. Each
program reads its own record (O(1), one cache line) and updates one block of elements in fp32 (state is
fp32; fp16/bf16 parameters and gradients are converted on load and rounded once on store).

Full blocks take unmasked loads and stores; only each tensor's last block is masked. When every address in
the table is 16-byte aligned (the caching allocator's blocks are; a view into a flat buffer may not be)
the addresses are marked ``tl.multiple_of(.., 16)`` so that full blocks use 128-bit vector accesses.
The block size and warp count are fixed constants (no autotuning: an autotuner benchmarks by running the
kernel repeatedly, which for an in-place update would advance the optimizer state on every trial run).

``capturable``: the step-dependent scalars come from a device tensor (``adacli.optim._math.
device_coefficients``) indexed by the record's tensor, so nothing on the host depends on the step.

Arithmetic: IEEE division and square root (``div_rn``, ``sqrt_rn``) in the official order of operations, so
the result matches torch's elementwise kernels to rounding.

The kernel also runs on CPU tensors under ``TRITON_INTERPRET=1`` (how the tests check it without a GPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["BLOCK", "NUM_WARPS", "TableCache", "run_triton"]

BLOCK = 2048
NUM_WARPS = 4  # 128 threads x 16 elements: four 128-bit accesses per thread and array
RECORD = 8  # int64 fields per program: p, g, m, s, smax addresses, elements, tensor index, (padding)

_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


@triton.jit
def _ptr(rec, k, DTYPE: tl.constexpr, ALIGNED: tl.constexpr):
    ptr = tl.load(rec + k).to(tl.pointer_type(DTYPE))
    if ALIGNED:
        ptr = tl.multiple_of(ptr, 16)
    return ptr


@triton.jit
def _ld(ptr, offs, n, other, MASKED: tl.constexpr):
    if MASKED:  # noqa: SIM108 (a constexpr branch, compiled away)
        x = tl.load(ptr + offs, mask=offs < n, other=other)
    else:
        x = tl.load(ptr + offs)
    return x


@triton.jit
def _st(ptr, offs, n, x, MASKED: tl.constexpr):
    if MASKED:
        tl.store(ptr + offs, x, mask=offs < n)
    else:
        tl.store(ptr + offs, x)


@triton.jit
def _round(p, P_DTYPE: tl.constexpr):
    if P_DTYPE == tl.bfloat16:  # noqa: SIM300
        # round to nearest even explicitly (torch's rounding), also under TRITON_INTERPRET, whose own cast
        # truncates; NaN stays NaN
        bits = p.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        out = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        out = tl.where(p != p, p.to(tl.bfloat16), out)
    else:
        out = p.to(P_DTYPE)
    return out


@triton.jit
def _block(
    rec, n, coef_ptr, n_tensors, decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size,
    P_DTYPE: tl.constexpr, DO_DECAY: tl.constexpr, DO_L2: tl.constexpr, MAXIMIZE: tl.constexpr,
    AMS: tl.constexpr, MODE: tl.constexpr, CAPTURABLE: tl.constexpr, SGD_TERM: tl.constexpr,
    ALIGNED: tl.constexpr, MASKED: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """One block: the official update (modes: 0 unrectified, 1 adaptive, 2 SGD, 3 none, 4 device-chosen)."""
    p_ptr = _ptr(rec, 0, P_DTYPE, ALIGNED)
    g_ptr = _ptr(rec, 1, P_DTYPE, ALIGNED)
    m_ptr = _ptr(rec, 2, tl.float32, ALIGNED)
    s_ptr = _ptr(rec, 3, tl.float32, ALIGNED)
    offs = tl.arange(0, BLOCK_SIZE)
    if CAPTURABLE:
        tid = tl.load(rec + 6)
        decay = tl.load(coef_ptr + tid)
        step_size = tl.load(coef_ptr + n_tensors + tid)
        sgd_size = tl.load(coef_ptr + 2 * n_tensors + tid)
        sqrt_bc2 = tl.load(coef_ptr + 3 * n_tensors + tid)

    p = _ld(p_ptr, offs, n, 0.0, MASKED).to(tl.float32)
    g = _ld(g_ptr, offs, n, 0.0, MASKED).to(tl.float32)
    m = _ld(m_ptr, offs, n, 0.0, MASKED)
    s = _ld(s_ptr, offs, n, 1.0, MASKED)
    if MAXIMIZE:
        g = -g
    if DO_DECAY:
        p = p * decay
    if DO_L2:
        g = g + l2 * p
    m = m * beta1
    m = m + omb1 * g
    r = g - m
    s = s * beta2
    s = s + omb2 * r * r
    s = s + eps
    _st(m_ptr, offs, n, m, MASKED)
    _st(s_ptr, offs, n, s, MASKED)
    sx = s
    if AMS:
        smax_ptr = _ptr(rec, 4, tl.float32, ALIGNED)
        sx = tl.maximum(_ld(smax_ptr, offs, n, 1.0, MASKED), s)
        _st(smax_ptr, offs, n, sx, MASKED)
    if MODE == 0:
        denom = tl.div_rn(tl.sqrt_rn(sx), sqrt_bc2) + eps
        p = p + step_size * tl.div_rn(m, denom)
    elif MODE == 1:
        denom = tl.sqrt_rn(s) + eps
        p = p + step_size * tl.div_rn(m, denom)
    elif MODE == 2:
        p = p + step_size * m
    elif MODE == 4:
        # capturable rectified update: step_size is 0 on the steps that skip the adaptive update,
        # sgd_size is 0 except on the SGD-fallback steps (adding 0 leaves p unchanged)
        denom = tl.sqrt_rn(s) + eps
        p = p + step_size * tl.div_rn(m, denom)
        if SGD_TERM:
            p = p + sgd_size * m
    _st(p_ptr, offs, n, _round(p, P_DTYPE), MASKED)


@triton.jit
def _adabelief_kernel(
    table_ptr, coef_ptr, n_tensors, decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size,
    P_DTYPE: tl.constexpr, DO_DECAY: tl.constexpr, DO_L2: tl.constexpr, MAXIMIZE: tl.constexpr,
    AMS: tl.constexpr, MODE: tl.constexpr, CAPTURABLE: tl.constexpr, SGD_TERM: tl.constexpr,
    ALIGNED: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    rec = table_ptr + tl.program_id(0).to(tl.int64) * 8
    n = tl.load(rec + 5)
    if n == BLOCK_SIZE:
        _block(
            rec, n, coef_ptr, n_tensors, decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size,
            P_DTYPE, DO_DECAY, DO_L2, MAXIMIZE, AMS, MODE, CAPTURABLE, SGD_TERM, ALIGNED, False, BLOCK_SIZE,
        )  # fmt: skip
    else:
        _block(
            rec, n, coef_ptr, n_tensors, decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size,
            P_DTYPE, DO_DECAY, DO_L2, MAXIMIZE, AMS, MODE, CAPTURABLE, SGD_TERM, ALIGNED, True, BLOCK_SIZE,
        )  # fmt: skip


class TableCache:
    """Device address tables of one optimizer, keyed on data pointers, shapes and dtypes (a few entries).

    Owned by the optimizer (not global) so that a table a captured CUDA graph reads stays alive as long as
    that optimizer does. ``builds`` counts rebuilds (the tests check hits and rebuilds with it).
    """

    MAX_ENTRIES = 32  # one per (group, device, dtype) in use; more only while addresses keep changing

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[Tensor, int, bool, Tensor]] = {}
        self.builds = 0

    def get(self, lists: list[list[Tensor]]) -> tuple[Tensor, int, bool]:
        """``(device table, number of programs, all addresses 16-byte aligned)`` for these tensors."""
        params = lists[0]
        key = (
            params[0].device,
            params[0].dtype,
            tuple(t.data_ptr() for lst in lists for t in lst),
            tuple(t.shape for t in params),
        )
        hit = self.entries.get(key)
        if hit is None:
            if len(self.entries) >= self.MAX_ENTRIES:
                self.entries.pop(next(iter(self.entries)))
            hit = self.entries[key] = _build_table(lists)
            self.builds += 1
        return hit[0], hit[1], hit[2]


def _build_table(lists: list[list[Tensor]]) -> tuple[Tensor, int, bool, Tensor]:
    """One record per program; copied once from pinned memory (the pinned copy is kept alive with it)."""
    params = lists[0]
    columns = [lists[k] if k < len(lists) and lists[k] else None for k in range(5)]
    rows: list[int] = []
    for i, p in enumerate(params):
        numel = p.numel()
        bases = [(c[i].data_ptr(), c[i].element_size()) if c is not None else (0, 0) for c in columns]
        for start in range(0, numel, BLOCK):
            rows.extend(base + start * size for base, size in bases)
            rows.extend((min(BLOCK, numel - start), i, 0))
    aligned = all(a % 16 == 0 for j, a in enumerate(rows) if j % RECORD < 5)
    device = params[0].device
    host = torch.tensor(rows, dtype=torch.int64, pin_memory=device.type == "cuda")
    return host.to(device, non_blocking=True), len(rows) // RECORD, aligned, host


_DEFAULT_CACHE = TableCache()  # for direct functional calls without an optimizer's cache


def run_triton(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    *,
    scalars: list[float],
    flags: int,
    coefs: Tensor | None = None,
    cache: TableCache | None = None,
) -> None:
    """Launch the kernel once for same-device, same-dtype tensors (fp32/fp16/bf16 params, fp32 state).

    ``coefs``: the ``(4, len(params))`` fp32 device scalars of a capturable step (then the step-dependent
    entries of ``scalars`` are ignored and the rectified modes are decided on the device).
    """
    dtype = params[0].dtype
    if dtype not in _TL_DTYPES:
        raise TypeError(f"the Triton AdaBelief kernel supports fp32/fp16/bf16 parameters, not {dtype}")
    grads = [g if g.dtype == dtype else g.to(dtype) for g in grads]
    tensors = [params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars]
    table, n_blocks, aligned = (cache or _DEFAULT_CACHE).get(tensors)
    decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size = scalars
    mode = (flags >> 4) & 3
    capturable = coefs is not None
    if capturable:
        mode = 0 if mode == 0 else 4
    _adabelief_kernel[(n_blocks,)](
        table,
        coefs if capturable else table,
        len(params),
        decay,
        l2,
        beta1,
        omb1,
        beta2,
        omb2,
        eps,
        sqrt_bc2,
        step_size,
        P_DTYPE=_TL_DTYPES[dtype],
        DO_DECAY=bool(flags & 1),
        DO_L2=bool(flags & 2),
        MAXIMIZE=bool(flags & 4),
        AMS=bool(flags & 8),
        MODE=mode,
        CAPTURABLE=capturable,
        SGD_TERM=bool(flags & 64),
        ALIGNED=aligned,
        BLOCK_SIZE=BLOCK,
        num_warps=NUM_WARPS,
    )
