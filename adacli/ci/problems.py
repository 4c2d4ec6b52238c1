"""Small analytic and synthetic problems that ``adacli step-test`` runs optimizers on.

Why these: each one probes something a broken optimizer gets wrong, in milliseconds, on a CPU, with no
data files: an ill-conditioned bowl (κ = 100, the AdaBelief paper's toy example), a curved valley
(Rosenbrock), stochastic gradients (a noisy quadratic), and two small learning problems whose parameters are
several tensors of different shapes, a 0-d one included (logistic regression, a tiny MLP).

Every problem is written in its *native* coordinates ``w`` and is deterministic: data come from seeded
generators and the gradient noise of the noisy quadratic is seeded by the step number, so a run can be
repeated, or stopped and resumed, bit for bit.

How one set of hyperparameters can be judged on all of them: ``adacli.ci.steptest`` runs an optimizer with
learning rate ``lr`` on parameters ``z = d * w`` and minimises ``c * F(z / d)`` with ``d = lr / delta`` and
``c = eta * lr / delta**2``. Then a plain gradient step moves ``w`` by ``-eta * grad F(w)`` and a normalised
(Adam-like, roughly unit-size) step moves each coordinate of ``w`` by about ``delta``, *whatever lr is*, so
SGD at lr 0.01 and Adam at lr 1e-3 face the same problem, each at its own scale. ``eta`` and ``delta`` are
chosen per problem so that a sound optimizer with its usual hyperparameters converges comfortably; the
pass criterion (``factor`` within ``steps``) is loose enough for SGD, momentum and the Adam family, and far
out of reach of an optimizer that ignores or garbles its gradients.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["PROBLEMS", "Problem", "default_problems"]

DTYPE = torch.float64  # float64: trajectories are compared bit for bit, and the golden file is float64


class Problem(ABC):
    """A deterministic minimisation problem in native coordinates.

    ``steps`` and ``factor`` are the stated criterion: after ``steps`` optimizer steps the (true) loss must
    be at most ``initial / factor``. ``eta`` and ``delta`` set the scale (module docstring).
    """

    name: str = ""
    title: str = ""
    steps: int = 100
    factor: float = 10.0
    eta: float = 0.01
    delta: float = 0.02

    @abstractmethod
    def initial(self) -> list[Tensor]:
        """The starting point: fresh float64 tensors (callers may modify them)."""

    @abstractmethod
    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        """``(to_minimise, true_loss)`` at ``ws`` for optimizer step ``step``.

        ``to_minimise`` is what the optimizer's gradient comes from (stochastic for the noisy quadratic);
        ``true_loss`` is the noise-free loss the criterion is judged on. For deterministic problems they
        are the same tensor.
        """

    def criterion(self) -> str:
        """The pass criterion in words, for tables and reports."""
        return f"loss ≤ initial/{self.factor:g} after {self.steps} steps"


class Quadratic(Problem):
    """The elongated bowl ``f = 0.5 (x² + κ y²)``, κ = 100: a condition number that trips up plain SGD.

    It starts at (1, 0.1), where the flat (x) and the steep (y) direction hold half of the loss each, so
    the factor cannot be met by settling the steep direction alone: the optimizer must keep making
    progress along the flat one, which is what ill-conditioning makes hard.
    """

    name = "quadratic"
    title = "bowl 0.5(x²+100y²) from (1, 0.1)"
    steps = 150
    factor = 5.0
    eta = 0.01  # eta * kappa = 1: stable for SGD and for heavy-ball momentum 0.9 (limit 3.8)
    delta = 0.02
    kappa = 100.0

    def initial(self) -> list[Tensor]:
        return [torch.tensor([1.0, 0.1], dtype=DTYPE)]

    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        w = ws[0]
        f = 0.5 * (w[0] ** 2 + self.kappa * w[1] ** 2)
        return f, f


class Rosenbrock(Problem):
    """Rosenbrock's banana ``(1-x)² + 100 (y-x²)²`` from (-1.2, 1): a curved, narrow valley.

    What the criterion asks is modest on purpose: getting into the valley without blowing up (a factor
    of 4). Travelling along the valley takes Adam-type optimizers thousands of steps at their usual
    learning rates, far beyond a seconds-long check; a wrong sign, a broken scale or NaN fails here.
    """

    name = "rosenbrock"
    title = "Rosenbrock from (-1.2, 1)"
    steps = 300
    factor = 4.0
    eta = 5e-4  # curvature at the start is ~1300
    delta = 0.02

    def initial(self) -> list[Tensor]:
        return [torch.tensor([-1.2, 1.0], dtype=DTYPE)]

    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        x, y = ws[0][0], ws[0][1]
        f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
        return f, f


class NoisyQuadratic(Problem):
    """``0.5 Σ h_i w_i²`` (h from 1 to 10) with unit Gaussian gradient noise, seeded by the step number."""

    name = "noisy"
    title = "noisy quadratic, 10-d"
    steps = 150
    factor = 10.0
    eta = 0.05
    delta = 0.02
    dim = 10
    seed = 1234

    def __init__(self) -> None:
        self.h = torch.logspace(0, 1, self.dim, dtype=DTYPE)

    def initial(self) -> list[Tensor]:
        return [torch.ones(self.dim, dtype=DTYPE)]

    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        w = ws[0]
        true = 0.5 * (self.h * w * w).sum()
        # A linear term with zero-mean noise: its gradient is exactly the noise, the optimum is unchanged
        # in expectation, and seeding by (seed, step) makes a resumed run see the same noise.
        gen = torch.Generator().manual_seed(self.seed * 100_003 + step)
        noise = torch.randn(self.dim, generator=gen, dtype=DTYPE)
        return true + (noise * w).sum(), true


class LogisticRegression(Problem):
    """Binary logistic regression, 256 points in 8-d, full batch; weights and a 0-d bias tensor."""

    name = "logistic"
    title = "logistic regression, 256×8"
    steps = 100
    factor = 2.0
    eta = 1.0
    delta = 0.02

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        n, d = 256, 8
        self.x = torch.randn(n, d, generator=gen, dtype=DTYPE)
        w_true = torch.randn(d, generator=gen, dtype=DTYPE)
        w_true = 6 * w_true / w_true.norm()
        p = torch.sigmoid(self.x @ w_true + 0.5)
        self.y = (torch.rand(n, generator=gen, dtype=DTYPE) < p).to(DTYPE)

    def initial(self) -> list[Tensor]:
        return [torch.zeros(self.x.shape[1], dtype=DTYPE), torch.zeros((), dtype=DTYPE)]

    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        w, b = ws
        f = torch.nn.functional.binary_cross_entropy_with_logits(self.x @ w + b, self.y)
        return f, f


class TinyMLP(Problem):
    """A 2-16-1 tanh MLP separating two concentric rings (128 points), full batch: four tensors."""

    name = "mlp"
    title = "MLP 2-16-1 on two rings"
    steps = 200
    factor = 4.0
    eta = 0.5
    delta = 0.02

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        n = 128
        radius = torch.cat(
            [
                torch.rand(n // 2, generator=gen, dtype=DTYPE) * 0.5,
                0.8 + torch.rand(n // 2, generator=gen, dtype=DTYPE) * 0.5,
            ]
        )
        angle = torch.rand(n, generator=gen, dtype=DTYPE) * 2 * math.pi
        self.x = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
        self.y = torch.cat([torch.zeros(n // 2, dtype=DTYPE), torch.ones(n // 2, dtype=DTYPE)])
        self.w0 = [
            torch.randn(2, 16, generator=gen, dtype=DTYPE) / math.sqrt(2),
            torch.zeros(16, dtype=DTYPE),
            torch.randn(16, 1, generator=gen, dtype=DTYPE) / 4,
            torch.zeros(1, dtype=DTYPE),
        ]

    def initial(self) -> list[Tensor]:
        return [w.clone() for w in self.w0]

    def objective(self, ws: list[Tensor], step: int) -> tuple[Tensor, Tensor]:
        w1, b1, w2, b2 = ws
        h = torch.tanh(self.x @ w1 + b1)
        f = torch.nn.functional.binary_cross_entropy_with_logits((h @ w2 + b2).squeeze(1), self.y)
        return f, f


PROBLEMS: dict[str, type[Problem]] = {
    cls.name: cls for cls in (Quadratic, Rosenbrock, NoisyQuadratic, LogisticRegression, TinyMLP)
}


def default_problems() -> list[Problem]:
    """One fresh instance of every problem, in table order."""
    return [cls() for cls in PROBLEMS.values()]


# --- the golden-value gradient field ---------------------------------------------------------------------
#
# The AdaBelief golden check feeds the optimizer gradients from a closed-form field instead of autograd, so
# what it pins down is the optimizer's arithmetic alone: three tensors (a vector, a matrix and a 0-d
# scalar) whose gradient scales differ by four orders of magnitude, so that eps, the belief term and the
# rectification warm-up all matter. benchmarks/make_golden.py and adacli.ci.steptest both use these functions;
# changing them invalidates adacli/ci/golden/adabelief_golden.json (regenerate it on purpose).

GOLDEN_SHAPES: tuple[tuple[int, ...], ...] = ((5,), (3, 4), ())
_GOLDEN_SCALES = (1.0, 30.0, 1e-3)


def golden_initial() -> list[Tensor]:
    """The golden run's starting parameters (float64, closed form: no RNG involved)."""
    out = []
    for k, shape in enumerate(GOLDEN_SHAPES):
        n = math.prod(shape)
        idx = torch.arange(n, dtype=DTYPE)
        out.append(torch.sin(1.0 + 0.37 * idx + k).reshape(shape).clone())
    return out


def golden_gradient(ws: list[Tensor], step: int) -> list[Tensor]:
    """The gradient at ``ws`` for optimizer step ``step`` (0-based): a pull towards a target, a
    nonlinearity and a step-dependent oscillation, each tensor at its own scale."""
    grads = []
    for k, (w, scale) in enumerate(zip(ws, _GOLDEN_SCALES, strict=True)):
        idx = torch.arange(w.numel(), dtype=DTYPE).reshape(w.shape)
        target = torch.cos(0.5 * idx - k)
        oscillation = 0.5 * torch.sin(0.7 * step + 1.3 * idx + k)
        grads.append(scale * ((w - target) + 0.3 * torch.cos(3.0 * w) + oscillation))
    return grads
