"""Users' own optimizers for the sweep/executor tests (``sweep_user_optim:Class`` import paths).

Real optimizers (plain SGD updates) with one extra behaviour each, so a test can observe from the outside
what ran where: ``CountingSGD`` appends one line per trial it trains to the file named by
``$ADACLI_TEST_COUNT_FILE`` (works across worker processes), ``DyingSGD`` kills its own process with
SIGKILL at its first step unless ``$ADACLI_TEST_KILL_MARKER`` exists (it creates the marker first, so
the retried trial survives): what the OOM killer does to a worker. ``KilledSGD`` is killed at its first
step every time (a trial that never fits in memory) when it runs in a worker process; in the main process
it raises instead, so a mistaken serial run fails its trial rather than the test session.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import torch


class _PlainSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.05) -> None:
        super().__init__(params, {"lr": lr})
        self._steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        self._steps += 1
        if self._steps == 1:
            self.first_step()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])

    def first_step(self) -> None:
        pass


class CountingSGD(_PlainSGD):
    def first_step(self) -> None:
        path = os.environ.get("ADACLI_TEST_COUNT_FILE")
        if path:
            lr = self.param_groups[0]["lr"]
            with open(path, "a") as f:
                f.write(f"{os.getpid()} lr={lr:g}\n")


class DyingSGD(_PlainSGD):
    def first_step(self) -> None:
        marker = os.environ.get("ADACLI_TEST_KILL_MARKER")
        if marker and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


class KilledSGD(_PlainSGD):
    def first_step(self) -> None:
        if multiprocessing.parent_process() is None:
            raise RuntimeError("KilledSGD only dies in worker processes")
        os.kill(os.getpid(), signal.SIGKILL)
