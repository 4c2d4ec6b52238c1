"""Users' own optimizers, loaded by import path (``compare_user_optim:Class``) in the trial/compare tests.

They are real optimizers (plain SGD updates) with one extra behaviour each, standing for what a user's
code can do to a comparison: stop it with Ctrl-C (raised, or a real SIGINT), crash, or reveal the
learning rate the trial's schedule gave it.
"""

from __future__ import annotations

import os
import signal
from typing import ClassVar

import torch


class _PlainSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.05) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def _update(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class InterruptingSGD(_PlainSGD):
    """Raises KeyboardInterrupt (what Ctrl-C raises) at its first step: the trial is cut mid-run."""

    @torch.no_grad()
    def step(self, closure=None):
        raise KeyboardInterrupt


class CtrlCSGD(_PlainSGD):
    """Sends its own process a real SIGINT at its first step, as a user pressing Ctrl-C then would."""

    @torch.no_grad()
    def step(self, closure=None):
        os.kill(os.getpid(), signal.SIGINT)
        self._update()


class CrashingSGD(_PlainSGD):
    """Raises a RuntimeError at its third step (a bug in a user's optimizer)."""

    def __init__(self, params, lr: float = 0.05) -> None:
        super().__init__(params, lr)
        self.calls = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("user optimizer bug")
        self._update()


class LrRecordingSGD(_PlainSGD):
    """Plain SGD that appends the lr it was asked to use at every step to ``LrRecordingSGD.seen``."""

    seen: ClassVar[list[float]] = []

    @torch.no_grad()
    def step(self, closure=None):
        LrRecordingSGD.seen.append(float(self.param_groups[0]["lr"]))
        self._update()
