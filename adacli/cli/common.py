"""What every command shares: the Typer app, the consoles, errors as one line, and common options.

A command is ``parse -> one workflow call -> print -> exit code``; errors from the library are
:class:`~adacli.errors.AdacliError` and become one line on stderr with their exit code (:func:`fail`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from adacli.errors import AdacliError

app = typer.Typer(
    name="adacli",
    help="Compare deep-learning optimizers: recipes, step tests, benchmarks and a CI gate.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _stdout_console() -> Console:
    """Tables at their natural width in pipes and CI logs, where rich would squeeze them to 80 columns."""
    terminal = Console()
    return terminal if terminal.is_terminal or os.environ.get("COLUMNS") else Console(width=200)


console = _stdout_console()

# Characters that end a line for terminals or str.splitlines(): a message quoting the user's input (a
# key, a value) must still be one line.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """``text`` with every line break written as its escape (``\\n``), so an error stays one line."""
    return text.translate(_LINE_BREAKS)


def fail(error: AdacliError) -> typer.Exit:
    """Print an adacli error as one line on stderr and return the Exit to raise."""
    # messages hold brackets ("[lo, hi]", "optimizers[0]"): escaped, never markup
    err_console.print(f"[bold red]error:[/] {escape(one_line(str(error)))}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


def say(out: Console, text: str, *, markup: bool = False) -> None:
    """One message line (user data escaped unless ``markup``), never wrapped into several."""
    out.print(text if markup else escape(text), highlight=False, soft_wrap=True)


def warn(text: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def write_output(target: str, text: str) -> None:
    """``--markdown FILE`` and friends: write the file (``-``: print to stdout), one-line error on failure."""
    from adacli.files import write_atomic

    if target == "-":
        typer.echo(text, nl=False)
        return
    try:
        write_atomic(Path(target), text)
    except AdacliError as e:
        raise fail(e) from None


class TerminalUI:
    """A workflow's warnings and live display on the terminal (stderr when stdout carries JSON)."""

    def __init__(self, out: Console) -> None:
        self.out = out

    def warning(self, text: str) -> None:
        warn(text)

    def progress(self) -> contextlib.AbstractContextManager[Any]:
        from adacli.report.progress import RunProgress

        return RunProgress(self.out)


# --- options shared by compare and suite (the executor of the pipeline) ------------------------------

JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        help="run up to N trials at once in local worker processes [CPU: one per core, at most one per "
        "trial; GPU: 1]",
    ),
]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        metavar="serial|local|ray",
        help="where trials run [CPU: local workers (serial for one trial or one core); GPU: serial]",
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", metavar="ADDR", help="ray: cluster address [start a local Ray instance]"),
]
CpusOption = Annotated[float, typer.Option("--cpus-per-trial", help="ray: CPUs reserved per trial")]
GpusOption = Annotated[
    float | None, typer.Option("--gpus-per-trial", help="ray: GPUs per trial [1 for CUDA recipes, else 0]")
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="torch threads per trial [CPU: 1; GPU: torch's; ray: CPUs/trial]; more than 1 may change the "
        "numbers (float sums in another order)",
    ),
]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="override the recipe: auto|cpu|cuda[:N]|mps")
]
SeedsOption = Annotated[
    int | None, typer.Option("--seeds", min=1, help="override the recipe: run seeds 0..N-1")
]
UntilDecidedOption = Annotated[
    bool,
    typer.Option(
        "--seeds-until-decided",
        help="add rounds of seeds until the comparisons with the reference are decided (from the recipe's "
        "seed count, at most 20; the recipe's seeds: {min, max, until: decided} sets them)",
    ),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="every column of the table (default: the key ones, within 100 columns)")
]
StepsOption = Annotated[
    int | None, typer.Option("--steps", min=1, help="override the budget: N training steps")
]
JunitOption = Annotated[
    str | None, typer.Option("--junit-xml", help="with --baseline: verdicts as JUnit XML")
]
