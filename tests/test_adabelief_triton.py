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
    assert "cases=" in proc.stdout
