"""GitHub-flavoured Markdown of a run's verdict and of a gate's verdict, short enough for a PR comment or
``$GITHUB_STEP_SUMMARY``.

Short on purpose: a CI summary is read at a glance, so the run table keeps the columns that decide
(accuracy, gap, speed to target, final loss, step time) and the gate table lists one row per optimizer
plus the failed checks; everything else is in ``report.html`` and ``results.json``. Like
:mod:`adacli.report.html` this reads plain dicts (results.json, the gate's ``to_dict()``) and imports no
other report module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from adacli.report.html import delta_vs_reference, format_stat
from adacli.results import decode

# header, summary key, decimals (None: 3 significant digits): the columns that decide a comparison
RUN_COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("test acc %", "final_test_accuracy", ".1f"),
    ("gap pts", "generalization_gap", ".1f"),
    ("steps to target", "steps_to_target", ".0f"),
    ("secs to target", "seconds_to_target", None),
    ("final loss", "final_train_loss", None),
    ("step ms", "step_time_ms", None),
)


def cell(value: Any) -> str:
    """One table cell: pipes escaped (``\\|``) and line breaks flattened, so the row keeps its columns;
    a ``<`` that could open an HTML tag and an ``&`` that could start an entity are escaped, so a label
    is text, never markup."""
    text = "–" if value is None else str(value)
    # GitHub renders raw HTML: what could open a tag or an entity becomes text ("<=" stays readable)
    text = re.sub(r"&(?=#?\w+;)", "&amp;", text)
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip() or " "


def md_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None
) -> str:
    """A GFM table: header row, delimiter row (``---``, ``---:`` for right-aligned), one line per row."""
    align = align or ["l"] * len(headers)
    delim = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(delim) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _run_cell(data: dict[str, Any], s: dict[str, Any], key: str, fmt: str | None) -> str:
    """mean ± std; ``>budget (k/n)`` when no seed reached the target; **bold** = best (decided not worse
    than any other label; nothing bold when every label is)."""
    st = s.get(key) or {}
    text = format_stat(st, fmt)
    if key in ("steps_to_target", "seconds_to_target"):
        reached, n = st.get("n", 0), s.get("n_trials", 0)
        text = f">budget (0/{n})" if text == "–" else text + (f" ({reached}/{n})" if reached < n else "")
    best = (data.get("best") or {}).get(key)
    everyone = isinstance(best, list) and len(best) == len(data.get("summary") or [])
    if isinstance(best, list) and s.get("optimizer") in best and not everyone:
        text = f"**{text}**"
    return text


def _delta(data: dict[str, Any], label: str, primary: str) -> str:
    """Δ vs the reference on the primary metric with its simultaneous interval, and the outcome."""
    if label == data.get("reference"):
        return "ref"
    d = delta_vs_reference(data, label, primary)
    if d is None:
        return "–"
    outcome = str(d["outcome"] or "–")
    if outcome == "undecided" and d["seeds"]:
        outcome += f" ({d['seeds']} seeds)"
    return f"{d['text']} {outcome}"


def run_markdown(data: dict[str, Any], *, title: str | None = None) -> str:
    """The verdict of a run (results.json's dict): a heading, the headline, one GFM table, the notes."""
    data = decode(data)
    name = (data.get("recipe") or {}).get("name") or "run"
    heading = title or f"adacli: {name} ({data.get('status', '?')})"
    ref, primary = data.get("reference"), str(data.get("primary") or "final_test_accuracy")
    rows = []
    for s in data.get("summary") or []:
        label = s.get("optimizer", "?")
        bad = [f"{s[k]} {w}" for k, w in (("n_diverged", "diverged"), ("n_failed", "failed")) if s.get(k)]
        label += f" ({', '.join(bad)})" if bad else ""
        row = [label, s.get("n_trials"), *(_run_cell(data, s, k, f) for _h, k, f in RUN_COLUMNS)]
        if ref:
            row.insert(3, _delta(data, s.get("optimizer", ""), primary))
        rows.append(row)
    headers = ["optimizer", "seeds", *(h for h, *_ in RUN_COLUMNS)]
    if ref:
        headers.insert(3, f"Δ vs {ref}")
    notes = [str((data.get("target") or {}).get("description") or "target: none"), "mean ± std over seeds"]
    if data.get("comparisons"):
        notes.append(
            "paired by seed; each metric's pairs adjusted together (Bonferroni, simultaneous 95% intervals); "
            "**bold** = best: decided not worse than any other label"
        )
    if ref:
        notes.append(f"Δ = difference to {ref} [simultaneous 95% interval] and the outcome")
    table = md_table(headers, rows, ["l", "r", *("r" for _ in headers[2:])])
    lead = f"**{cell(data['headline'])}**\n\n" if data.get("headline") else ""
    return f"### {cell(heading)}\n\n{lead}{table}\n\n" + cell("; ".join(notes)).replace("\\|", "|") + "\n"


def gate_markdown(gate: dict[str, Any], *, title: str = "regression gate") -> str:
    """A gate verdict (``GateResult.to_dict()``): the outcome, one row per optimizer, the failed checks."""
    gate = decode(gate)
    checks = gate.get("checks") or []
    n_fail = int(gate.get("n_failed") or 0)
    outcome = "no regression" if gate.get("passed") else f"{n_fail} regression{'s' if n_fail != 1 else ''}"
    mark = "✅" if gate.get("passed") else "❌"
    per_label: dict[str, list[dict[str, Any]]] = {}
    for c in checks:
        per_label.setdefault(str(c.get("optimizer")), []).append(c)
    rows = []
    for label, cs in per_label.items():
        failed = [c for c in cs if c.get("verdict") == "fail"]
        infos = [f"{c.get('check')}: {c.get('detail')}" for c in cs if c.get("verdict") == "info"]
        verdict = "FAIL" if failed else "pass"
        rows.append(
            [label, verdict, ", ".join(str(c.get("check")) for c in failed) or "–", "; ".join(infos) or ""]
        )
    parts = [
        f"### {mark} {cell(title)}: {outcome}",
        "",
        md_table(["optimizer", "verdict", "failed checks", "notes"], rows),
    ]
    failed = [c for c in checks if c.get("verdict") == "fail"]
    if failed:
        frows = [
            [c.get(k) for k in ("optimizer", "check", "baseline", "current", "allowed", "detail")]
            for c in failed
        ]
        parts += ["", md_table(["optimizer", "check", "baseline", "current", "allowed", "detail"], frows)]
    notes = gate.get("notes") or []
    if notes:
        parts += ["", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"
