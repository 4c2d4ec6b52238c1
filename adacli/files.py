"""Writing files so that a crash or a full disk never leaves a damaged one behind.

Every file adacli writes (results.json, trial files, CSV, PNG, HTML, baselines) goes through
:func:`write_atomic`: the bytes go to a temporary file beside the target, which is renamed over the
target only once it is complete, so a reader sees the old file or the new one, never half of one. When
the disk refuses (full, read-only, gone), the temporary file is removed and one :class:`WriteError`
names the path and the reason; what was written before is intact.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from adacli.errors import AdacliError


class WriteError(AdacliError):
    """A file could not be written (exit code 1: what was written before, finished trials included, is
    intact; the caller says what that means for the run)."""

    exit_code = 1

    def __init__(self, path: Path, error: OSError | str, hint: str = "") -> None:
        self.path = path
        self.reason = error if isinstance(error, str) else (error.strerror or str(error))
        self.hint = hint
        super().__init__(f"{path}: cannot write: {self.reason}" + (f"; {hint}" if hint else ""))

    def with_hint(self, hint: str) -> WriteError:
        """The same error, saying what it means for the work (where the finished part is, how to go on)."""
        return WriteError(self.path, self.reason, hint)


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename; creates the
    parent folder. Raises :class:`WriteError` (no temporary file left behind) when the disk refuses."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise WriteError(path, e) from None
    return path
