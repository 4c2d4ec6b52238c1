"""The honest clock: step recorders that time training and read losses without stalling the device.

A trial's clock counts training only (DESIGN.md section 4). Each recorder keeps the per-step losses,
the training clock at the end of each step (``times``), per-step and per-``optimizer.step()`` durations
and the first diverged step, in *segments*: the trial starts a segment, trains, and ends it (with a
device synchronisation) before it evaluates, so evaluation never lands on the clock.

* :class:`CpuRecorder`: synchronous devices read the loss and ``perf_counter`` every step (microseconds).
* :class:`CudaRecorder`: no host sync per step. Each step copies its loss into pinned host memory with
  ``non_blocking=True`` and records a CUDA event; :meth:`CudaRecorder.poll` reads the steps the GPU has
  finished (``Event.query()`` never blocks) for progress and early divergence, and the segment's end
  reads the rest. Per-step times come from the events, the segment's total from the synced wall clock.
* :class:`DeferredRecorder`: other asynchronous devices (MPS) keep loss tensors and read them at the
  segment's end.

:class:`MemoryMeter` measures the trial's peak memory: the CUDA allocator's peak, or the process RSS
sampled at segment ends on the CPU.
"""

from __future__ import annotations

import os
import time
from collections import deque

import torch

from adacli.analysis.metrics import is_diverged


