"""A user's own optimizer, loaded by import path (``gate_user_optim:MomentumSGD``) in the gate tests.

It stands for code that lives outside adacli and changes between a baseline and a gated run. The
"regression" is a real change of its update rule, switched by an environment variable read at every
step (so it works in-process and in a subprocess): with ``GATE_TEST_OPTIM_BUG=1`` the update uses the
gradient scaled by ``1e-3`` - the kind of bug a refactor introduces (a wrong scale, a unit mix-up) and
that leaves every hyperparameter, the class name and the import path unchanged.
"""

from __future__ import annotations

import os

import torch

BUG_ENV = "GATE_TEST_OPTIM_BUG"


class MomentumSGD(torch.optim.Optimizer):
    """Heavy-ball SGD: ``buf = momentum * buf + grad``; ``p -= lr * buf``."""

    def __init__(self, params, lr: float = 0.05, momentum: float = 0.9) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scale = 1e-3 if os.environ.get(BUG_ENV) == "1" else 1.0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.zeros_like(p)
                buf.mul_(group["momentum"]).add_(p.grad, alpha=scale)
                p.add_(buf, alpha=-group["lr"])
        return loss
