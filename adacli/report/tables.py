"""The terminal's tables of a run: one row per optimizer label, the verdict's marks and captions.

This module formats what :mod:`adacli.analysis` computed (summaries, the statistics stage's verdict); it
computes, reads and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from adacli.analysis import numfmt
from adacli.results import OptimizerSummary, Stat, Target

# --- formatting ------------------------------------------------------------------------------------


def format_stat(s: Stat, fmt: str | None = None, unit: str = "") -> str:
    """``mean ± std`` (just ``mean`` for one seed), or ``–`` when no seed has a value: the mean with 3
    significant digits (:mod:`adacli.analysis.numfmt`), the std with the same decimals. ``fmt`` (a format
    spec such as ``.0f``) fixes the decimals instead."""
    if s.mean is None:
        return numfmt.MISSING
    fixed = fmt is not None and fmt.startswith(".") and fmt.endswith("f")
    d = int(fmt[1:-1]) if fixed else numfmt.decimals_for(s.mean, 3)  # type: ignore[index]
    text = numfmt.fixed(s.mean, d)
    if s.n > 1 and s.std is not None:
        text += f" ± {numfmt.fixed(s.std, d)}"
    return text + unit


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


def _to_target_cell(s: OptimizerSummary, stat_: Stat, fmt: str | None) -> str:
    """Steps/seconds-to-target with the reached fraction; ``>budget`` when no trial reached it."""
    if stat_.mean is None:
        return f">budget ({_reached(s)})"
    cell = format_stat(stat_, fmt)
    if stat_.n < s.n_trials:
        cell += f" ({_reached(s)})"
    return cell


# The table's value columns: header, OptimizerSummary field, decimals (None: 3 significant digits),
# better ("max"/"min"), whether the cell shows "± std" (left out where it rarely matters; the JSON and CSV
# files always have it) and whether the default (narrow, <= 100 columns) table shows it (--wide: all).
COLUMNS: tuple[tuple[str, str, str | None, str, bool, bool], ...] = (
    ("test acc %", "final_test_accuracy", ".1f", "max", True, True),
    ("best acc %", "best_test_accuracy", ".1f", "max", True, False),
    ("gap pts", "generalization_gap", ".1f", "min", True, False),
    ("loss gap", "loss_gap", None, "min", False, False),
    ("steps to target", "steps_to_target", ".0f", "min", True, True),
    ("secs to target", "seconds_to_target", None, "min", True, False),
    ("mean loss", "mean_train_loss", None, "min", True, False),
    ("final loss", "final_train_loss", None, "min", False, False),
    ("step ms", "step_time_ms", None, "min", False, True),
    ("opt.step ms", "optimizer_step_ms", None, "min", False, False),
    ("state", "state_bytes", "", "min", False, False),
)
_TO_TARGET = {"steps_to_target", "seconds_to_target"}


def _cell(s: OptimizerSummary, name: str, fmt: str | None, with_std: bool) -> str:
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
    if name in _TO_TARGET and st.mean is None and s.n_trials:
        return (0.0, math.inf)  # never reached: behind every row that did
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
    for header, name, _fmt, better, _std, _narrow in COLUMNS:
        keys = [(i, _rank_key(s, name, better)) for i, s in enumerate(summaries)]
        keys = [(i, k) for i, k in keys if k is not None]
        if not keys:
            continue
        best = min(k for _, k in keys)
        winners = {i for i, k in keys if k == best}
        if len(winners) < len(keys):  # when every row ties, nothing stands out
            out[header] = winners
    return out


def _columns(verdict: Any, wide: bool) -> list[tuple[str, str, str | None, str, bool, bool]]:
    """The columns shown: every one with ``wide``, else the narrow set (the primary metric's column
    always, whichever it is)."""
    primary = getattr(verdict, "primary", "final_test_accuracy")
    return [c for c in COLUMNS if wide or c[5] or c[1] == primary]


def summary_table(
    summaries: Sequence[OptimizerSummary],
    target: Target | None,
    title: str | None = None,
    verdict: Any = None,
    *,
    wide: bool = False,
) -> Table:
    """One row per optimizer label: the figures of DESIGN.md section 4, mean ± std over seeds.

    With a ``verdict`` (:class:`adacli.analysis.verdict.Verdict`) a cell is bold green when its row is best
    (decided not worse than any other, see the verdict), and a reference adds "Δ vs <ref>" (the primary
    metric's paired difference with its simultaneous interval) and "vs <ref>" (the outcome); without
    one, the best value of each column is bold green. The default table keeps to about 100 columns
    (primary metric, Δ, outcome, steps to target, step time); ``wide`` shows every column. The caption
    states the target, the families and how to read the marks, so the table reads without the docs.
    """
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.add_column("optimizer", no_wrap=True)
    ref = verdict.reference if verdict is not None else None
    primary = getattr(verdict, "primary", "final_test_accuracy")
    columns = _columns(verdict, wide)
    for header, name, *_ in columns:
        table.add_column(header, justify="right")
        if name == primary and ref is not None:
            table.add_column(f"Δ vs {ref}", justify="right", no_wrap=True)
            table.add_column(f"vs {ref}", justify="left", no_wrap=True)
    best = best_rows(summaries) if verdict is None else verdict_best_rows(summaries, verdict)
    for i, s in enumerate(summaries):
        cells: list[Text] = [_label_cell(s)]
        for header, name, fmt, _better, with_std, _narrow in columns:
            style = "bold green" if i in best.get(header, set()) else ""
            cells.append(Text(_cell(s, name, fmt, with_std), style=style))
            if name == primary and ref is not None:
                cells.append(Text(delta_cell(verdict, s.optimizer, ref)))
                cells.append(Text(outcome_cell(verdict, s.optimizer, ref)))
        table.add_row(*cells)
    caption = [target.description if target is not None else "target: none"]
    plain = "; best per column in bold green" if verdict is None else ""
    caption.append(
        "mean ± std over seeds (diverged trials excluded); to target: first step where the smoothed loss "
        f"reaches it, (k/n) = seeds that did, >budget = none{plain}"
    )
    if verdict is not None:
        caption += verdict_caption(verdict, len(summaries))
    table.caption = Text("\n".join(caption))
    return table


def _label_cell(s: OptimizerSummary) -> Text:
    label = Text(s.optimizer)
    label.append(f" ×{s.n_trials}" if s.n_trials != 1 else "", style="dim")
    if s.n_diverged:
        label.append(f" ({s.n_diverged} diverged)", style="red")
    if s.n_failed:
        label.append(f" ({s.n_failed} failed)", style="red")
    return label


def verdict_best_rows(summaries: Sequence[OptimizerSummary], verdict: Any) -> dict[str, set[int]]:
    """For each column header, the rows in the verdict's best set of that metric. A column whose every
    row is best has no mark (nothing stands out); the state column, which does not vary by seed, marks
    the smallest value when it belongs to a label best in the primary metric (best is a recommendation)."""
    out: dict[str, set[int]] = {}
    if len(summaries) < 2:
        return out
    raw = best_rows(summaries)
    top = verdict.top() if hasattr(verdict, "top") else set()
    for header, name, *_ in COLUMNS:
        if name not in verdict.best:
            rows = {i for i in raw.get(header, set()) if summaries[i].optimizer in top}
            if rows:
                out[header] = rows
            continue
        labels = set(verdict.best[name])
        rows = {i for i, s in enumerate(summaries) if s.optimizer in labels}
        if rows and len(rows) < len(summaries):
            out[header] = rows
    return out


def delta_cell(verdict: Any, label: str, reference: str) -> str:
    """``-0.5 [-2.9, +1.9]``: the primary metric's paired difference of ``label`` minus the reference
    (``×0.81 [0.70, 0.95]`` for a ratio metric) with its simultaneous interval; ``ref`` on its own row."""
    if label == reference:
        return "ref"
    r = verdict.pair(verdict.primary, label, reference)
    if r is None or (r.estimate is None and r.mean_diff is None):
        return numfmt.MISSING
    if r.ci95 is None:
        return numfmt.sig(r.estimate if r.estimate is not None else r.mean_diff, 3, signed=True)
    if r.scale == "ratio":
        return "×" + numfmt.ratio(r.estimate, r.ci95[0], r.ci95[1]).replace("×", "", 1)
    return numfmt.estimate(r.estimate, r.ci95[0], r.ci95[1], clipped=_clipped(r))


def _clipped(r: Any) -> tuple[bool, bool]:
    return (bool(r.ci_clipped[0]), bool(r.ci_clipped[1])) if r.ci_clipped else (False, False)


def outcome_cell(verdict: Any, label: str, reference: str) -> str:
    """The outcome of ``label`` against the reference on the primary metric: better, worse, equivalent,
    ``undecided (9)`` (9 seeds would decide it), untested."""
    if label == reference:
        return ""
    r = verdict.pair(verdict.primary, label, reference)
    if r is None or r.outcome is None:
        return numfmt.MISSING
    if r.outcome == "undecided":
        return f"undecided ({r.seeds_to_decide})" if r.seeds_to_decide else "undecided"
    return str(r.outcome)


def verdict_caption(verdict: Any, n_rows: int) -> list[str]:
    """The caption lines that explain the verdict: the Δ and outcome columns, the families, the bold rule."""
    from adacli.analysis.headline import NAMES

    name = NAMES.get(verdict.primary, verdict.primary)
    if n_rows > 1 and not verdict.has_verdict:
        return ["one seed: no verdict, only values (no row is marked best)"]
    family = "every column's pairs adjusted together (Bonferroni)"
    lines: list[str] = []
    if verdict.reference is not None:
        ref = verdict.reference
        clip = f"; {numfmt.CLIP_MARK} = cut at the range" if _any_clipped(verdict) else ""
        lines.append(
            f"Δ vs {ref}: row − {ref} in {name} [simultaneous 95% interval; {family}]; better/worse: "
            f"the interval excludes 0; equivalent: inside{_margin_text(verdict)}; undecided (n): about n "
            f"seeds would decide (80% power){clip}"
        )
    else:
        lines.append(f"paired by seed, {family}; primary: {name}")
    if n_rows > 1:
        lines.append(
            f"bold green: best = decided not worse than any row in {name} (other columns: only rows best "
            f"in {name}); never with < 2 seeds or mostly diverged"
        )
    seeds = verdict.seeds or {}
    if seeds.get("mode") == "sequential":
        looks = ", ".join(str(n) for n in seeds.get("looks") or [])
        lines.append(f"seeds until decided: {seeds.get('n')} seeds (looks at {looks}); {seeds.get('why')}")
    return lines


def _any_clipped(verdict: Any) -> bool:
    return any(c.ci_clipped for c in verdict.comparisons if c.metric == verdict.primary)


def _margin_text(verdict: Any) -> str:
    """`` ±0.5`` or `` ±5 %``: the primary metric's margin, as the caption states it."""
    r = next((c for c in verdict.comparisons if c.metric == verdict.primary and c.margin is not None), None)
    if r is None or r.margin is None:
        return ""
    return f" ±{numfmt.short(r.margin * 100)} %" if r.scale == "ratio" else f" ±{numfmt.short(r.margin)}"
