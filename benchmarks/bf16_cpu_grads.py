"""Reproduce the torch/oneDNN defect behind ``adacli.train.step.cpu_precision_guard``.

With bf16 autocast on the CPU, weight gradients computed by oneDNN's convolution backward are later
overwritten by unrelated allocations. This script trains nothing: per seed it runs one forward/backward
of ``test_resnet`` (8x8, batch 32), snapshots every gradient, allocates some unrelated tensors and counts
the gradients that changed. Run it with oneDNN on (torch's default) and off::

    python benchmarks/bf16_cpu_grads.py            # e.g. "oneDNN on : 3 corrupted gradients over 8 seeds"
    python benchmarks/bf16_cpu_grads.py --off      # "oneDNN off: 0 corrupted gradients over 8 seeds"
"""

from __future__ import annotations

import argparse

import timm
import torch
from torch import nn


def corrupted(seeds: int, channels_last: bool) -> int:
    count = 0
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = timm.create_model("test_resnet", num_classes=4, in_chans=1)
        x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 4, (32,))
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        snapshot = [p.grad.clone() for p in net.parameters()]
        unrelated = [torch.full((p.numel(),), 7.0) for p in net.parameters() for _ in range(3)]
        count += sum(not torch.equal(p.grad, s) for p, s in zip(net.parameters(), snapshot, strict=True))
        del unrelated
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--off", action="store_true", help="run with torch.backends.mkldnn disabled")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = not args.off
    n = corrupted(args.seeds, args.channels_last)
    state = "off" if args.off else "on "
    print(f"torch {torch.__version__}, oneDNN {state}: {n} corrupted gradients over {args.seeds} seeds")


if __name__ == "__main__":
    main()
