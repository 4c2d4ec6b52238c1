"""Stage 2 of a run, the run loop: feed a plan's tasks to an executor, collect results, choose sweep
configurations as soon as their trials are in, and never run a trial twice.

One loop for every executor (``executors.SerialExecutor`` runs tasks in this process, ``LocalExecutor`` in
worker processes, ``RayExecutor`` as Ray tasks): :func:`drive` submits while the executor has free
slots and hands every result to :meth:`Scheduler.arrived`.

"Never twice" is a dictionary look-up by content key (:mod:`adacli.run.keys`): a task whose key is
already finished (from the resumed folder, or earlier in this run) is recorded as *reused*; a task whose
key is running waits for that result. Every recorded trial goes to ``on_record`` at once (the pipeline
writes its file), so an interrupt loses nothing that finished.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from adacli.results import TrialResult
from adacli.run import sweep
from adacli.run.plan import Plan, TrialTask
from adacli.run.store import FINISHED


class Progress(Protocol):
    """What a run reports to (``adacli.report.progress.RunProgress`` implements it)."""

    def plan(self, total: int) -> None: ...
    def event(self, ev: Any) -> None: ...  # an executors.ProgressEvent
    def finished(self, task: TrialTask, result: TrialResult, reused: bool) -> None: ...
    def note(self, text: str) -> None: ...


class Executor(Protocol):
    """The part of an executor the loop uses (see :mod:`adacli.run.executors`)."""

    slots: int

    @property
    def outstanding(self) -> int: ...
    def submit(self, task: TrialTask) -> None: ...
    def wait(self, timeout: float) -> list[tuple[TrialTask, TrialResult]]: ...


OnRecord = Callable[[TrialTask, TrialResult, bool], None]


class Scheduler:
    """The bookkeeping of one run: which tasks are pending, running, done; the sweep choices."""

    def __init__(self, plan: Plan, cache: dict[str, TrialResult], on_record: OnRecord, notes: Any = None):
        self.plan = plan
        self.on_record = on_record
        self.note: Callable[[str], None] = notes or (lambda text: None)
        self.results: dict[int, tuple[TrialTask, TrialResult]] = {}
        self.done: dict[str, TrialResult] = dict(cache)
        self.earlier = set(cache)  # keys finished by an earlier run in the folder (a resume)
        self.inflight: dict[str, list[TrialTask]] = {}
        self.pending: deque[TrialTask] = deque()
        self.choices: dict[int, sweep.Choice] = {}
        self.ran = 0
        self.reused = 0
        if not plan.swept:  # nothing to choose: every optimizer's one configuration
            self.choices = {sw.index: sweep.Choice(sw, 0, []) for sw in plan.sweeps}

    def start(self) -> None:
        """Schedule the plan's first tasks that are not recorded yet (all of them, the first time)."""
        for task in self.plan.first_tasks():
            if task.index not in self.results:
                self.schedule(task)

    def extend(self, plan: Plan) -> None:
        """Continue with a larger plan of the same run (seeds until decided: the next round of seeds).
        Its tasks keep the indices of the smaller plan (seed-major order), so the next :func:`drive`
        schedules only the new seeds; what is recorded stays."""
        self.plan = plan

    def ordered(self) -> list[tuple[TrialTask, TrialResult]]:
        """Every recorded (task, result), in plan order."""
        return [self.results[i] for i in sorted(self.results)]

    def schedule(self, task: TrialTask) -> None:
        """Reuse a finished trial of the same key, wait for a running one, or queue the task."""
        known = self.done.get(task.key)
        # a stored trial without validation figures cannot be a selection trial: that one runs again
        if known is not None and (task.role != "sweep" or sweep.val_of(known) is not None):
            self._record(task, known, reused=True)
        elif task.key in self.inflight:
            self.inflight[task.key].append(task)
        else:
            self.inflight[task.key] = []
            self.pending.append(task)

    def arrived(self, task: TrialTask, result: TrialResult) -> None:
        """A result from the executor: record it, and hand it to the tasks that waited for its key."""
        # which code trained it, and when (a later run reuses it only for the same code; the run folder
        # adds the setup): on the result itself, so the tasks that share it carry it too
        result.extra.setdefault("code", self.plan.code)
        result.extra.setdefault(
            "finished_at", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        )
        finished = result.status in FINISHED
        if finished:
            self.done[task.key] = result
        waiters = self.inflight.pop(task.key, [])
        self._record(task, result, reused=False)
        for w in waiters:
            if finished:
                self._record(w, result, reused=True)
            else:
                self.inflight[w.key] = []
                self.pending.append(w)

    def _record(self, task: TrialTask, result: TrialResult, reused: bool) -> None:
        r = dataclasses.replace(result, label=task.label, extra=self._extra(task, result, reused))
        self.results[task.index] = (task, r)
        if reused:
            self.reused += 1
        else:
            self.ran += 1
        self.on_record(task, r, reused)
        if task.role == "sweep":
            self._maybe_choose(self.plan.sweep_of(task))

    def _extra(self, task: TrialTask, result: TrialResult, reused: bool) -> dict[str, Any]:
        extra = dict(result.extra)
        extra.update(
            trial_key=task.key,
            role=task.role,
            optimizer_label=task.optimizer_label,
            config_index=task.config_index,
        )
        if self.plan.swept:
            sw = self.plan.sweep_of(task)
            values = sw.swept_values(task.config_index)
            extra["sweep"] = (
                {"config": values, "n_configs": sw.n}
                if task.role == "sweep"
                else {"chosen": values, "n_configs": sw.n}
            )
        if reused:
            extra["reused"] = result.label if result.label != task.label else True
            extra["earlier_run"] = task.key in self.earlier  # or shared within this run (sweep/final)
        return extra

    def _maybe_choose(self, sw: sweep.OptimizerSweep) -> None:
        """Once every sweep trial of ``sw`` is in: choose its configuration and schedule its finals."""
        mine = self.plan.sweep_tasks[sw.index]
        if sw.index in self.choices or not all(t.index in self.results for t in mine):
            return
        by_config: dict[int, list[TrialResult]] = {}
        for t in mine:
            by_config.setdefault(t.config_index, []).append(self.results[t.index][1])
        choice = sweep.select(sw, by_config, self.plan.recipe.sweep.metric)
        self.choices[sw.index] = choice
        score = choice.scores[choice.index]
        acc = f"{score.val_accuracy:.2f}%" if score.val_accuracy is not None else "n/a"
        self.note(f"{sw.label}: chose {sweep.format_values(choice.chosen)} (val acc {acc})")
        for task in self.plan.final_tasks(sw, choice.index):
            self.schedule(task)


def drive(scheduler: Scheduler, executor: Executor, poll: float = 0.2) -> None:
    """Run until every task is recorded: keep the executor's slots full, hand results back."""
    scheduler.start()
    pending = scheduler.pending
    while pending or executor.outstanding:
        while pending and executor.outstanding < executor.slots:
            executor.submit(pending.popleft())
        for task, result in executor.wait(poll):
            scheduler.arrived(task, result)


__all__ = ["Executor", "OnRecord", "Progress", "Scheduler", "drive"]
