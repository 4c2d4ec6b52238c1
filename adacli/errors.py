"""Errors that the CLI maps to exit codes.

Library code raises these instead of printing or exiting, so that the same functions can be used from
Python, and the CLI stays a thin layer that turns them into one-line messages and exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


class AdacliError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(AdacliError):
    """Bad input (recipe, CLI option, missing data): one line, exit code 2, never a traceback.

    The message names where the problem is (file, line, field path) and what is allowed, so a user can
    fix it without reading the code.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        allowed: Iterable[str] | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.allowed = list(allowed) if allowed is not None else None
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        text = f"{where}{field}{self.message}"
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        if self.allowed:
            shown = ", ".join(self.allowed[:25])
            more = f", … ({len(self.allowed) - 25} more)" if len(self.allowed) > 25 else ""
            text += f"; allowed: {shown}{more}"
        return text

    def located(
        self, *, file: str | None = None, line: int | None = None, field: str | None = None
    ) -> InputError:
        """Return a copy with missing location parts filled in (inner code rarely knows the file)."""
        return InputError(
            self.message,
            file=self.file or file,
            line=self.line or line,
            field=self.field or field,
            allowed=self.allowed,
            suggestion=self.suggestion,
        )


    def under(self, prefix: str) -> InputError:
        """A copy whose field path sits under ``prefix`` (an inline suite workload's keys live in the suite
        file, so ``model.name`` becomes ``workloads[1].model.name``)."""
        return InputError(
            self.message,
            file=self.file,
            line=self.line,
            field=f"{prefix}.{self.field}" if self.field else prefix,
            allowed=self.allowed,
            suggestion=self.suggestion,
        )


class CheckFailed(AdacliError):
    """A check ran and failed (step-test failure, gate regression): exit code 1."""

    exit_code = 1


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one, for 'did you mean' hints."""
    choices = list(choices)
    matches = get_close_matches(name.lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not matches:
        return None
    by_lower = {c.lower(): c for c in choices}
    return by_lower[matches[0]]
