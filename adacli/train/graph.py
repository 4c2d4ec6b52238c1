"""Whole-step CUDA graphs (``model.compile: graph``): forward, backward and ``optimizer.step()``
captured once and replayed per training step.

On small models a GPU step is mostly launch overhead; one graph replay per step removes it. The
capture bakes in every host-side value, so only steps that keep their state on the device can be
captured (:func:`graph_problem` says why not, and the trial then runs eagerly after a one-line note).
The captured step is the eager one (:func:`adacli.train.step.forward_loss` and
:func:`~adacli.train.step.backward_step`), with gradients zeroed in place instead of set to None.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import torch
from torch import nn

from adacli.train.step import autocast_for, backward_step, forward_loss

#: optimizers whose ``step()`` can be captured (with ``capturable=True`` where they have it)
GRAPH_OPTIMIZERS = (
    "adacli.optim.adabelief.AdaBelief",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.sgd.SGD",
)
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuDNN/cuBLAS workspaces, lazy state)
_notes_shown: set[str] = set()


def graph_problem(opt: torch.optim.Optimizer, device: torch.device, precision: str) -> str | None:
    """Why a trial cannot run as one CUDA graph per step, or None when it can.

    The capture bakes in every host-side value, so the step must not read the GPU (fp16's loss scaler
    does) and the optimizer must keep its step-dependent values on the device: adacli's AdaBelief and
    torch's Adam/AdamW with ``capturable=True``, and SGD (no step count; ``dampening`` 0, because a
    captured SGD cannot take its first-step branch). A user's class may do anything on the host.
    """
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device (this trial runs on {device.type})"
    if precision == "fp16":
        return "fp16 loss scaling reads the GPU every step"
    cls = type(opt)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in GRAPH_OPTIMIZERS:
        return f"{name} is not known to be capturable (AdaBelief, torch Adam/AdamW/SGD are)"
    if isinstance(opt, torch.optim.SGD) and any(g.get("dampening", 0) for g in opt.param_groups):
        return "SGD with dampening > 0 takes a first-step branch a captured step cannot"
    return None


def make_capturable(opt: torch.optim.Optimizer, device: torch.device, scheduled: bool) -> None:
    """Switch a fresh optimizer (no state yet) to its capturable form before its first step.

    ``capturable=True`` keeps step counters on the device; with a schedule the lr becomes a device tensor,
    which torch's LR schedulers update in place (``fill_``) and every replay reads. torch's foreach SGD
    reads a Tensor lr on the host, so a scheduled SGD takes its fused path (the same update).
    """
    for group in opt.param_groups:
        if "capturable" in group:
            group["capturable"] = True
        if scheduled:
            if isinstance(opt, torch.optim.SGD):
                group["foreach"], group["fused"] = False, True
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


#: Whether whole-step capture has passed ``benchmarks/gpu_check.sh`` on a real GPU. It was written after the
#: last GPU was available and has only been checked without one (the decisions, the eager fallback): until
#: a device confirms it, ``model.compile: graph`` stays opt-in and each process that captures says so once.
#: Set to True in the commit that records a passing run (docs/gpu.md).
GRAPH_CAPTURE_VERIFIED = False


def unverified_note(device: torch.device) -> str | None:
    """The one-line note a trial prints (once per process) before it captures on an unverified GPU."""
    if device.type != "cuda" or GRAPH_CAPTURE_VERIFIED:
        return None
    return (
        "model.compile: graph: whole-step CUDA graph capture has not yet passed benchmarks/gpu_check.sh "
        "on a GPU (unverified); model.compile: false runs the eager steps"
    )


def note_once(text: str) -> None:
    """A one-line note on stderr, once per process per text (a run has many trials)."""
    if text not in _notes_shown:
        _notes_shown.add(text)
        print(f"note: {text}", file=sys.stderr, flush=True)


class GraphedStep:
    """Forward, backward and ``optimizer.step()`` captured once, replayed per training step.

    Built by :meth:`capture`: a few eager steps on a side stream (as torch's whole-network capture
    recipe does), the capture, then the model and optimizer put back to where they were before, in
    place (the graph holds their addresses), so the trial starts from the seed's initial weights and a
    fresh optimizer state, as the eager loop does. Gradients are zeroed inside the graph (not set to
    None), so they keep one address from the warm-up on and the fused AdaBelief's address table built
    then is reused inside the capture.
    """

    def __init__(self, graph: Any, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        self.graph, self.x, self.y, self.loss = graph, x, y, loss

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One training step on batch ``(x, y)``; returns the (static) loss tensor, not yet read."""
        self.x.copy_(x)
        self.y.copy_(y)
        self.graph.replay()
        return self.loss

    @classmethod
    def capture(
        cls,
        net: nn.Module,
        opt: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        device: torch.device,
        precision: str,
        channels_last: bool,
    ) -> GraphedStep:
        """Capture one step of ``net`` and ``opt`` on a batch of the training shape ``(x, y)``."""
        autocast = autocast_for(device, precision)
        fmt = torch.channels_last if channels_last and x.dim() == 4 else torch.contiguous_format
        static_x, static_y = x.contiguous(memory_format=fmt).clone(memory_format=fmt), y.clone()
        saved = {k: v.detach().clone() for k, v in net.state_dict().items()}

        def train_step() -> torch.Tensor:  # the eager step's forward and backward; grads zeroed in place
            opt.zero_grad(set_to_none=False)
            loss = forward_loss(net, static_x, static_y, autocast, channels_last=False)  # x laid out above
            backward_step(loss, opt, None)
            return loss

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), warnings.catch_warnings():
            # torch warns once that a capturable optimizer stepped outside a capture: that is this warm-up
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(GRAPH_WARMUP_STEPS):
                train_step()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_loss = train_step()
        with torch.no_grad():  # undo the warm-up, in place
            for k, v in net.state_dict().items():
                v.copy_(saved[k])
            for state in opt.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()
        torch.cuda.synchronize(device)
        return cls(graph, static_x, static_y, static_loss)
