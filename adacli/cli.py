"""The ``adacli`` command line: thin Typer commands that call the library and map errors to exit codes.

Exit codes (DESIGN.md section 5): 0 success, 1 a check failed, 2 bad input, 130 interrupted.
Each command keeps its logic in the module named for it; here we only parse options, call, and print.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from adacli.errors import AdacliError

app = typer.Typer(
    name="adacli",
    help="Compare deep-learning optimizers: recipes, step tests, benchmarks and a CI gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(error: AdacliError) -> typer.Exit:
    """Print an adacli error as one line on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


# --- commands -------------------------------------------------------------------------------------
# (each command: parse options, call one library function, print; AdacliError -> fail(err))


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
