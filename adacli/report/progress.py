"""The live display of a run: an overall bar (trials done / planned) and one row per worker, in one
rich display for every executor (in-process, local workers, Ray)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adacli.results import TrialResult


def progress_bars(console: Console, *, disable: bool = False, bar_width: int = 30) -> Progress:
    """rich's Progress with the columns of a run: description, bar, i/n, an info field, elapsed time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=bar_width),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        refresh_per_second=4,
        transient=False,
    )


class RunProgress:
    """Live progress of every worker in one rich display: an overall bar (trials done / planned) and one
    row per worker (its trial, step, loss). Fed by the run pipeline with the workers' events (they
    arrive through a multiprocessing queue or a Ray queue; rendering happens here, in the parent).
    ``disable=True`` makes every method a no-op except the counters."""

    def __init__(self, console: Console | None = None, *, disable: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.disable = disable
        self._progress = progress_bars(self.console, disable=disable, bar_width=24)
        self._overall: Any = None
        self._rows: dict[str, Any] = {}
        self.ran = 0
        self.reused = 0

    def __enter__(self) -> RunProgress:
        if not self.disable:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.disable:
            self._progress.stop()

    def plan(self, total: int) -> None:
        if self.disable:
            return
        if self._overall is None:
            self._overall = self._progress.add_task("trials", total=total, info="")
        else:
            self._progress.update(self._overall, total=total)

    def event(self, ev: Any) -> None:
        """A worker's ``adacli.run.executors.ProgressEvent``: a trial starts, or a training step."""
        if self.disable:
            return
        row = self._rows.get(ev.worker)
        if ev.kind == "start":
            desc = escape(f"{ev.worker} {ev.label} seed {ev.seed}")
            if row is None:
                self._rows[ev.worker] = self._progress.add_task(desc, total=None, info="")
            else:
                self._progress.reset(row, total=None, description=desc, info="")
        elif ev.kind == "step" and row is not None:
            info = (
                f"loss {ev.loss:.4g}" if ev.loss is not None and math.isfinite(ev.loss) else f"loss {ev.loss}"
            )
            self._progress.update(row, total=ev.total, completed=ev.step, info=info)

    def finished(self, task: Any, result: TrialResult, reused: bool) -> None:
        """A trial of the plan (``adacli.run.plan.TrialTask``) is recorded, run now or reused."""
        if reused:
            self.reused += 1
        else:
            self.ran += 1
        if self.disable:
            return
        if self._overall is not None:
            self._progress.advance(self._overall)
        if reused:
            return
        status = {"ok": "[green]done[/]", "diverged": "[red]diverged[/]", "failed": "[red]failed[/]"}.get(
            result.status, result.status
        )
        val = result.extra.get("val")
        figures = (
            f", val acc {val['accuracy']:.2f}%" if task.role == "sweep" and isinstance(val, dict) else ""
        )
        e = result.final_eval
        if task.role == "final" and e is not None:
            figures = f", test acc {e.test_accuracy:.2f}%"
        why = f" ({result.error})" if result.error and result.status != "ok" else ""
        worker = (result.extra.get("worker") or {}).get("id", "")
        worker = "" if worker == "main" else worker  # the serial executor: this process, nothing to say
        self._progress.console.print(
            f"{status} {escape(result.label)} seed {result.seed}: {result.steps_done} steps in "
            f"{result.train_seconds:.2f} s{figures}{escape(why)} [dim]{escape(str(worker))}[/]",
            highlight=False,
        )

    def note(self, text: str) -> None:
        if not self.disable:
            self._progress.console.print(escape(text), highlight=False, soft_wrap=True)


__all__ = ["RunProgress", "progress_bars"]