class CpuRecorder:
    """Synchronous devices: read the loss and ``perf_counter`` every step (both cost microseconds)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.times: list[float] = []
        self.step_s: list[float] = []
        self.opt_s: list[float] = []
        self.base = 0.0
        self.seg_start = self.last = time.perf_counter()
        self.first_bad: int | None = None

    def start_segment(self) -> None:
        self.seg_start = self.last = time.perf_counter()

    def clock(self) -> float:
        return self.base + time.perf_counter() - self.seg_start

    def opt_begin(self) -> float:
        return time.perf_counter()

    def opt_end(self, token: float) -> None:
        self.opt_s.append(time.perf_counter() - token)

    def step_done(self, loss: torch.Tensor) -> None:
        now = time.perf_counter()
        v = loss.item()
        self.losses.append(v)
        self.times.append(self.base + now - self.seg_start)
        self.step_s.append(now - self.last)
        self.last = now
        if self.first_bad is None and is_diverged(v, self.losses[0]):
            self.first_bad = len(self.losses) - 1

    def poll(self) -> None:
        pass

    def latest(self) -> float | None:
        """The newest training loss read so far (None before the first)."""
        return self.losses[-1] if self.losses else None

    def end_segment(self) -> None:
        self.base += time.perf_counter() - self.seg_start


class CudaRecorder:
    """CUDA: losses to pinned memory and CUDA events per step; no host sync until ``end_segment``."""

    CHUNK = 1024

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.losses: list[float] = []
        self.times: list[float] = []
        self.step_s: list[float] = []
        self.opt_s: list[float] = []
        self.base = 0.0
        self.first_bad: int | None = None
        self._chunks: list[torch.Tensor] = []
        self._n = 0  # steps recorded (some not yet read)
        self._ends: list[torch.cuda.Event] = []  # end events of this segment's steps
        self._opts: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._pending: deque[tuple[int, torch.cuda.Event]] = deque()
        self._polled: dict[int, float] = {}
        self._seg_first = 0
        self._initial: float | None = None  # the first step's loss, once read
        self.stream = torch.cuda.current_stream(device)
        self.seg_start_wall = time.perf_counter()
        self.seg_start_ev = self._event()

    def _event(self) -> torch.cuda.Event:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record(self.stream)
        return ev

    def start_segment(self) -> None:
        torch.cuda.synchronize(self.device)
        self._seg_first = self._n
        self._ends, self._opts = [], []
        self.seg_start_ev = self._event()
        self.seg_start_wall = time.perf_counter()

    def clock(self) -> float:
        # Host-side clock (runs ahead of the GPU by the launch queue); only used to decide when a time
        # budget or a time-based evaluation is due. Recorded times come from events and synced walls.
        return self.base + time.perf_counter() - self.seg_start_wall

    def opt_begin(self) -> torch.cuda.Event:
        return self._event()

    def opt_end(self, token: torch.cuda.Event) -> None:
        self._opts.append((token, self._event()))

    def step_done(self, loss: torch.Tensor) -> None:
        i = self._n
        if i // self.CHUNK >= len(self._chunks):
            self._chunks.append(torch.empty(self.CHUNK, dtype=torch.float32, pin_memory=True))
        self._chunks[i // self.CHUNK][i % self.CHUNK].copy_(loss.detach(), non_blocking=True)
        ev = self._event()
        self._ends.append(ev)
        self._pending.append((i, ev))
        self._n += 1

    def _value(self, i: int) -> float:
        return float(self._chunks[i // self.CHUNK][i % self.CHUNK])

    def poll(self) -> None:
        """Read the losses of the steps the GPU has finished (never blocks)."""
        while self._pending and self._pending[0][1].query():
            i, _ = self._pending.popleft()
            v = self._value(i)
            self._polled[i] = v
            if self._initial is None:
                self._initial = v
            if self.first_bad is None and is_diverged(v, self._initial):
                self.first_bad = i

    def latest(self) -> float | None:
        """The newest training loss the GPU has finished (None before the first)."""
        if self._polled:
            return self._polled[max(self._polled)]
        return self.losses[-1] if self.losses else None

    def end_segment(self) -> None:
        torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self.seg_start_wall
        self._pending.clear()
        self._polled.clear()
        prev = self.seg_start_ev
        for i, ev in zip(range(self._seg_first, self._n), self._ends, strict=True):
            v = self._value(i)
            self.losses.append(v)
            if self._initial is None:
                self._initial = v
            self.times.append(self.base + self.seg_start_ev.elapsed_time(ev) / 1e3)
            self.step_s.append(prev.elapsed_time(ev) / 1e3)
            prev = ev
            if self.first_bad is None and is_diverged(v, self.losses[0]):
                self.first_bad = i
        self.opt_s.extend(a.elapsed_time(b) / 1e3 for a, b in self._opts)
        self._ends, self._opts = [], []
        self.base = max(self.base + wall, self.times[-1] if self.times else 0.0)


class DeferredRecorder(CpuRecorder):
    """Other asynchronous devices (MPS): keep loss tensors, synchronise and read them at segment ends."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self._tensors: list[torch.Tensor] = []
        self._host_times: list[float] = []

    def step_done(self, loss: torch.Tensor) -> None:
        self._tensors.append(loss.detach())
        self._host_times.append(time.perf_counter())

    def end_segment(self) -> None:
        if self.device.type == "mps":
            torch.mps.synchronize()
        end = time.perf_counter()
        if self._tensors:
            values = torch.stack(self._tensors).float().cpu().tolist()
            # host enqueue times, with the last step ending when the device really finished
            stamps = [*self._host_times[:-1], end]
            for v, t in zip(values, stamps, strict=True):
                self.losses.append(v)
                self.times.append(self.base + t - self.seg_start)
                self.step_s.append(t - self.last)
                self.last = t
                if self.first_bad is None and is_diverged(v, self.losses[0]):
                    self.first_bad = len(self.losses) - 1
        self._tensors, self._host_times = [], []
        self.base += end - self.seg_start


Recorder = CpuRecorder | CudaRecorder | DeferredRecorder


def recorder(device: torch.device) -> Recorder:
    """The recorder for ``device``: CUDA events, plain reads on the CPU, deferred reads elsewhere."""
    if device.type == "cuda":
        return CudaRecorder(device)
    if device.type == "cpu":
        return CpuRecorder()
    return DeferredRecorder(device)


def rss_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc``), None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class MemoryMeter:
    """Peak memory of a trial above what was in use when it started.

    CUDA: the allocator's peak (reset at the start). Elsewhere: the process RSS, sampled by
    :meth:`sample` at the trial's evaluation points (reading it every step would cost a file read).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mem0 = 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.mem0 = torch.cuda.memory_allocated(device)
        self.rss0 = rss_bytes()
        self.rss_peak = self.rss0

    def sample(self) -> None:
        if self.rss0 is not None:
            self.rss_peak = max(self.rss_peak or 0, rss_bytes() or 0)

    def peak_growth(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device) - self.mem0)
        if self.rss0 is not None and self.rss_peak is not None:
            return max(0, self.rss_peak - self.rss0)
        return None
