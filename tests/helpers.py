"""Helpers shared by the test files: hand-made trials, a recipe writer, the CLI runner, table rendering.

(``tests/`` is on ``sys.path`` for every test file: pytest puts the root conftest's folder there.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from adacli.results import EvalPoint, TrialResult

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
REPO = TESTS.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: a synthetic dataset tiny enough for a trial in well under a second
DATASET = "{name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 256, test_size: 64}"


def make_trial(label: str, seed: int, losses: list[float], accs: list[float], *, status: str = "ok"):
    """A hand-made trial: evals every 2 steps with the given test accuracies; train-eval = test + 3."""
    evals = [
        EvalPoint(
            step=2 * (i + 1),
            seconds=0.02 * (i + 1) + 0.001 * seed,
            train_eval_loss=0.5 / (i + 1),
            train_eval_accuracy=a + 3.0,
            test_loss=0.6 / (i + 1),
            test_accuracy=a,
        )
        for i, a in enumerate(accs)
    ]
    return TrialResult(
        label=label,
        optimizer=label.split("-")[0],
        optimizer_class=f"torch.optim.{label.title()}",
        hparams={"lr": 0.01, "betas": [0.9, 0.999]},
        seed=seed,
        status=status,  # type: ignore[arg-type]
        losses=losses,
        times=[0.01 * (i + 1) + 0.001 * seed for i in range(len(losses))],
        evals=evals,
        step_time_ms=10.0 + seed,
        optimizer_step_ms=2.0 + seed,
        state_bytes=4096,
        peak_memory_bytes=1 << 20,
    )


def make_trials() -> list[TrialResult]:
    down = [2.0, 1.5, 1.0, 0.7, 0.5, 0.4]
    return [
        make_trial("adabelief", 0, down, [50.0, 70.0, 80.0]),
        make_trial("adam", 0, [x * 1.3 for x in down], [45.0, 66.0, 77.0]),
        make_trial("adabelief", 1, [x * 1.05 for x in down], [52.0, 72.0, 82.0]),
        make_trial("adam", 1, [x * 1.2 for x in down], [44.0, 65.0, 75.0]),
        make_trial("sgd", 0, [2.0, 40.0, math.inf], [10.0], status="diverged"),
    ]


RECIPE = {"name": "unit", "target": {"metric": "train_loss", "value": None}, "seeds": 2}
ENV = {"python": "3", "torch": "x", "device": "cpu"}


def render(table, width: int = 250) -> str:
    """A rich table as plain text, as a wide terminal shows it."""
    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor")
    console.print(table)
    return console.export_text(styles=False)


def invoke(*args: str, env: dict[str, str] | None = None):
    """The real Typer app, in-process; exceptions propagate (a traceback is a test failure)."""
    from adacli.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False, env=env)


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_recipe(
    folder: Path,
    optimizers: list[str],
    *,
    name: str = "tiny",
    seeds: int | str = 1,
    steps: int = 4,
    model: str = "test_resnet",
    dataset: str = DATASET,
    budget: str | None = None,
    extra: str = "",
    file: str | None = None,
) -> Path:
    """A recipe file of a tiny CPU comparison (``optimizers``: YAML flow items, e.g. ``adam`` or
    ``{name: sgd, lr: 0.1}``)."""
    opts = "\n".join(f"  - {o}" for o in optimizers)
    budget = budget or f"{{steps: {steps}, batch_size: 32, eval_every: {steps}}}"
    path = folder / (file or f"{name.replace('/', '_').strip('.') or 'r'}.yaml")
    path.write_text(
        f"name: {json.dumps(name)}\nmodel: {{name: {model}}}\ndataset: {dataset}\nbudget: {budget}\n"
        f"seeds: {seeds}\ndevice: cpu\n{extra}optimizers:\n{opts}\n"
    )
    return path
