"""``report.html``: one self-contained page per run folder (and per suite folder) that opens offline.

Why a page: after a compare the terminal table scrolls away, ``curves.png`` has no numbers and
``results.json`` is for tools. The page holds the verdict table (with the statistics when results.json has
them), the curves, each trial, the recipe and the environment, the sweep and the gate verdict, so a CI
artifact or a shared folder is enough to review a run.

Self-contained on purpose: plots are inline SVG written by matplotlib, the CSS and the few lines of
JavaScript (table sorting, series toggles) are inline, and nothing is fetched (no CDN, no fonts), so the
page opens from a CI artifact without network. Every value taken from a run is escaped; the markup comes
from :class:`string.Template` skeletons and small helpers, not from a template engine (one page, a few
tables: not worth a dependency).

This module renders the plain dicts of ``results.json`` (and ``gate.json``) plus the trials, in memory:
it reads and writes no file (the run folder's store writes the page). The SVG plots use matplotlib's
object API only (no pyplot state).
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from string import Template
from typing import Any

from adacli.analysis import numfmt
from adacli.results import TrialResult, decode, decode_number

REPORT_HTML = "report.html"  # the suite page links each workload's page



class Html(str):
    """Markup that is already safe (built here from escaped parts); every other string gets escaped."""


def esc(value: Any) -> Html:
    """``value`` as escaped text (``Html`` passes through unchanged)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


