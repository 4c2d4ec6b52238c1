"""The command line: parse options, call one workflow, print, map errors to exit codes.

Exit codes (DESIGN.md section 5): 0 success, 1 a check failed (a trial that raised, a gate regression,
a step-test failure), 2 bad input, 130 interrupted by Ctrl-C, 143 by SIGTERM. Each command lives in the
module named for it (``compare``, ``report``, ``suite``, ``gate``, ``checks``: step-test and bench,
``info``: validate, schema and list) and registers itself on the one Typer ``app``.
"""

# ruff: noqa: I001  (the commands register in the order --help lists them)
from __future__ import annotations

import sys

from adacli.cli.common import app, err_console
from adacli.cli import compare, report, suite, gate, checks, info  # noqa: F401


def main() -> None:
    """Console-script entry point: run the app; a Ctrl-C outside a command's own handling exits 130
    (143 for a SIGTERM that a run turned into an interrupt, see adacli.run.interrupts)."""
    try:
        app()
    except KeyboardInterrupt as e:
        err_console.print("interrupted")
        sys.exit(getattr(e, "exit_code", 130))


__all__ = ["app", "main"]
