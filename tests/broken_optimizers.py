"""Optimizers for the step-test tests, loaded by import path (``broken_optimizers:NAME``) like a user's own.

Each broken one carries a realistic bug, not a stub: the step-test must catch it by running it.

* :class:`HeavyBall`: a correct momentum SGD (the "user optimizer that passes").
* :class:`IgnoresGradients`: steps along a random direction instead of the gradient (a refactor that
  reads the wrong tensor): repeatable and resumable, but the loss does not fall.
* :class:`ProducesNaN`: a correct update until a bias correction ``1 - 1**t`` turns the step 0/0 after a
  few steps (a beta rounded to 1): the loss goes NaN.
* :class:`ForgetfulMomentum`: correct momentum SGD that keeps its velocity in an attribute instead of
  ``self.state``: it trains, but a resumed run starts with zero velocity.
* :class:`Unrepeatable`: SGD with gradient noise drawn from an unseeded private generator.
* :class:`NudgedAdaBelief`: adacli's AdaBelief with the learning rate off by one part in 10^7: the kind of
  numerical drift only the golden check sees.
* :class:`SharedMomentum`: momentum SGD with one velocity buffer shaped like the first parameter and
  shared by all: fine on a problem with one parameter tensor, a RuntimeError inside ``step()`` as soon as
  the shapes differ (a weight and its bias).
"""

from __future__ import annotations

import random

import torch

from adacli.optim.adabelief import AdaBelief


class HeavyBall(torch.optim.Optimizer):
    """Momentum SGD: ``v = momentum * v + g``; ``p -= lr * v`` (state in ``self.state``: resumable)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(group["momentum"]).add_(p.grad)
                p.add_(v, alpha=-group["lr"])
        return loss


class IgnoresGradients(torch.optim.Optimizer):
    """Moves each parameter by ``lr`` along a random direction: the gradient is never read."""

    def __init__(self, params, lr: float = 1e-3) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.randn_like(p).sign(), alpha=-group["lr"])
        return None


class ProducesNaN(torch.optim.Optimizer):
    """Momentum SGD with a "bias correction" whose beta rounds to 1 after ``warm`` steps: 0/0 = NaN."""

    def __init__(self, params, lr: float = 0.01, warm: int = 5) -> None:
        super().__init__(params, {"lr": lr, "warm": warm})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                beta = 0.9 if state["step"] <= group["warm"] else 1.0
                correction = 1.0 - beta ** state["step"]
                update = (p.grad * correction) / correction if correction else p.grad * 0.0 / 0.0
                p.add_(update, alpha=-group["lr"])
        return None


class ForgetfulMomentum(torch.optim.Optimizer):
    """Momentum SGD whose velocity lives in ``self._velocity``, outside ``state_dict()``."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self._velocity: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                v = self._velocity.setdefault(i, torch.zeros_like(p))
                v.mul_(group["momentum"]).add_(p.grad)
                p.add_(v, alpha=-group["lr"])
        return None


class Unrepeatable(torch.optim.Optimizer):
    """SGD plus gradient noise from a generator seeded by the system's entropy (not torch's RNG)."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})
        self._gen = torch.Generator().manual_seed(random.SystemRandom().randrange(2**62))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    noise = torch.randn(p.shape, generator=self._gen, dtype=p.dtype) * 1e-3
                    p.add_(p.grad + noise * p.grad.abs().mean(), alpha=-group["lr"])
        return None


class NudgedAdaBelief(AdaBelief):
    """AdaBelief whose every step uses ``lr * (1 + 1e-7)``."""

    @torch.no_grad()
    def step(self, closure=None):
        saved = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * (1 + 1e-7)
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, saved, strict=True):
                g["lr"] = lr


class SharedMomentum(torch.optim.Optimizer):
    """Momentum SGD whose single velocity buffer is shaped like the first parameter and shared by all."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})
        self.velocity: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if self.velocity is None:
                    self.velocity = torch.zeros_like(p)
                self.velocity.mul_(group["momentum"]).add_(p.grad)  # shape mismatch on the next tensor
                p.add_(self.velocity, alpha=-group["lr"])
        return None
