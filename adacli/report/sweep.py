"""Presentation of a sweep: the chosen-configuration table and the learning-rate sensitivity plot.

Everything here reads the ``sweep`` record of ``results.json`` (a plain dict, written by
:mod:`adacli.run.save`), so ``adacli report`` can redraw it from a run folder without re-running anything.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from adacli.report.plots import figure_png


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


def _axis_text(values: list[Any]) -> str:
    if len(values) > 4 and all(isinstance(v, (int, float)) for v in values):
        return f"{_fmt(values[0])} … {_fmt(values[-1])} ({len(values)})"
    return ", ".join(_fmt(v) for v in values)


def sweep_table(info: dict[str, Any], title: str | None = None) -> Table:
    """One row per optimizer: configurations tried, swept values, the chosen values and their val figures."""
    metric = "val accuracy" if info.get("metric") == "val_accuracy" else "val loss"
    tie = "val loss" if info.get("metric") == "val_accuracy" else "val accuracy"
    table = Table(title=title or "sweep: chosen configurations", title_justify="left", caption_justify="left")
    table.add_column("optimizer", no_wrap=True)
    table.add_column("configs", justify="right")
    table.add_column("swept")
    table.add_column("chosen", style="bold")
    table.add_column("val acc %", justify="right")
    table.add_column("val loss", justify="right")
    differ = bool(info.get("budgets_differ"))
    for opt in info.get("optimizers", []):
        label = Text(opt["label"])
        configs = Text(str(opt["n_configs"]))
        if differ:
            configs.stylize("yellow")
        swept = "; ".join(f"{k}: {_axis_text(v)}" for k, v in (opt.get("axes") or {}).items()) or "–"
        chosen = opt.get("chosen")
        chosen_text = Text(", ".join(f"{k}={_fmt(v)}" for k, v in chosen.items()) if chosen else "–")
        if chosen is None:
            chosen_text = Text("(not selected yet)", style="dim")
        if opt.get("note"):
            chosen_text.append(f" ({opt['note']})", style="red")
        acc = opt.get("val_accuracy")
        loss = opt.get("val_loss")
        table.add_row(
            label,
            configs,
            swept,
            chosen_text,
            "–" if acc is None else f"{acc:.2f}",
            "–" if loss is None else f"{loss:.4f}",
        )
    seeds = info.get("selection_seeds") or []
    caption = [
        f"selected on the val split ({info.get('val_size')} images held out of train; the test split is "
        f"never used) by final {metric}, ties by {tie}, on seed{'s' if len(seeds) != 1 else ''} "
        f"{', '.join(str(s) for s in seeds)}; the chosen configuration then runs on every seed "
        f"({', '.join(str(s) for s in info.get('seeds', []))}) and the table below summarizes those runs"
    ]
    if differ:
        counts = ", ".join(f"{o['label']} {o['n_configs']}" for o in info.get("optimizers", []))
        caption.append(f"[yellow]tuning budgets differ ({counts} configurations): equal_budget is false[/]")
    table.caption = "\n".join(caption)
    return table


def lr_sensitivity_png(info: dict[str, Any]) -> bytes | None:
    """``lr_sensitivity.png``: the selection metric (val, mean over selection seeds) against the learning
    rate, one line per optimizer, the chosen point starred. Where other hyperparameters are swept too,
    each lr shows its best configuration. Optimizers with a fixed lr appear as a single point. None (nothing
    drawn) when no optimizer sweeps ``lr``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    opts = info.get("optimizers", [])
    if not any("lr" in (o.get("axes") or {}) for o in opts):
        return None
    by_acc = info.get("metric") == "val_accuracy"
    key = "val_accuracy" if by_acc else "val_loss"
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, o in enumerate(opts):
        colour = f"C{i % 10}"
        best: dict[float, float] = {}
        failed = 0
        for c in o.get("configs", []):
            lr = (c.get("hparams") or {}).get("lr", (o.get("fixed") or {}).get("lr"))
            v = c.get(key)
            if not isinstance(lr, (int, float)):
                continue
            if v is None or not math.isfinite(v):
                failed += 1
                continue
            if lr not in best or (v > best[lr] if by_acc else v < best[lr]):
                best[float(lr)] = float(v)
        name = o["label"] + (f" ({failed} diverged/failed)" if failed else "")
        xs = sorted(best)
        if not xs:
            ax.plot([], [], color=colour, label=name)
            continue
        ax.plot(xs, [best[x] for x in xs], color=colour, marker="o", markersize=4, label=name)
        chosen = o.get("chosen") or {}
        lr = chosen.get("lr", (o.get("fixed") or {}).get("lr"))
        if isinstance(lr, (int, float)) and float(lr) in best:
            ax.plot([float(lr)], [best[float(lr)]], color=colour, marker="*", markersize=14, linestyle="none")
    ax.set_xscale("log")
    if not by_acc:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(("final val accuracy (%)" if by_acc else "final val loss") + ", mean over selection seeds")
    ax.set_title("learning-rate sensitivity (★ = chosen)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return figure_png(fig)


__all__ = ["lr_sensitivity_png", "sweep_table"]
