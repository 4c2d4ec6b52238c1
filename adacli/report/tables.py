"""The terminal's tables of a run: one row per optimizer label, the verdict's marks and captions.

This module formats what :mod:`adacli.analysis` computed (summaries, the statistics stage's verdict); it
computes, reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from adacli.results import OptimizerSummary, Stat, Target

# --- formatting ------------------------------------------------------------------------------------


def format_stat(s: Stat, fmt: str = ".2f", unit: str = "") -> str:
    """``mean ± std`` (just ``mean`` for one seed), or ``–`` when no seed has a value."""
    if s.mean is None:
        return "–"
    if s.n > 1 and s.std is not None:
        return f"{s.mean:{fmt}} ± {s.std:{fmt}}{unit}"
    return f"{s.mean:{fmt}}{unit}"


def format_bytes(n: int | None) -> str:
    """Human-readable byte count (KiB/MiB/GiB)."""
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _reached(s: OptimizerSummary) -> str:
    return f"{s.steps_to_target.n}/{s.n_trials}"


def _to_target_cell(s: OptimizerSummary, stat_: Stat, fmt: str) -> str:
    """Steps/seconds-to-target with the reached fraction; ``>budget`` when no trial reached it."""
    if stat_.mean is None:
        return f">budget ({_reached(s)})"
    cell = format_stat(stat_, fmt)
    if stat_.n < s.n_trials:
        cell += f" ({_reached(s)})"
    return cell


# The table's value columns: header, OptimizerSummary field, number format, better ("max"/"min"), and
# whether the cell shows "± std" (left out where it rarely matters, to keep the table narrow; the JSON and
# CSV files always have it).
COLUMNS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("test acc %", "final_test_accuracy", ".1f", "max", True),
    ("best acc %", "best_test_accuracy", ".1f", "max", True),
    ("gap pts", "generalization_gap", ".1f", "min", True),
    ("loss gap", "loss_gap", ".3f", "min", False),
    ("steps to target", "steps_to_target", ".0f", "min", True),
    ("secs to target", "seconds_to_target", ".2f", "min", True),
    ("mean loss", "mean_train_loss", ".3f", "min", True),
    ("step ms", "step_time_ms", ".2f", "min", False),
    ("opt.step ms", "optimizer_step_ms", ".2f", "min", False),
    ("state", "state_bytes", "", "min", False),
)
_TO_TARGET = {"steps_to_target", "seconds_to_target"}


def _cell(s: OptimizerSummary, name: str, fmt: str, with_std: bool) -> str:
    if name == "state_bytes":
        return format_bytes(s.state_bytes)
    st: Stat = getattr(s, name)
    if not with_std:
        st = Stat(mean=st.mean, std=None, n=st.n)
    if name in _TO_TARGET:
        return _to_target_cell(s, st, fmt)
    return format_stat(st, fmt)


def _rank_key(s: OptimizerSummary, name: str, better: str) -> Any:
    """Smaller is better; None = no value (never best)."""
    if name == "state_bytes":
        return s.state_bytes
    st: Stat = getattr(s, name)
    if st.mean is None:
        return None
    if name in _TO_TARGET:
        # More seeds reaching the target beats fewer; then fewer steps/seconds.
        return (-st.n / max(s.n_trials, 1), st.mean)
    return -st.mean if better == "max" else st.mean


def best_rows(summaries: Sequence[OptimizerSummary]) -> dict[str, set[int]]:
    """For each column header, the indices of the rows holding the best value (ties all win).

    Best = highest accuracy; lowest gap, loss gap, training loss, time and state; for the to-target
    columns, the most seeds reaching the target first, then the fewest steps/seconds. A column where every
    row with a value ties (or a table with a single row) has no best.
    """
    out: dict[str, set[int]] = {}
    if len(summaries) < 2:
        return out
    for header, name, _fmt, better, _std in COLUMNS:
        keys = [(i, _rank_key(s, name, better)) for i, s in enumerate(summaries)]
        keys = [(i, k) for i, k in keys if k is not None]
        if not keys:
            continue
        best = min(k for _, k in keys)
        winners = {i for i, k in keys if k == best}
        if len(winners) < len(keys):  # when every row ties, nothing stands out
            out[header] = winners
    return out


def summary_table(
    summaries: Sequence[OptimizerSummary],
    target: Target | None,
    title: str | None = None,
    verdict: Any = None,
) -> Table:
    """One row per optimizer label: the figures of DESIGN.md section 4, mean ± std over seeds.

    With a ``verdict`` (:class:`adacli.analysis.verdict.Verdict`) a cell is bold green when its row is not
    significantly worse than the best (paired by seed, Holm-adjusted), so ties show as ties, and a
    reference adds a "Δ vs <ref>" column; without one, the best value of each column is bold green. The
    caption states the target, the seed counts and how to read the marks, so the table can be read
    without the docs.
    """
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.add_column("optimizer", no_wrap=True)
    ref = verdict.reference if verdict is not None else None
    for header, *_ in COLUMNS:
        table.add_column(header, justify="right")
        if header == "test acc %" and ref is not None:
            table.add_column(f"Δ vs {ref}", justify="right", no_wrap=True)
    best = best_rows(summaries) if verdict is None else verdict_best_rows(summaries, verdict)
    for i, s in enumerate(summaries):
        label = Text(s.optimizer)
        label.append(f" ×{s.n_trials}" if s.n_trials != 1 else "", style="dim")
        if s.n_diverged:
            label.append(f" ({s.n_diverged} diverged)", style="red")
        if s.n_failed:
            label.append(f" ({s.n_failed} failed)", style="red")
        cells: list[Text] = [label]
        for header, name, fmt, _better, with_std in COLUMNS:
            style = "bold green" if i in best.get(header, set()) else ""
            cells.append(Text(_cell(s, name, fmt, with_std), style=style))
            if header == "test acc %" and ref is not None:
                cells.append(Text(delta_cell(verdict, s.optimizer, ref)))
        table.add_row(*cells)
    caption = [target.description if target is not None else "target: none"]
    caption.append(
        "mean ± std over seeds (diverged trials excluded from the means); gap = train-eval − test accuracy; "
        "to target: first step (training seconds) where the smoothed loss reaches the target, "
        "(k/n) = seeds that reached it, >budget = none did"
        + ("; best per column in bold green" if verdict is None else "")
    )
    if verdict is not None:
        caption += verdict_caption(verdict, len(summaries))
    table.caption = Text("\n".join(caption))
    return table


def verdict_best_rows(summaries: Sequence[OptimizerSummary], verdict: Any) -> dict[str, set[int]]:
    """For each column header, the rows in the verdict's best set of that metric (not significantly
    worse than the best). A column whose every row is in the best set has no mark (nothing stands out);
    the state column, which does not vary by seed, keeps the smallest value."""
    out: dict[str, set[int]] = {}
    if len(summaries) < 2:
        return out
    raw = best_rows(summaries)
    for header, name, *_ in COLUMNS:
        if name not in verdict.best:
            if header in raw:
                out[header] = raw[header]
            continue
        labels = set(verdict.best[name])
        rows = {i for i, s in enumerate(summaries) if s.optimizer in labels}
        if rows and len(rows) < len(summaries):
            out[header] = rows
    return out


def _signed(x: float) -> str:
    return f"{x:+.1f}" if abs(x) >= 0.05 else "0.0"


def delta_cell(verdict: Any, label: str, reference: str) -> str:
    """``+1.2 [+0.4, +2.0] *``: the mean paired difference in test accuracy of ``label`` minus the
    reference (points) with its 95% CI, ``*`` when significant (Holm-adjusted)."""
    if label == reference:
        return "ref"
    r = verdict.pair("final_test_accuracy", label, reference)
    if r is None or r.mean_diff is None:
        return "–"
    if r.test == "identical":
        return "identical"
    cell = _signed(r.mean_diff)
    if r.ci95 is not None:
        cell += f" [{_signed(r.ci95[0])}, {_signed(r.ci95[1])}]"
    return cell + (" *" if r.significant else "")


def verdict_caption(verdict: Any, n_rows: int) -> list[str]:
    """The caption lines that explain the verdict's marks, plus the power line when there is one."""
    lines: list[str] = []
    if n_rows > 1 and not verdict.has_verdict:
        lines.append("one seed: no verdict, only values (no row is marked best)")
    elif n_rows > 1:
        lines.append(
            "bold green: not significantly worse than the best (paired t-test over seeds, Holm-adjusted, "
            "α = 0.05); several rows may share it, none are marked when all do"
        )
    if verdict.reference is not None:
        lines.append(
            f"Δ vs {verdict.reference}: mean paired difference in test accuracy, row − {verdict.reference} "
            "(points) [95% CI of that pair]; * = significant after Holm's adjustment over every pair"
        )
    if verdict.power is not None:
        lines.append(str(verdict.power.get("text", "")))
    return lines
