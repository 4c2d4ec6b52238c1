"""The fused AdaBelief kernel for CUDA, in Triton: one launch per (device, dtype) group, one pass over memory.

Why one launch over an address table: a launch per tensor costs tens of microseconds of Python and driver
time, which for a model of 150+ tensors is more than the whole update. The host writes every tensor's data
pointers and sizes, plus the (tensor, offset) of every block, into one int64 table; it is copied to the GPU
asynchronously from pinned memory (no host synchronisation) and reused while the addresses do not change.
Each program loads its tensor's pointers from the table and updates one block of elements, in fp32 (state is
fp32; fp16/bf16 parameters and gradients are converted on load and rounded once on store).

Arithmetic: IEEE division and square root (``div_rn``, ``sqrt_rn``) in the official order of operations, so
the result matches torch's elementwise kernels to rounding.

The kernel also runs on CPU tensors under ``TRITON_INTERPRET=1`` (how the tests check it without a GPU).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["BLOCK", "run_triton"]

BLOCK = 2048

_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


@triton.jit
def _adabelief_kernel(
    table_ptr,
    n_tensors,
    n_blocks,
    decay,
    l2,
    beta1,
    omb1,
    beta2,
    omb2,
    eps,
    sqrt_bc2,
    step_size,
    P_DTYPE: tl.constexpr,
    DO_DECAY: tl.constexpr,
    DO_L2: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    AMS: tl.constexpr,
    MODE: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    pid = tl.program_id(0)
    # table layout: [p | g | m | s | smax | numel] x n_tensors, then [tensor id | start] x n_blocks
    tid = tl.load(table_ptr + 6 * n_tensors + pid)
    start = tl.load(table_ptr + 6 * n_tensors + n_blocks + pid)
    numel = tl.load(table_ptr + 5 * n_tensors + tid)
    p_ptr = tl.load(table_ptr + tid).to(tl.pointer_type(P_DTYPE))
    g_ptr = tl.load(table_ptr + n_tensors + tid).to(tl.pointer_type(P_DTYPE))
    m_ptr = tl.load(table_ptr + 2 * n_tensors + tid).to(tl.pointer_type(tl.float32))
    s_ptr = tl.load(table_ptr + 3 * n_tensors + tid).to(tl.pointer_type(tl.float32))
    offs = start + tl.arange(0, BLOCK_SIZE)
    mask = offs < numel

    p = tl.load(p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    m = tl.load(m_ptr + offs, mask=mask, other=0.0)
    s = tl.load(s_ptr + offs, mask=mask, other=1.0)
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
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(s_ptr + offs, s, mask=mask)
    sx = s
    if AMS:
        smax_ptr = tl.load(table_ptr + 4 * n_tensors + tid).to(tl.pointer_type(tl.float32))
        smax = tl.load(smax_ptr + offs, mask=mask, other=1.0)
        sx = tl.maximum(smax, s)
        tl.store(smax_ptr + offs, sx, mask=mask)
    if MODE == 0:
        denom = tl.div_rn(tl.sqrt_rn(sx), sqrt_bc2) + eps
        p = p + step_size * tl.div_rn(m, denom)
    elif MODE == 1:
        denom = tl.sqrt_rn(s) + eps
        p = p + step_size * tl.div_rn(m, denom)
    elif MODE == 2:
        p = p + step_size * m
    if P_DTYPE == tl.bfloat16:  # noqa: SIM300
        # round to nearest even explicitly (torch's rounding), also under TRITON_INTERPRET, whose own cast
        # truncates; NaN stays NaN
        bits = p.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        out = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
        out = tl.where(p != p, p.to(tl.bfloat16), out)
        tl.store(p_ptr + offs, out, mask=mask)
    else:
        tl.store(p_ptr + offs, p.to(P_DTYPE), mask=mask)


# recently built tables, keyed by device, addresses and sizes: (device table, number of blocks)
_TABLES: dict[tuple, tuple[Tensor, int]] = {}
_MAX_TABLES = 16


def _table(lists: list[list[Tensor]], device: torch.device) -> tuple[Tensor, int]:
    """The device address table for these tensors (rebuilt only when an address or size changed)."""
    params = lists[0]
    n = len(params)
    ptrs = [t.data_ptr() for lst in lists for t in lst]
    numels = [t.numel() for t in params]
    key = (device, tuple(ptrs), tuple(numels))
    cached = _TABLES.get(key)
    if cached is not None:
        return cached
    block_tid: list[int] = []
    block_start: list[int] = []
    for i, numel in enumerate(numels):
        for start in range(0, numel, BLOCK):
            block_tid.append(i)
            block_start.append(start)
    smax = ptrs[4 * n : 5 * n] if len(lists) > 4 and lists[4] else [0] * n
    host = torch.tensor(
        ptrs[: 4 * n] + smax + numels + block_tid + block_start,
        dtype=torch.int64,
        pin_memory=device.type == "cuda",
    )
    table = host.to(device, non_blocking=True)
    if len(_TABLES) >= _MAX_TABLES:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[key] = (table, len(block_tid))
    return table, len(block_tid)


def run_triton(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    *,
    scalars: list[float],
    flags: int,
) -> None:
    """Launch the kernel once for same-device, same-dtype tensors (fp32/fp16/bf16 params, fp32 state)."""
    dtype = params[0].dtype
    if dtype not in _TL_DTYPES:
        raise TypeError(f"the Triton AdaBelief kernel supports fp32/fp16/bf16 parameters, not {dtype}")
    grads = [g if g.dtype == dtype else g.to(dtype) for g in grads]
    tensors = [params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars]
    device = params[0].device
    table, n_blocks = _table(tensors, device)
    decay, l2, beta1, omb1, beta2, omb2, eps, sqrt_bc2, step_size = scalars
    _adabelief_kernel[(n_blocks,)](
        table,
        len(params),
        n_blocks,
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
        MODE=(flags >> 4) & 3,
        BLOCK_SIZE=BLOCK,
    )
