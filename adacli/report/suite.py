"""Presentation of a suite: the cross-workload table, the time-to-target table and ``profiles.png``.

Reads only the suite's ``results.json`` dictionary (:mod:`adacli.app.suite` builds it), so the same functions
render a fresh run and a saved one.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from adacli.analysis import numfmt
from adacli.report.plots import figure_png, series_style


def _wtl(results: dict[str, Any], label: str, ref: str) -> str:
    if label == ref:
        return "–"
    return wtl_text(results["wins"][label][ref])


def wtl_text(c: dict[str, int]) -> str:
    """``2/1/0/2``: wins / ties / losses / undecided, and ``(1 untested)`` when a workload had one seed."""
    text = "/".join(str(c.get(k, 0)) for k in ("win", "tie", "loss", "undecided"))
    return text + (f" ({c['untested']} untested)" if c.get("untested") else "")


def suite_table(results: dict[str, Any], title: str | None = None) -> Table:
    """One row per optimizer: profile score, speed-up vs the reference, mean rank, W/T/L vs the reference."""
    ref = results["reference"]
    n = results.get("n_workloads", 0)
    unit = results["measure"]
    table = Table(
        title=title or f"{results['name']}: {n} workload(s)", title_justify="left", caption_justify="left"
    )
    table.add_column("optimizer", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column(f"speed-up vs {ref}", justify="right")
    table.add_column("mean rank", justify="right")
    table.add_column(f"W/T/L/U vs {ref}", justify="right")
    table.add_column("reached", justify="right")
    best_score = max(results["scores"].values(), default=None)
    for label in results["labels"]:
        sp = results["speedups"].get(label)
        reached = sum((w.get("times") or {}).get(label) is not None for w in results["workloads"])
        score = results["scores"][label]
        table.add_row(
            Text(label + (" (ref)" if label == ref else "")),
            Text(numfmt.fixed(score, 3), style="bold green" if score == best_score else ""),
            f"{numfmt.fixed(sp, 2)}×" if sp is not None else "–",
            numfmt.fixed(results["ranks"][label], 2),
            _wtl(results, label, ref),
            f"{reached}/{n}",
        )
    table.caption = (
        f"AlgoPerf's scoring: time = median {unit} to each workload's target over seeds (a miss counts as "
        "never); score = area under the performance profile over tau in [1, 4] / 3 (1 = fastest "
        f"everywhere); speed-up = geometric mean over every workload of t({ref}) / t, a miss counting as "
        "budget + 1; reached = workloads with a median time; rank 1 = fastest; "
        f"W/T/L/U = workloads faster / equivalent within 5 % / slower than {ref} / undecided, paired by seed "
        "(one family per workload, simultaneous 95% intervals; untested: one seed)"
    )
    return table


def times_table(results: dict[str, Any]) -> Table:
    """Workloads x optimizers: time to target and its ratio to the workload's best (the profile's input)."""
    unit = results["measure"]
    table = Table(
        title=f"time to target ({unit}, median over seeds) and ratio to the best", title_justify="left"
    )
    table.add_column("workload", no_wrap=True)
    for label in results["labels"]:
        table.add_column(label, justify="right")
    fmt = ".0f" if unit == "steps" else ".3g"
    for w in results["workloads"]:
        times = w.get("times")
        if times is None:
            table.add_row(w["name"], *[f"({w['status']})"] * len(results["labels"]))
            continue
        finite = [t for t in times.values() if t is not None]
        best = min(finite) if finite else None
        cells = []
        for label in results["labels"]:
            t = times.get(label)
            if t is None:
                cells.append(Text("never", style="red"))
            else:
                ratio = t / best if best else 1.0
                cells.append(Text(f"{t:{fmt}} ({ratio:.2f})", style="bold green" if ratio == 1.0 else ""))
        table.add_row(w["name"], *cells)
    return table


def wins_matrix(results: dict[str, Any]) -> Table:
    """Every pair: wins/ties/losses of the row against the column, over the workloads."""
    labels = results["labels"]
    table = Table(title="win/tie/loss/undecided (row vs column, over workloads)", title_justify="left")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for a in labels:
        row = ["–" if a == b else wtl_text(results["wins"][a][b]) for b in labels]
        table.add_row(a, *row)
    return table


def profiles_png(results: dict[str, Any]) -> bytes:
    """Draw ``profiles.png``: rho(tau) per optimizer, a step function per label, score in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    prof = results["profiles"]
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    curves = prof["curves"]
    for i, (label, curve) in enumerate(curves.items()):  # equal profiles stay visible (series_style)
        score = numfmt.fixed(results["scores"][label], 3)
        style = series_style(i, len(curve), len(curves))
        ax.step(prof["taus"], curve, where="post", linewidth=1.8, label=f"{label} (score {score})", **style)
    ax.set_xlim(1.0, prof["taus"][-1])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau (time to target within tau x the best, {prof['measure']})")
    ax.set_ylabel("fraction of workloads")
    ax.set_title(f"{results['name']}: performance profiles over {results.get('n_workloads', 0)} workloads")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


__all__ = ["profiles_png", "suite_table", "times_table", "wins_matrix"]
