"""Ctrl-C and SIGTERM during a run: the first one stops the run, the run saves what finished, and the
process exits 130 (SIGINT) or 143 (SIGTERM).

Why a handler of our own rather than Python's default ``KeyboardInterrupt``:

* **SIGTERM** (what CI runners, schedulers and ``kill`` send) kills a Python process outright by default:
  nothing would be saved. Here it raises :class:`Interrupted` like Ctrl-C does.
* **A second signal while saving.** ``timeout -s INT`` and terminals deliver the signal to a whole process
  group, and impatient users press Ctrl-C twice; a second ``KeyboardInterrupt`` raised while the run is
  stopping its workers would skip the save and leave ``results.json`` at ``running``. After the first
  signal, later ones are only counted until the run has saved.
* ``KeyboardInterrupt`` subclass: a trial (``adacli.train.trial``) never catches it, so an interrupt in the
  middle of a serial trial reaches the run loop, as a real Ctrl-C does.

Ray installs its own SIGTERM handler in ``ray.init``; :meth:`InterruptGuard.arm` is called again after an
executor starts so that ours is the one in force.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal (``signum``); ``exit_code`` is what the process should return."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = exit_code(signum)


def signum_of(exc: BaseException) -> int:
    """The signal behind an interrupt: the one :class:`Interrupted` carries, else SIGINT (a plain
    ``KeyboardInterrupt``, e.g. raised by a user's code)."""
    return getattr(exc, "signum", int(signal.SIGINT))


class InterruptGuard:
    """While active (a ``with`` block in the main thread): the first SIGINT/SIGTERM raises
    :class:`Interrupted`; once :meth:`hold` was called (or after that first signal) further signals are
    recorded in ``received`` and ignored. Outside the main thread it does nothing (Python delivers
    signals to the main thread only)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.holding = False
        self._saved: dict[int, Any] = {}
        self.active = threading.current_thread() is threading.main_thread()

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if not self.holding:
            self.holding = True
            raise Interrupted(signum)

    def arm(self) -> None:
        """Install the handlers (again: a library may have replaced them since)."""
        if not self.active:
            return
        for s in SIGNALS:
            current = signal.getsignal(s)
            if current != self._handler:
                self._saved.setdefault(s, current)
                signal.signal(s, self._handler)

    def hold(self) -> None:
        """From now on signals are recorded, not raised: the run is stopping and saving."""
        self.holding = True

    def __enter__(self) -> InterruptGuard:
        self.arm()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, previous in self._saved.items():
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)
        self._saved.clear()


__all__ = ["SIGNALS", "InterruptGuard", "Interrupted", "exit_code", "signum_of"]
