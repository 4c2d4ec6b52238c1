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
    (143 for a SIGTERM that a run turned into an interrupt, see adacli.run.interrupts). A command line
    that cannot be parsed (``--jobs nan``, an unknown option or command) is one line naming the option and
    where the allowed values are, exit 2, as bad input in a recipe is: Click's own report is a framed
    usage block, which CI logs and ``2>&1 | tail -1`` cut apart."""
    import typer

    try:
        code = app(standalone_mode=False)
    except _parse_errors() as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `adacli` alone: the help, as before
            e.show()
        else:
            err_console.print(f"error: {_usage_line(e)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt as e:
        err_console.print("interrupted")
        sys.exit(getattr(e, "exit_code", 130))
    sys.exit(code if isinstance(code, int) else 0)


def _parse_errors() -> tuple[type[Exception], ...]:
    """Click's errors: ``click.ClickException``, and ``typer.TyperException`` (Typer >= 0.29 carries
    its own copy of Click, whose errors derive from it)."""
    import typer

    errors: list[type[Exception]] = [getattr(typer, "TyperException", Exception)]
    try:
        import click

        errors.append(click.ClickException)
    except ImportError:
        pass
    return tuple(errors)


def _usage_line(e: Exception) -> str:
    """A Click error as one line: the command, Click's message, and the help that lists what is allowed."""
    from adacli.cli.common import one_line

    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "adacli"
    message = " ".join(str(e.format_message()).split())  # type: ignore[attr-defined]
    return one_line(f"{command}: {message} (see {command} --help)")


__all__ = ["app", "main"]
