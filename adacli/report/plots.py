"""The run's plots as PNG bytes: ``curves.png`` (and the figure-to-PNG step the other plots share).

Rendering returns bytes and writes nothing: the run folder's store writes them (atomically, like every
file). matplotlib's object API on the Agg canvas only: no GUI backend or global pyplot state is touched.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from adacli.results import EvalPoint, Target, TrialResult

#: line styles and markers cycled per label, so that optimizers whose curves coincide stay distinguishable
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def series_style(i: int, n_points: int, n_series: int = 1) -> dict[str, Any]:
    """Colour, line style and marker of series ``i``: optimizers whose curves coincide (adam and adamw
    with a tiny weight decay) stay distinguishable. Markers sit every ``n_points / 8`` points, shifted per
    series so that coinciding curves do not hide each other's markers."""
    every = max(1, n_points // 8)
    offset = (i * every // max(1, n_series)) % every
    return {
        "color": f"C{i % 10}",
        "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
        "marker": MARKERS[i % len(MARKERS)],
        "markersize": 4,
        "markevery": (offset, every),
    }


def figure_png(fig: Any) -> bytes:
    """A matplotlib Figure (on an Agg canvas) as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _aligned(rows: list[list[float]]) -> tuple[Any, Any, Any]:
    """Mean, min and max over seeds, step by step, over the steps every seed has (common length).

    Seeds are aligned by step rather than interpolated in time: with a step budget every seed has the
    same steps, and with a time budget the tail that only some seeds reached would make the mean jump.
    """
    import numpy as np

    n = min(len(r) for r in rows)
    m = np.asarray([r[:n] for r in rows], dtype=float)
    return m.mean(axis=0), m.min(axis=0), m.max(axis=0)


def _common_evals(trials: Sequence[TrialResult]) -> list[list[EvalPoint]]:
    """Each trial's evaluations at the steps that every trial evaluated, in step order."""
    steps = set.intersection(*({e.step for e in t.evals} for t in trials))
    return [sorted((e for e in t.evals if e.step in steps), key=lambda e: e.step) for t in trials]


def curves_png(trials: Sequence[TrialResult], *, target: Target | None = None) -> bytes:
    """``curves.png``: smoothed training loss and test accuracy against steps and against seconds.

    One colour, line style and marker per optimizer label (:func:`series_style`). The line is the mean over
    its seeds and the shaded band spans their min..max (with 2-5 seeds a std band says little); seeds are
    aligned by step, and on the time axes a point sits at the seeds' mean training clock for that step. The
    seeds drawn are the finished, non-diverged ones (diverged losses would swamp the scale; they are counted
    in the legend), or the non-diverged ones of any status when none finished. The loss axes are logarithmic
    and show the target as a dashed line. Uses the Agg canvas directly: no GUI backend or global pyplot state
    is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from adacli.analysis.metrics import smooth_losses, trial_diverged, usable

    groups: dict[str, list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(t.label, []).append(t)

    fig = Figure(figsize=(12, 8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    (ax_ls, ax_lt), (ax_as, ax_at) = axes
    any_loss = False

    def draw(ax: Any, x: Any, band: tuple[Any, Any, Any], i: int, name: str) -> None:
        mean, lo, hi = band
        style = series_style(i, len(mean), len(groups))
        ax.plot(x, mean, label=name, **style)
        ax.fill_between(x, lo, hi, color=style["color"], alpha=0.2, linewidth=0)

    for i, (label, group) in enumerate(groups.items()):
        good = [t for t in group if usable(t)] or [t for t in group if t.losses and not trial_diverged(t)]
        n_div = sum(trial_diverged(t) for t in group)
        name = label + (f" ({n_div} diverged)" if n_div else "")
        if not good:
            ax_ls.plot([], [], label=name, **series_style(i, 1, len(groups)))
            continue
        sm = _aligned([smooth_losses(t.losses) for t in good])
        n = len(sm[0])
        draw(ax_ls, range(1, n + 1), sm, i, name)
        any_loss = True
        if all(len(t.times) >= n for t in good):
            t_mean = _aligned([t.times[:n] for t in good])[0]
            draw(ax_lt, t_mean, sm, i, name)
        if all(t.evals for t in good):
            evals = _common_evals(good)
            if evals[0]:
                acc = _aligned([[e.test_accuracy for e in ev] for ev in evals])
                steps = [e.step for e in evals[0]]
                secs = _aligned([[e.seconds for e in ev] for ev in evals])[0]
                draw(ax_as, steps, acc, i, name)
                draw(ax_at, secs, acc, i, name)

    for ax in (ax_ls, ax_lt):
        if any_loss:
            ax.set_yscale("log")
        if target is not None and target.value is not None and target.value > 0:
            ax.axhline(target.value, color="0.4", linestyle="--", linewidth=1, label="target")
        ax.set_ylabel("training loss (smoothed)")
    ax_ls.set_xlabel("step")
    ax_as.set_xlabel("step")
    ax_lt.set_xlabel("training seconds")
    ax_at.set_xlabel("training seconds")
    ax_as.set_ylabel("test accuracy (%)")
    ax_at.set_ylabel("test accuracy (%)")
    ax_ls.set_title("training loss vs steps")
    ax_lt.set_title("training loss vs time")
    ax_as.set_title("test accuracy vs steps")
    ax_at.set_title("test accuracy vs time")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    if ax_ls.get_legend_handles_labels()[0]:
        ax_ls.legend(fontsize="small")
    fig.suptitle("mean over seeds (aligned by step); band = min..max over seeds", fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


__all__ = ["LINE_STYLES", "MARKERS", "curves_png", "figure_png"]