# --- page skeleton ---------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:0 16px 40px;color:#1f2328}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #d0d7de}
.meta{color:#57606a}.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.4em 0 .8em;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}th{background:#f6f8fa;text-align:left}
td.n{text-align:right;white-space:nowrap}tr:nth-child(even) td{background:#fbfbfc}
th.sortable{cursor:pointer}th.sortable::after{content:" \\2195";color:#8c959f}
.sub{display:block;color:#57606a;font-size:11px}.best{font-weight:600;color:#116329}
.bad{color:#cf222e;font-weight:600}
.headline{font-size:1.15em;font-weight:600;margin:.6em 0 1em;padding:8px 12px;border-left:4px solid #0969da;
background:#f6f8fa}.ok{color:#116329;font-weight:600}.info{color:#0969da}
.banner{padding:8px 12px;border-radius:6px;margin:.6em 0;font-weight:600}
.banner.pass{background:#dafbe1;color:#116329}.banner.fail{background:#ffebe9;color:#a40e26}
.plots{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;border:1px solid #d0d7de;border-radius:6px;
padding:4px;background:#fff}figure svg{display:block;width:560px;max-width:100%;height:auto}
figcaption{font-size:12px;color:#57606a;max-width:560px}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
#toggles label{margin-right:12px;white-space:nowrap}caption{caption-side:bottom;text-align:left;
color:#57606a;font-size:12px;padding-top:4px}
"""

# Sorting: a click on a header sorts by the cell's data-v (a number) or its text. Toggles: one checkbox
# per optimizer hides its lines and bands (the SVG elements carry ids "<plot>--s<i>--line|band").
# Both are made by the script, so without JavaScript the page simply has neither.
_JS = """
(function(){
function key(td){var v=td.getAttribute('data-v');if(v!==null&&v!==''&&!isNaN(+v))return +v;
return td.textContent.trim().toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('thead th').forEach(function(th,i){th.classList.add('sortable');
  th.addEventListener('click',function(){var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
   var asc=th.getAttribute('data-asc')!=='1';th.setAttribute('data-asc',asc?'1':'0');
   rows.sort(function(r1,r2){var a=key(r1.cells[i]),c=key(r2.cells[i]);
    if(typeof a!==typeof c){a=String(a);c=String(c);}return (a<c?-1:a>c?1:0)*(asc?1:-1);});
   rows.forEach(function(r){b.appendChild(r);});});});});
var box=document.getElementById('toggles');
if(box){JSON.parse(box.getAttribute('data-series')).forEach(function(name,i){
 var l=document.createElement('label'),c=document.createElement('input');c.type='checkbox';c.checked=true;
 c.addEventListener('change',function(){document.querySelectorAll('[id*="--s'+i+'--"]').forEach(
  function(el){el.style.display=c.checked?'':'none';});});
 l.appendChild(c);l.appendChild(document.createTextNode(' '+name));box.appendChild(l);});}
})();
"""

_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
$body
<script>$js</script>
</body>
</html>
"""
)


def page(title: str, meta: str, sections: Iterable[str]) -> str:
    """The whole document: escaped title and meta line, the (already safe) sections, inline CSS and JS."""
    return _PAGE.substitute(
        title=esc(title), meta=esc(meta), body="\n".join(sections), css=_CSS, js=_JS.strip()
    )


def section(title: str, *parts: str, sid: str = "") -> Html:
    """A titled block; ``sid`` becomes the heading's id (the browser test and links use it)."""
    anchor = f' id="{esc(sid)}"' if sid else ""
    return Html(f"<section{anchor}><h2>{esc(title)}</h2>\n" + "\n".join(parts) + "\n</section>")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    cls: str = "sortable",
    tid: str = "",
    caption: str = "",
    keys: Sequence[str] | None = None,
) -> Html:
    """An HTML table; a cell is a value (escaped; numbers right-aligned and sortable) or ``(text, sort)``
    (a right-aligned cell with its sort key).

    Rows carry ``data-row``: ``keys[i]``, or the first cell's text, so tests can find an optimizer's row.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for cell in row:
            if isinstance(cell, tuple):
                content, sort = cell
                v = "" if sort is None else f' data-v="{esc(sort)}"'
                cells.append(f'<td class="n"{v}>{esc(content)}</td>')
            elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
                cells.append(f'<td class="n" data-v="{cell}">{esc(_g(cell))}</td>')
            else:
                cells.append(f"<td>{esc('–' if cell is None else cell)}</td>")
        key = keys[i] if keys is not None else (row[0] if row and not isinstance(row[0], tuple) else "")
        body.append(f'<tr data-row="{esc(str(key))}">' + "".join(cells) + "</tr>")
    idattr = f' id="{esc(tid)}"' if tid else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Html(
        f'<div class="scroll"><table class="{esc(cls)}"{idattr}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _g(v: Any) -> str:
    """A number for a cell: 3 significant digits (:mod:`adacli.analysis.numfmt`: integer parts whole, no
    negative zero, no ``4.737e-15``), '–' for none."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return numfmt.sig(v, 3)
    return str(v)


# --- plots -----------------------------------------------------------------------------------------


def svg_figure(fig: Any, name: str) -> str:
    """The figure as an inline ``<svg>`` element: text kept as text (smaller, selectable) and ids salted
    with ``name`` so several plots in one page never share an id (a clip path of one plot would clip
    another)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if 0 <= start < end:  # the RDF block (creator, date): only bytes and URLs in an inline plot
        text = text[:start] + text[end + len("</metadata>") :]
    return text


def new_figure(width: float = 6.0, height: float = 3.6) -> tuple[Any, Any]:
    """A matplotlib Figure on the SVG canvas (no pyplot, no GUI backend) and its one axes."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasSVG(fig)
    # fixed margins rather than tight_layout: its extra layout pass was a third of the page's time
    fig.subplots_adjust(left=0.13, right=0.98, top=0.91, bottom=0.14)
    return fig, fig.subplots()


def plot_block(name: str, fig: Any, caption: str) -> Html:
    """A ``<figure data-plot=name>`` with the inline SVG and an escaped caption."""
    return Html(
        f'<figure class="plot" data-plot="{esc(name)}">{svg_figure(fig, name)}'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _band(rows: list[list[float]]) -> tuple[Any, Any, Any]:
    """Mean, min and max over seeds, point by point, over the length every seed has (aligned by step)."""
    import numpy as np

    n = min(len(r) for r in rows)
    m = np.asarray([r[:n] for r in rows], dtype=float)
    return m.mean(axis=0), m.min(axis=0), m.max(axis=0)


def _series(trials: Sequence[TrialResult]) -> list[tuple[str, list[TrialResult], int]]:
    """(label, the seeds to draw, number diverged) per optimizer label, in first-trial order.

    Drawn: the finished, non-diverged seeds, or the non-diverged ones of any status when none finished
    (as curves.png does).
    """
    from adacli.analysis.metrics import trial_diverged, usable

    groups: dict[str, list[TrialResult]] = {}
    for t in trials:
        groups.setdefault(t.label, []).append(t)
    out = []
    for label, group in groups.items():
        good = [t for t in group if usable(t)] or [t for t in group if t.losses and not trial_diverged(t)]
        out.append((label, good, sum(trial_diverged(t) for t in group)))
    return out


def _common_evals(trials: Sequence[TrialResult]) -> list[list[Any]]:
    steps = set.intersection(*({e.step for e in t.evals} for t in trials))
    return [sorted((e for e in t.evals if e.step in steps), key=lambda e: e.step) for t in trials]


MAX_POINTS = 250  # per series: a 10,000-step run must not make a 10 MB page; the eye sees no difference


def _thin(x: Any, band: tuple[Any, Any, Any]) -> tuple[Any, tuple[Any, Any, Any]]:
    """At most MAX_POINTS evenly spaced points of a series (first and last kept)."""
    import numpy as np

    x = np.asarray(list(x), dtype=float)
    if len(x) <= MAX_POINTS:
        return x, band
    idx = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
    return x[idx], (band[0][idx], band[1][idx], band[2][idx])


def _draw(
    ax: Any, plot: str, i: int, x: Any, band: tuple[Any, Any, Any], name: str, n_series: int = 1
) -> None:
    """One optimizer's mean line and min..max band, in its own colour, line style and marker (coinciding
    curves stay distinguishable: :func:`adacli.report.plots.series_style`)."""
    from adacli.report.plots import series_style

    x, band = _thin(x, band)
    mean, lo, hi = band
    style = series_style(i, len(mean), n_series)
    ax.plot(x, mean, label=name, gid=f"{plot}--s{i}--line", **style)
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.2, linewidth=0, gid=f"{plot}--s{i}--band")


def curve_plots(trials: Sequence[TrialResult], target_value: float | None) -> list[Html]:
    """Five plots: training loss vs steps and vs seconds, test accuracy vs steps and vs seconds, and the
    generalization gap (train-eval − test accuracy) vs steps. Mean over seeds, band = min..max."""
    from adacli.analysis.metrics import smooth_losses

    specs = {
        "loss-steps": ("training loss vs steps", "step", "training loss (smoothed)"),
        "loss-seconds": ("training loss vs time", "training seconds", "training loss (smoothed)"),
        "accuracy-steps": ("test accuracy vs steps", "step", "test accuracy (%)"),
        "accuracy-seconds": ("test accuracy vs time", "training seconds", "test accuracy (%)"),
        "gap-steps": ("generalization gap vs steps", "step", "train-eval − test accuracy (points)"),
    }
    figs = {k: new_figure() for k in specs}
    series = _series(trials)
    for i, (label, good, n_div) in enumerate(series):
        name = label + (f" ({n_div} diverged)" if n_div else "")
        if not good:
            figs["loss-steps"][1].plot([], [], color=f"C{i % 10}", label=name)
            continue
        sm = _band([smooth_losses(t.losses) for t in good])
        n, k = len(sm[0]), len(series)
        _draw(figs["loss-steps"][1], "loss-steps", i, range(1, n + 1), sm, name, k)
        if all(len(t.times) >= n for t in good):
            secs_n = _band([t.times[:n] for t in good])[0]
            _draw(figs["loss-seconds"][1], "loss-seconds", i, secs_n, sm, name, k)
        evals = _common_evals(good) if all(t.evals for t in good) else [[]]
        if evals[0]:
            steps = [e.step for e in evals[0]]
            secs = _band([[e.seconds for e in ev] for ev in evals])[0]
            acc = _band([[e.test_accuracy for e in ev] for ev in evals])
            gap = _band([[e.train_eval_accuracy - e.test_accuracy for e in ev] for ev in evals])
            _draw(figs["accuracy-steps"][1], "accuracy-steps", i, steps, acc, name, k)
            _draw(figs["accuracy-seconds"][1], "accuracy-seconds", i, secs, acc, name, k)
            _draw(figs["gap-steps"][1], "gap-steps", i, steps, gap, name, k)
    blocks = []
    for key, (title, xlabel, ylabel) in specs.items():
        fig, ax = figs[key]
        if key.startswith("loss"):
            if ax.lines:
                ax.set_yscale("log")
            if target_value is not None and target_value > 0:
                ax.axhline(target_value, color="0.4", linestyle="--", linewidth=1, label="target")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small", loc="lower right" if key.startswith("accuracy") else "upper right")
        blocks.append(plot_block(key, fig, f"{title}: mean over seeds (aligned by step), band = min..max"))
    return blocks


# --- run page: verdict and statistics ---------------------------------------------------------------

# Every summary column: header, summary key, decimals (None: 3 significant digits), better direction.
SUMMARY_COLUMNS: tuple[tuple[str, str, str | None, str], ...] = (
    ("test acc %", "final_test_accuracy", ".1f", "max"),
    ("best acc %", "best_test_accuracy", ".1f", "max"),
    ("train-eval acc %", "final_train_eval_accuracy", ".1f", "max"),
    ("gap pts", "generalization_gap", ".1f", "min"),
    ("loss gap", "loss_gap", None, "min"),
    ("steps to target", "steps_to_target", ".0f", "min"),
    ("secs to target", "seconds_to_target", None, "min"),
    ("mean loss", "mean_train_loss", None, "min"),
    ("final loss", "final_train_loss", None, "min"),
    ("step ms", "step_time_ms", None, "min"),
    ("opt.step ms", "optimizer_step_ms", None, "min"),
)
#: the verdict table's columns besides the primary metric's (it fits 1280 px: every other figure is in
#: the "All figures" table)
VERDICT_COLUMNS = ("steps_to_target", "seconds_to_target", "final_train_loss", "step_time_ms")
_TO_TARGET = {"steps_to_target", "seconds_to_target"}
_NAMES = {key: header for header, key, _f, _b in SUMMARY_COLUMNS}


def format_bytes(n: Any) -> str:
    """Human-readable byte count (KiB/MiB/GiB), '–' for none."""
    if not isinstance(n, (int, float)):
        return "–"
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _decimals(fmt: str | None, value: float) -> int:
    if fmt is not None and fmt.startswith(".") and fmt.endswith("f"):
        return int(fmt[1:-1])
    return numfmt.decimals_for(value, 3)


def format_stat(st: Any, fmt: str | None = None) -> str:
    """``mean ± std`` of a stored Stat dict (just the mean for one seed), '–' when no seed has a value;
    3 significant digits unless ``fmt`` (``.1f``) fixes the decimals."""
    if not isinstance(st, dict) or not isinstance(st.get("mean"), (int, float)):
        return "–"
    mean, std, n = st["mean"], st.get("std"), st.get("n", 0)
    d = _decimals(fmt, mean)
    if n > 1 and isinstance(std, (int, float)):
        return f"{numfmt.fixed(mean, d)} ± {numfmt.fixed(std, d)}"
    return numfmt.fixed(mean, d)


def _ci_text(st: dict[str, Any], fmt: str | None) -> str:
    ci, cut = st.get("ci95"), st.get("ci95_clipped") or [False, False]
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        d = _decimals(fmt, st.get("mean") or ci[1])
        return numfmt.interval(ci[0], ci[1], d, clipped=(bool(cut[0]), bool(cut[1])))
    return ""


def delta_vs_reference(data: dict[str, Any], label: str, metric: str) -> dict[str, Any] | None:
    """The paired comparison of ``label`` against the run's reference for ``metric``, oriented as
    label against reference (``comparisons`` stores one order of each pair): its estimate and interval
    (a difference, or a ratio for times and losses) as text, the outcome and the seeds that would
    decide it."""
    ref = data.get("reference")
    if not ref or ref == label:
        return None
    for c in data.get("comparisons") or []:
        if c.get("metric") != metric or {c.get("a"), c.get("b")} != {label, ref}:
            continue
        mine = c.get("a") == label
        outcome = c.get("outcome")
        if not mine:
            outcome = {"better": "worse", "worse": "better"}.get(outcome or "", outcome)
        return {"text": _estimate_text(c, mine), "outcome": outcome, "seeds": c.get("seeds_to_decide"),
                "diff": c.get("mean_diff") if mine else _neg(c.get("mean_diff"))}  # fmt: skip
    return None


def _neg(x: Any) -> Any:
    return -x + 0.0 if isinstance(x, (int, float)) else x


def _estimate_text(c: dict[str, Any], mine: bool) -> str:
    """``+1.2 [+0.3, +2.1]`` (or ``×0.81 [0.70, 0.95]``) of ``a`` against ``b``, or of ``b`` against
    ``a`` when not ``mine``."""
    est, ci, cut = c.get("estimate"), c.get("ci95"), c.get("ci_clipped") or [False, False]
    if est is None:
        est = c.get("mean_diff")
    if c.get("scale") == "ratio":
        if not mine and est:
            est, ci = 1.0 / est, None if not ci else [1.0 / ci[1], 1.0 / ci[0]]
        lo, hi = (ci or [None, None])[:2]
        return "×" + numfmt.ratio(est, lo, hi).replace("×", "", 1)
    if not mine:
        est, ci, cut = _neg(est), None if not ci else [_neg(ci[1]), _neg(ci[0])], [cut[1], cut[0]]
    lo, hi = (ci or [None, None])[:2]
    return numfmt.estimate(est, lo, hi, clipped=(bool(cut[0]), bool(cut[1])))


def _stat_cell(data: dict[str, Any], s: dict[str, Any], key: str, fmt: str | None) -> tuple[Html, Any]:
    """One cell: mean ± std (★ when the label is best here), then the 95% CI of the mean on a small line."""
    st = s.get(key) or {}
    text = format_stat(st, fmt)
    n_trials = s.get("n_trials", 0)
    if key in _TO_TARGET:
        reached = f"{st.get('n', 0)}/{n_trials}"
        if text == "–":
            text = f">budget ({reached})"
        elif st.get("n", 0) < n_trials:
            text += f" ({reached})"
    best = (data.get("best") or {}).get(key)
    everyone = isinstance(best, list) and len(best) == len(data.get("summary") or [])
    is_best = isinstance(best, list) and s.get("optimizer") in best and not everyone
    parts = [f'<span class="best">★ {esc(text)}</span>' if is_best else str(esc(text))]
    ci = _ci_text(st, fmt)
    if ci:
        parts.append(f'<span class="sub">CI {esc(ci)}</span>')
    return Html("".join(parts)), st.get("mean")


def _label_cell(data: dict[str, Any], s: dict[str, Any]) -> Html:
    label = s.get("optimizer", "?")
    notes = [f"{s[k]} {w}" for k, w in (("n_diverged", "diverged"), ("n_failed", "failed")) if s.get(k)]
    name = str(esc(label)) + f' <span class="sub">{esc(s.get("n_trials"))} seeds</span>'
    name += f' <span class="bad">({esc(", ".join(notes))})</span>' if notes else ""
    if data.get("reference") == label:
        name += ' <span class="sub">reference</span>'
    return Html(name)


def _delta_cells(data: dict[str, Any], label: str, primary: str) -> list[Any]:
    """Δ vs the reference on the primary metric, and its outcome (with the seeds that would decide)."""
    if label == data.get("reference"):
        return ["ref", ""]
    d = delta_vs_reference(data, label, primary)
    if d is None:
        return ["–", "–"]
    outcome = str(d["outcome"] or "–")
    if outcome == "undecided" and d["seeds"]:
        outcome += f" ({d['seeds']} seeds)"
    cls = {"better": "ok", "worse": "bad", "equivalent": "info"}.get(str(d["outcome"]), "")
    return [(d["text"], d["diff"]), Html(f'<span class="{cls}">{esc(outcome)}</span>')]


def verdict_table(data: dict[str, Any]) -> Html:
    """The verdict: per label the primary metric (★ = best), Δ vs the reference and its outcome, and the
    key figures (:data:`VERDICT_COLUMNS`); narrow enough for a 1280 px window."""
    primary = str(data.get("primary") or "final_test_accuracy")
    fmt = {key: f for _h, key, f, _b in SUMMARY_COLUMNS}
    keys_shown = [primary, *(k for k in VERDICT_COLUMNS if k != primary)]
    ref = data.get("reference")
    rows = []
    for s in data.get("summary") or []:
        row: list[Any] = [_label_cell(data, s), _stat_cell(data, s, primary, fmt.get(primary))]
        if ref:
            row += _delta_cells(data, s.get("optimizer", ""), primary)
        row += [_stat_cell(data, s, key, fmt.get(key)) for key in keys_shown[1:]]
        row.append((format_bytes(s.get("state_bytes")), s.get("state_bytes")))
        rows.append(row)
    headers = ["optimizer", _NAMES.get(primary, primary)]
    headers += [f"Δ vs {ref}", f"vs {ref}"] if ref else []
    headers += [*(_NAMES[k] for k in keys_shown[1:]), "state"]
    keys = [s.get("optimizer", "?") for s in data.get("summary") or []]
    return table(headers, rows, tid="verdict", keys=keys, caption=_verdict_caption(data))


def all_figures_table(data: dict[str, Any]) -> Html:
    """Every summary column for every label (mean ± std and the 95% CI of the mean)."""
    rows = []
    for s in data.get("summary") or []:
        row: list[Any] = [_label_cell(data, s)]
        row += [_stat_cell(data, s, key, f) for _h, key, f, _b in SUMMARY_COLUMNS]
        row.append((format_bytes(s.get("peak_memory_bytes")), s.get("peak_memory_bytes")))
        rows.append(row)
    headers = ["optimizer", *(h for h, *_ in SUMMARY_COLUMNS), "peak memory"]
    keys = [s.get("optimizer", "?") for s in data.get("summary") or []]
    return table(headers, rows, tid="figures", keys=keys)


def _verdict_caption(data: dict[str, Any]) -> str:
    target = data.get("target") or {}
    text = [str(target.get("description") or "target: none") + "."]
    text.append(
        "mean ± std over seeds (diverged trials excluded from the means); to target: first step (training "
        "seconds) where the smoothed loss reaches the target, (k/n) = seeds that reached it, >budget = none "
        f"did. CI = 95% interval of the mean over seeds ({numfmt.CLIP_MARK} = cut at the metric's range)."
    )
    if data.get("comparisons"):
        ref = data.get("reference")
        primary = _NAMES.get(str(data.get("primary") or "final_test_accuracy"), data.get("primary"))
        text.append(
            f"Paired by seed; each column's pairs are one family, adjusted together (Bonferroni: "
            f"simultaneous 95% intervals, every outcome read off them); primary: {primary} (headline, ★, Δ), "
            "other columns secondary. ★ = best: decided not worse than any other label (never with fewer "
            f"than 2 seeds, mostly diverged, or worse in {primary}); none when every label is."
            + (f" Δ vs {ref}: label − {ref} [simultaneous 95% interval]; better/worse = the interval "
               "excludes 0, equivalent = it lies inside the margin, undecided (n seeds would decide it)."
               if ref else "")
        )  # fmt: skip
    seeds = data.get("seeds") or {}
    if seeds.get("mode") == "sequential":
        looks = ", ".join(str(n) for n in seeds.get("looks") or [])
        text.append(f"Seeds until decided: {seeds.get('n')} seeds (looks at {looks}); {seeds.get('why')}.")
    return " ".join(text)


def comparisons_table(data: dict[str, Any]) -> Html:
    """The pairwise comparisons of results.json (paired by seed), one row per metric and pair."""
    rows = []
    for c in data.get("comparisons") or []:
        rows.append(
            [
                c.get("metric"),
                c.get("a"),
                c.get("b"),
                c.get("n"),
                (_estimate_text(c, True), c.get("estimate")),
                c.get("outcome") or "–",
                (numfmt.pvalue(c.get("p_value")), c.get("p_value")),
                (numfmt.pvalue(c.get("p_adjusted")), c.get("p_adjusted")),
                (numfmt.pvalue(c.get("wilcoxon_p")), c.get("wilcoxon_p")),
                c.get("seeds_to_decide"),
                c.get("censored"),
            ]
        )
    headers = ["metric", "a", "b", "n", "a vs b [simultaneous 95%]", "outcome", "p", "p (Bonferroni)"]
    headers += ["Wilcoxon p (exact)", "seeds to decide", "censored"]
    caption = (
        "Each metric's pairs are one family (Bonferroni); a vs b is the difference a − b, or the ratio a / b "
        "(×) for times and losses; p = floored paired t-test, Wilcoxon p from 6 seeds (exact, ties included)."
    )
    return table(headers, rows, tid="comparisons", caption=caption)


def headline_block(data: dict[str, Any]) -> Html:
    """The verdict in one or two sentences, first on the page."""
    text = data.get("headline")
    return Html(f'<p class="headline" id="headline">{esc(text)}</p>') if text else Html("")


# --- run page: trials, hyperparameters, recipe, environment -------------------------------------------


def trials_table(trials: Sequence[TrialResult]) -> Html:
    """Every trial: status and error, steps and seconds, its final evaluation and step times."""
    rows = []
    for t in trials:
        e = t.final_eval
        status = Html(f'<span class="{"ok" if t.status == "ok" else "bad"}">{esc(t.status)}</span>')
        rows.append(
            [
                t.label,
                t.seed,
                status,
                t.steps_done,
                round(t.train_seconds, 3),
                None if e is None else round(e.test_accuracy, 2),
                None if e is None else round(e.train_eval_accuracy, 2),
                decode_number(t.step_time_ms),
                decode_number(t.optimizer_step_ms),
                t.error or "",
            ]
        )
    headers = [
        "optimizer",
        "seed",
        "status",
        "steps",
        "train s",
        "test acc %",
        "train-eval acc %",
        "step ms",
        "opt.step ms",
        "error",
    ]
    return table(headers, rows, tid="trials")


def _given_hparams(recipe: dict[str, Any], labels: Sequence[str]) -> dict[str, set[str]]:
    """For each label, the hyperparameters the recipe set (the rest are the optimizer's defaults).

    Recipe entries map to labels by position when the counts agree (labels may be generated), else by
    ``label``/``name``.
    """
    specs = [o for o in recipe.get("optimizers") or [] if isinstance(o, dict)]
    skip = {"name", "label"}
    if len(specs) == len(labels):
        return {lab: {k for k in o if k not in skip} for lab, o in zip(labels, specs, strict=True)}
    out: dict[str, set[str]] = {}
    for o in specs:
        out.setdefault(str(o.get("label") or o.get("name")), set()).update(k for k in o if k not in skip)
    return out


def hparams_tables(data: dict[str, Any]) -> Html:
    """One column per label, one row per hyperparameter: the resolved values, the ones the recipe set in
    bold (the others are the optimizer's defaults); the resolved class heads each column."""
    summary = data.get("summary") or []
    labels = [s.get("optimizer", "?") for s in summary]
    given = _given_hparams(data.get("recipe") or {}, labels)
    names: list[str] = []
    for s in summary:
        names += [k for k in s.get("hparams") or {} if k not in names]
    rows = []
    for name in names:
        row: list[Any] = [name]
        for s, label in zip(summary, labels, strict=True):
            hp = s.get("hparams") or {}
            value = json.dumps(hp[name], default=str) if name in hp else ""
            row.append(Html(f"<b>{esc(value)}</b>") if name in given.get(label, set()) else value)
        rows.append(row)
    classes = [["class", *(s.get("optimizer_class", "") for s in summary)]]
    caption = "bold = set in the recipe; the others are the optimizer's defaults"
    headers = ["hyperparameter", *labels]
    return table(headers, classes + rows, cls="plain", tid="hparams-table", caption=caption)


def recipe_block(recipe: dict[str, Any]) -> Html:
    """The recipe as resolved (every default filled in), as YAML."""
    import yaml

    text = yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100)
    return Html(f'<pre id="recipe">{esc(text)}</pre>')


def environment_table(env: dict[str, Any]) -> Html:
    """Versions, device, threads, platform: what a result depends on besides the recipe."""
    rows = [[k, v if isinstance(v, str) else json.dumps(v, default=str)] for k, v in env.items()]
    return table(["key", "value"], rows, cls="plain", tid="environment")


# --- run page: sweep and gate ---------------------------------------------------------------------------


def sweep_table(info: dict[str, Any]) -> Html:
    """The chosen configuration of each optimizer with what was swept and its validation figures."""
    rows = []
    for o in info.get("optimizers") or []:
        swept = "; ".join(
            f"{k}: {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vals)}"
            for k, vals in (o.get("axes") or {}).items()
        )
        chosen = o.get("chosen")
        chosen_text = (
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
            if chosen
            else "(not selected)"
        )
        if o.get("note"):
            chosen_text += f" ({o['note']})"
        rows.append(
            [
                o.get("label"),
                o.get("n_configs"),
                swept or "–",
                chosen_text,
                decode_number(o.get("val_accuracy")),
                decode_number(o.get("val_loss")),
            ]
        )
    seeds = ", ".join(str(s) for s in info.get("selection_seeds") or [])
    caption = (
        f"selected on the val split ({info.get('val_size')} images held out of train; never on test) by "
        f"final {info.get('metric')}, on seed(s) {seeds}; the chosen configuration then runs on every seed"
        + ("; tuning budgets differ between optimizers" if info.get("budgets_differ") else "")
    )
    return table(
        ["optimizer", "configs", "swept", "chosen", "val acc %", "val loss"],
        rows,
        tid="sweep",
        caption=caption,
    )


def lr_sensitivity_plot(info: dict[str, Any]) -> Html | None:
    """The selection metric against the learning rate per optimizer, ★ at the chosen lr; None when no
    optimizer sweeps ``lr``."""
    opts = info.get("optimizers") or []
    if not any("lr" in (o.get("axes") or {}) for o in opts):
        return None
    by_acc = info.get("metric") == "val_accuracy"
    key = "val_accuracy" if by_acc else "val_loss"
    fig, ax = new_figure(6.5, 4)
    for i, o in enumerate(opts):
        best: dict[float, float] = {}
        for c in o.get("configs") or []:
            lr = (c.get("hparams") or {}).get("lr", (o.get("fixed") or {}).get("lr"))
            v = decode_number(c.get(key))
            ok = isinstance(lr, (int, float)) and isinstance(v, (int, float)) and math.isfinite(v)
            if ok and (lr not in best or (v > best[lr] if by_acc else v < best[lr])):
                best[float(lr)] = float(v)
        xs = sorted(best)
        ax.plot(
            xs,
            [best[x] for x in xs],
            color=f"C{i % 10}",
            marker="o",
            markersize=4,
            label=o.get("label"),
            gid=f"lr--s{i}--line",
        )
        lr = (o.get("chosen") or {}).get("lr")
        if isinstance(lr, (int, float)) and float(lr) in best:
            ax.plot([lr], [best[float(lr)]], color=f"C{i % 10}", marker="*", markersize=13, linestyle="none")
    ax.set_xscale("log")
    ax.set(
        xlabel="learning rate",
        ylabel=("final val accuracy (%)" if by_acc else "final val loss"),
        title="learning-rate sensitivity (★ = chosen)",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return plot_block(
        "lr-sensitivity",
        fig,
        "selection metric on the val split, mean over selection seeds; "
        "where other hyperparameters are swept too, each lr shows its best configuration",
    )


def gate_section(gate: dict[str, Any]) -> Html:
    """The regression gate's verdict (gate.json): a pass/fail banner, every check, the notes."""
    n_fail = gate.get("n_failed", 0)
    banner = (
        f'<div class="banner fail">regression gate: {n_fail} regression{"s" if n_fail != 1 else ""}</div>'
        if not gate.get("passed")
        else '<div class="banner pass">regression gate: no regression</div>'
    )
    rows = []
    for c in gate.get("checks") or []:
        verdict = str(c.get("verdict", ""))
        cls = {"pass": "ok", "fail": "bad", "info": "info"}.get(verdict, "")
        rows.append(
            [
                c.get("optimizer"),
                c.get("check"),
                c.get("baseline"),
                c.get("current"),
                c.get("allowed"),
                Html(f'<span class="{cls}">{esc(verdict.upper())}</span>'),
                c.get("detail"),
            ]
        )
    notes = "".join(f"<li>{esc(n)}</li>" for n in gate.get("notes") or [])
    meta = f"baseline: {gate.get('baseline') or '?'}; tolerances: {json.dumps(gate.get('tolerances') or {})}"
    return section(
        "Regression gate",
        Html(banner),
        Html(f'<p class="meta">{esc(meta)}</p>'),
        table(
            ["optimizer", "check", "baseline", "current", "allowed", "verdict", "detail"], rows, tid="gate"
        ),
        Html(f"<ul>{notes}</ul>") if notes else "",
        sid="gate",
    )


# --- run page: assembly -----------------------------------------------------------------------------


def _meta_line(data: dict[str, Any]) -> str:
    env = data.get("environment") or {}
    recipe = data.get("recipe") or {}
    model = (recipe.get("model") or {}).get("name", "?")
    dataset = (recipe.get("dataset") or {}).get("name", "?")
    return (
        f"status {data.get('status', '?')} · model {model} · dataset {dataset} · "
        f"device {env.get('device_name') or env.get('device') or '?'} · torch {env.get('torch', '?')} · "
        f"adacli {env.get('adacli', '?')} · {env.get('time', '')}"
    )


def render_run(
    data: dict[str, Any], trials: Sequence[TrialResult], gate: dict[str, Any] | None = None
) -> str:
    """The run page from ``results.json``'s dict (summary, target, recipe, environment, and, when present,
    ``comparisons``/``best``/``reference`` and ``sweep``), the trials for the curves, and ``gate.json``."""
    data = decode(data)
    labels = [s.get("optimizer", "?") for s in data.get("summary") or []]
    target = (data.get("target") or {}).get("value")
    sections: list[str] = [headline_block(data)]
    if gate is not None:
        sections.append(gate_section(decode(gate)))
    sweep = data.get("sweep")
    title = "Verdict" + (" (chosen configurations)" if isinstance(sweep, dict) else "")
    sections.append(section(title, verdict_table(data), sid="verdict-section"))
    sections.append(section("All figures", all_figures_table(data), sid="figures-section"))
    if data.get("comparisons"):
        sections.append(
            section("Pairwise comparisons (paired by seed)", comparisons_table(data), sid="pairs")
        )
    if trials:
        toggles = Html(f'<div id="toggles" data-series="{esc(json.dumps(labels))}"></div>')
        plots = Html('<div class="plots">' + "".join(curve_plots(trials, target)) + "</div>")
        sections.append(section("Curves", toggles, plots, sid="curves"))
    else:
        sections.append(section("Curves", Html("<p>No trial finished: nothing to draw.</p>"), sid="curves"))
    if isinstance(sweep, dict):
        lr = lr_sensitivity_plot(sweep)
        parts = [sweep_table(sweep)] + ([Html(f'<div class="plots">{lr}</div>')] if lr else [])
        sections.append(section("Sweep", *parts, sid="sweep-section"))
    sections.append(section("Trials", trials_table(trials), sid="trials-section"))
    sections.append(section("Hyperparameters", hparams_tables(data), sid="hparams"))
    sections.append(
        section("Recipe (as resolved)", recipe_block(data.get("recipe") or {}), sid="recipe-section")
    )
    sections.append(section("Environment", environment_table(data.get("environment") or {}), sid="env"))
    name = (data.get("recipe") or {}).get("name") or "adacli run"
    return page(f"adacli: {name}", _meta_line(data), sections)


# --- suite page -----------------------------------------------------------------------------------------


def profiles_plot(profiles: dict[str, Any]) -> Html:
    """The performance profiles: per optimizer, the fraction of workloads within τ × the best."""
    fig, ax = new_figure(6.5, 4)
    taus = profiles.get("taus") or []
    from adacli.report.plots import series_style

    curves = profiles.get("curves") or {}
    for i, (label, fractions) in enumerate(curves.items()):
        n = min(len(taus), len(fractions))
        style = series_style(i, n, len(curves))
        ax.step(taus[:n], fractions[:n], where="post", label=label, gid=f"profiles--s{i}--line", **style)
    ax.set(
        xlabel="τ (time-to-target within τ × the best)",
        ylabel="fraction of workloads",
        title=f"performance profiles ({profiles.get('measure', '?')})",
        ylim=(-0.02, 1.02),
    )
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="best")
    return plot_block(
        "profiles", fig, "Dolan–Moré profile; misses and ratios above the last τ count as never"
    )


def scores_table(suite: dict[str, Any]) -> Html:
    """Score (normalized area under the profile), mean rank and speed-up against the reference."""
    scores, ranks, speedups = (suite.get(k) or {} for k in ("scores", "ranks", "speedups"))
    labels = list(dict.fromkeys([*scores, *ranks, *speedups]))
    reached = suite.get("speedup_workloads") or {}
    n = suite.get("n_workloads") or 0
    rows = []
    for label in labels:
        figures = [decode_number(d.get(label)) for d in (scores, ranks, speedups)]
        rows.append([label, *figures, f"{reached.get(label, 0)}/{n}"])
    ref = suite.get("reference") or "the reference"
    headers = ["optimizer", "score (0..1)", "mean rank", f"speed-up vs {ref}", "workloads reached"]
    caption = (
        "score: area under the profile (AlgoPerf), higher is better; speed-up: geometric mean over every "
        f"workload of t({ref}) / t, a miss counting as budget + 1"
    )
    return table(headers, rows, tid="scores", caption=caption)


def wtl_text(cell: Any) -> str:
    """``2/1/0/2``: wins / ties / losses / undecided, and ``(1 untested)`` for one-seed workloads."""
    if not isinstance(cell, dict):
        return "–" if cell is None else str(cell)
    text = "/".join(str(cell.get(k, 0)) for k in ("win", "tie", "loss", "undecided"))
    return text + (f" ({cell['untested']} untested)" if cell.get("untested") else "")


def wins_table(suite: dict[str, Any]) -> Html:
    """The win/tie/loss matrix: row a against column b, counted over workloads (the four outcomes)."""
    wins = suite.get("wins") or {}
    labels = list(dict.fromkeys([*wins, *(b for row in wins.values() for b in row)]))
    rows = [[a, *("" if a == b else wtl_text((wins.get(a) or {}).get(b)) for b in labels)] for a in labels]
    caption = (
        "cell = wins/ties/losses/undecided of the row's optimizer against the column's, over workloads: "
        "better / equivalent (within 5 %) / worse / undecided time to target, paired by seed (one family per "
        "workload); untested = one seed"
    )
    return table(["row vs column", *labels], rows, cls="plain", tid="wins", caption=caption)


def workloads_table(suite: dict[str, Any]) -> Html:
    """Each workload with its status and a link to its own report.html (relative: the folder can move)."""
    rows = []
    for w in suite.get("workloads") or []:
        run_dir = str(w.get("run_dir") or "")
        href = f"{run_dir.rstrip('/')}/{REPORT_HTML}" if run_dir else ""
        link = Html(f'<a href="{esc(href)}">{esc(w.get("name", run_dir))}</a>') if href else w.get("name")
        rows.append([link, w.get("status"), w.get("recipe") or "", run_dir])
    keys = [str(w.get("name", "")) for w in suite.get("workloads") or []]
    return table(["workload", "status", "recipe", "run folder"], rows, tid="workloads", keys=keys)


def render_suite(suite: dict[str, Any]) -> str:
    """The suite page from the suite ``results.json`` dict (``kind: "suite"``): profiles, scores, the
    win/tie/loss matrix and links to each workload's page."""
    suite = decode(suite)
    sections = [
        section("Scores", scores_table(suite), sid="scores-section"),
        section(
            "Performance profiles",
            Html(f'<div class="plots">{profiles_plot(suite.get("profiles") or {})}</div>'),
            sid="profiles-section",
        ),
        section("Win / tie / loss", wins_table(suite), sid="wins-section"),
        section("Workloads", workloads_table(suite), sid="workloads-section"),
    ]
    n = len(suite.get("workloads") or [])
    meta = f"suite of {n} workload{'s' if n != 1 else ''}; reference {suite.get('reference') or 'none'}"
    return page(f"adacli suite: {suite.get('name', '?')}", meta, sections)
