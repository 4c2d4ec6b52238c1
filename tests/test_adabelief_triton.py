"""The CUDA fused kernel run on CPU by Triton's interpreter (TRITON_INTERPRET=1), against the reference.

The interpreter must be enabled before triton is imported, so the check runs in a subprocess. It covers the
address-table launch (several tensors, ragged last blocks), every update mode, amsgrad, both decays,
maximize, and fp32/fp16/bf16 parameters with fp32 state.
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
    import itertools, torch
    from adacli.optim import _fused
    from adacli.optim._triton import BLOCK, run_triton
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
            hyper = dict(amsgrad=ams, beta1=0.9, beta2=0.999, lr=1e-2, weight_decay=wd, eps=1e-16,
                         weight_decouple=dec, fixed_decay=False, rectify=rect, degenerated_to_sgd=sgd,
                         maximize=maxi)
            scalars, flags = _fused._scalars(step, **hyper)
            modes.add((flags >> 4) & 3)
            run_triton(P, G, M, V, VM, scalars=scalars, flags=flags)
            steps = [torch.tensor(step - 1) for _ in shapes]
            _single_tensor_adabelief(ref[0], G, ref[1], ref[2], ref[3], steps, **hyper)
            for ours, theirs in zip((P, M, V, VM), ref):
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
    hyper = dict(amsgrad=False, beta1=0.9, beta2=0.999, lr=1e-2, weight_decay=1e-2, eps=1e-16,
                 weight_decouple=True, fixed_decay=False, rectify=True, degenerated_to_sgd=True,
                 maximize=False)
    assert _fused.flat_layout([P[0], G[0], M[0], V[0]]) and not P[0].is_contiguous()
    scalars, flags = _fused._scalars(1.0, **hyper)
    run_triton(P, G, M, V, [], scalars=scalars, flags=flags)
    _single_tensor_adabelief(ref[0], G, ref[1], ref[2], [], [torch.tensor(0.0)], **hyper)
    for a, b in zip((P[0], M[0], V[0]), (r[0] for r in ref)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
    print("channels_last ok")
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
    assert "cases=" in proc.stdout and "channels_last ok" in proc.stdout
