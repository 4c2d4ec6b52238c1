"""The CUDA fused kernel run on CPU by Triton's interpreter (TRITON_INTERPRET=1), against the reference.

The interpreter must be enabled before triton is imported, so the check runs in a subprocess. It covers the
address-table launch (several tensors, full unmasked blocks and ragged masked last blocks), every update
mode, amsgrad, both decays, maximize, and fp32/fp16/bf16 parameters with fp32 state; the capturable
variant (device step scalars) on every case; and the table cache (a hit, a rebuild on a changed pointer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

SCRIPT = textwrap.dedent(
    """
    import dataclasses, itertools, torch
    from adacli.optim import _fused
    from adacli.optim._math import Hyper, device_coefficients
    from adacli.optim._triton import BLOCK, TableCache, run_triton
    from adacli.optim.adabelief import _single_tensor_adabelief

    torch.manual_seed(0)
    shapes = [(BLOCK + 7,), (17, 5), (3,)]
    worst = 0.0
    cases = 0
    modes = set()
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for ams, rect, sgd, dec, wd, maxi, step in itertools.product(
            (False, True), (False, True), (False, True), (False, True), (0.0, 1e-2), (False, True), (2.0, 9.0)
        ):
            if (dtype != torch.float32 or not rect) and (sgd or maxi or step == 2.0):
                continue  # the full grid in fp32 for the rectified modes; the rest thinned
            P = [torch.randn(s).to(dtype) for s in shapes]
            G = [(torch.randn(s) * 1e-2).to(dtype) for s in shapes]
            M = [torch.randn(s) * 1e-2 for s in shapes]
            V = [torch.rand(s) * 1e-4 for s in shapes]
            VM = [v * 1.5 for v in V] if ams else []
            ref = [[t.clone() for t in lst] for lst in (P, M, V, VM)]
            cap = [[t.clone() for t in lst] for lst in (P, M, V, VM)]
            hyper = Hyper(amsgrad=ams, beta1=0.9, beta2=0.999, lr=1e-2, weight_decay=wd, eps=1e-16,
                          weight_decouple=dec, fixed_decay=False, rectify=rect, degenerated_to_sgd=sgd,
                          maximize=maxi)
            scalars, flags = _fused.kernel_scalars(step, hyper)
            modes.add((flags >> 4) & 3)
            run_triton(P, G, M, V, VM, scalars=scalars, flags=flags)
            # the capturable variant: the step and lr as tensors, the scalars computed by tensor ops
            coefs = device_coefficients(
                [torch.tensor(step) for _ in shapes], dataclasses.replace(hyper, lr=torch.tensor(1e-2)),
                dtype=torch.float32)
            run_triton(cap[0], G, *cap[1:], scalars=scalars, flags=flags, coefs=coefs, cache=TableCache())
            steps = [torch.tensor(step - 1) for _ in shapes]
            _single_tensor_adabelief(ref[0], G, ref[1], ref[2], ref[3], steps, hyper)
            for ours, theirs in [*zip((P, M, V, VM), ref), *zip(cap, ref)]:
                for a, b in zip(ours, theirs):
                    assert a.dtype == b.dtype
                    err = ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()
                    worst = max(worst, err)
            cases += 1
    assert modes == {0, 1, 2, 3}, modes

    # channels_last conv weights (a channels_last model): dense, one shared layout, walked as flat memory
    cl = torch.channels_last
    P = [torch.randn(8, 4, 3, 3).to(memory_format=cl)]
    G, M, V = [torch.randn_like(P[0]) * 1e-2], [torch.zeros_like(P[0])], [torch.zeros_like(P[0])]
    ref = [[t.clone() for t in lst] for lst in (P, M, V)]
    hyper = Hyper(amsgrad=False, beta1=0.9, beta2=0.999, lr=1e-2, weight_decay=1e-2, eps=1e-16,
                  weight_decouple=True, fixed_decay=False, rectify=True, degenerated_to_sgd=True,
                  maximize=False)
    assert _fused.flat_layout([P[0], G[0], M[0], V[0]]) and not P[0].is_contiguous()
    scalars, flags = _fused.kernel_scalars(1.0, hyper)
    run_triton(P, G, M, V, [], scalars=scalars, flags=flags)
    _single_tensor_adabelief(ref[0], G, ref[1], ref[2], [], [torch.tensor(0.0)], hyper)
    for a, b in zip((P[0], M[0], V[0]), (r[0] for r in ref)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
    print("channels_last ok")

    # the address table: built once, reused while pointers, shapes and dtypes stay; rebuilt on a change
    cache = TableCache()
    P = [torch.randn(s) for s in shapes]
    G, M, V = [torch.randn(s) * 1e-2 for s in shapes], [torch.zeros(s) for s in shapes], [
        torch.zeros(s) for s in shapes]
    for _ in range(3):
        run_triton(P, G, M, V, [], scalars=scalars, flags=flags, cache=cache)
    assert cache.builds == 1, cache.builds
    table, n_blocks, aligned = cache.get([P, G, M, V, []])
    assert n_blocks == 2 + 1 + 1 and table.shape == (8 * n_blocks,) and aligned
    rec = table.view(n_blocks, 8).tolist()
    assert [r[5] for r in rec] == [BLOCK, 7, 85, 3] and [r[6] for r in rec] == [0, 0, 1, 2]
    assert rec[1][0] == P[0].data_ptr() + 4 * BLOCK and rec[1][2] == M[0].data_ptr() + 4 * BLOCK
    G[1] = torch.randn(shapes[1]) * 1e-2  # a new gradient tensor: new address
    run_triton(P, G, M, V, [], scalars=scalars, flags=flags, cache=cache)
    assert cache.builds == 2
    # a view at an odd offset: the table still works, unaligned (no 16-byte hints)
    base = torch.randn(BLOCK + 8)
    Pu = [base[1 : BLOCK + 1]]
    ref_p = Pu[0].clone()
    Gu, Mu, Vu = [torch.randn(BLOCK) * 1e-2], [torch.zeros(BLOCK)], [torch.zeros(BLOCK)]
    run_triton(Pu, Gu, Mu, Vu, [], scalars=scalars, flags=flags, cache=cache)
    assert cache.builds == 3 and not cache.get([Pu, Gu, Mu, Vu, []])[2]
    _single_tensor_adabelief([ref_p], Gu, [torch.zeros(BLOCK)], [torch.zeros(BLOCK)], [],
                             [torch.tensor(0.0)], hyper)
    torch.testing.assert_close(Pu[0], ref_p, rtol=1e-6, atol=1e-12)
    print("table cache ok")
    print(f"cases={cases} worst={worst:.3g}")
    assert worst <= 1e-6, worst
    """
)


def test_triton_kernel_under_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "cases=" in proc.stdout and "channels_last ok" in proc.stdout and "table cache ok" in proc.stdout


def _compile_for_hopper(**constexprs) -> str:
    """PTX of the kernel compiled ahead of time for sm_90 (Triton's bundled ptxas; no GPU needed)."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from adacli.optim._triton import BLOCK, NUM_WARPS, _adabelief_kernel

    sig = {"table_ptr": "*i64", "coef_ptr": "*fp32", "n_tensors": "i32"}
    sig |= {k: "fp32" for k in ("decay", "l2", "beta1", "omb1", "beta2", "omb2", "eps", "sqrt_bc2")}
    sig["step_size"] = "fp32"
    cons = dict(P_DTYPE=tl.float32, DO_DECAY=True, DO_L2=False, MAXIMIZE=False, AMS=True, MODE=1)
    cons |= dict(CAPTURABLE=False, SGD_TERM=False, ALIGNED=True, BLOCK_SIZE=BLOCK) | constexprs
    sig |= {k: "constexpr" for k in cons}
    try:
        compiled = triton.compile(
            ASTSource(_adabelief_kernel, sig, cons),
            target=GPUTarget("cuda", 90, 32),
            options={"num_warps": NUM_WARPS},
        )
    except Exception as e:  # no CUDA backend in this Triton build
        pytest.skip(f"cannot compile for sm_90 here: {e}")
    return compiled.asm["ptx"]


@pytest.mark.parametrize("capturable", [False, True])
def test_kernel_compiles_for_sm90_with_vector_accesses(capturable):
    """The CUDA build of the kernel (checked without a GPU): aligned full blocks use 128-bit accesses,
    and without the alignment hint they do not (so the hint is what vectorises them)."""
    mode = dict(MODE=4, CAPTURABLE=True, SGD_TERM=True) if capturable else {}
    aligned = _compile_for_hopper(**mode)
    assert "ld.global.v4.b32" in aligned and "st.global.v4.b32" in aligned
    unaligned = _compile_for_hopper(ALIGNED=False, **mode)
    assert "ld.global.v4" not in unaligned
