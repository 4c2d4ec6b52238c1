"""Presentation and persistence of a comparison: rich tables and progress, curves.png, results.json, CSV.

This module formats and stores what :mod:`adacli.analysis.metrics` computed; it computes no metric itself (the one
exception: a run folder whose run was cut short holds no summary yet, and :func:`load_run` asks
:mod:`adacli.analysis.metrics` for it).

Run folder layout (DESIGN.md section 5)::

    results.json      schema_version, status, recipe, environment, trials, summary, target
    summary.csv       one row per optimizer label (the summary, flattened)
    curves.png        training loss and test accuracy against steps and seconds, band over seeds
    report.html       the self-contained page of the run (adacli/report_html.py)
    trials/NNN-<label>-seed<S>.json   each finished trial, written as soon as it finishes

``trials/`` exists so that a killed run (Ctrl-C, OOM, power) keeps every trial that finished:
:func:`start_run` writes a ``results.json`` with status ``running`` first, :func:`write_trial` adds one
file per finished trial, and :func:`load_run` merges those files in when ``results.json`` is not
``complete``.

Non-finite floats (the loss of a diverged trial) are stored as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` so that ``results.json`` stays strict JSON that any parser reads.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from adacli import __version__
from adacli.errors import InputError
from adacli.results import SCHEMA_VERSION, EvalPoint, OptimizerSummary, Stat, Target, TrialResult

RESULTS_FILE = "results.json"
SUMMARY_CSV = "summary.csv"
CURVES_PNG = "curves.png"
TRIALS_DIR = "trials"

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# --- JSON with non-finite floats -------------------------------------------------------------------


def _encode(obj: Any) -> Any:
    """Replace non-finite floats by strings, recursively, so json.dumps(allow_nan=False) succeeds."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _num(v: Any) -> Any:
    """Decode one stored number (the inverse of :func:`_encode` for a float field)."""
    return _NONFINITE.get(v, v) if isinstance(v, str) else v


def _trial_from_json(data: dict[str, Any]) -> TrialResult:
    """A TrialResult from its stored dict; only numeric fields are decoded (hparams keep their strings)."""
    d = dict(data)
    d["losses"] = [_num(x) for x in d.get("losses", [])]
    d["times"] = [_num(x) for x in d.get("times", [])]
    d["evals"] = [{k: _num(v) for k, v in e.items()} for e in d.get("evals", [])]
    for k in ("step_time_ms", "optimizer_step_ms"):
        if k in d:
            d[k] = _num(d[k])
    return TrialResult.from_dict(d)


def write_json(path: Path, data: Any, *, indent: int = 1) -> None:
    """Write strict JSON atomically (temp file + rename): a crash mid-write never leaves a truncated file.

    Non-finite floats are stored as strings (see :func:`_encode`); callers that want another encoding
    (the gate's baseline stores null) convert them first.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_encode(data), indent=indent, allow_nan=False, default=str) + "\n")
    os.replace(tmp, path)


def _target_to_dict(target: Target | None) -> dict[str, Any] | None:
    return None if target is None else dataclasses.asdict(target)


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


# --- files -----------------------------------------------------------------------------------------


@dataclass
class RunData:
    """A run folder, loaded: what :func:`save_run` wrote (or what survived of an interrupted run)."""

    run_dir: Path
    recipe: dict[str, Any]
    environment: dict[str, Any]
    trials: list[TrialResult]
    summaries: list[OptimizerSummary]
    target: Target | None
    status: str = "complete"  # complete | interrupted | running (a run that never finished)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # any other top-level keys of results.json
    verdict: Any = None  # adacli.analysis.verdict.Verdict: comparisons, best, reference, power (see load_run)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:60] or "trial"


def start_run(run_dir: str | Path, *, recipe: dict[str, Any], environment: dict[str, Any]) -> Path:
    """Create the run folder and a ``results.json`` with status ``running`` and no trials yet.

    Optional, but with it a run killed before :func:`save_run` still has its recipe and environment next
    to the trials that :func:`write_trial` saved. Returns the folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        run_dir / RESULTS_FILE,
        {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "recipe": recipe,
            "environment": environment,
            "trials": [],
            "summary": [],
            "target": None,
        },
    )
    return run_dir


def write_trial(run_dir: str | Path, result: TrialResult, *, index: int | None = None) -> Path:
    """Save one finished trial as ``trials/NNN-<label>-seed<S>.json`` (atomic), so it survives a Ctrl-C.

    ``index`` (the trial's position in the plan) orders the files; without it the next free number is
    used. Returns the file written.
    """
    tdir = Path(run_dir) / TRIALS_DIR
    tdir.mkdir(parents=True, exist_ok=True)
    if index is None:
        index = len(list(tdir.glob("*.json")))
    path = tdir / f"{index:03d}-{_slug(result.label)}-seed{result.seed}.json"
    write_json(path, result.to_dict())
    return path


def save_run(
    run_dir: str | Path,
    *,
    recipe: dict[str, Any],
    environment: dict[str, Any],
    trials: Sequence[TrialResult],
    summaries: Sequence[OptimizerSummary],
    target: Target | None,
    status: str = "complete",
    plot: bool = True,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``results.json``, ``summary.csv`` and (unless ``plot=False``) ``curves.png`` and ``report.html``
    into ``run_dir``.

    ``extra``: more top-level keys for ``results.json`` (e.g. ``sweep``; ``load_run`` keeps them in
    ``RunData.extra``).

    ``status`` is ``complete`` for a finished run and ``interrupted`` when saving what finished before a
    Ctrl-C. The folder is created if needed.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        run_dir / RESULTS_FILE,
        {
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "recipe": recipe,
            "environment": environment,
            "trials": [t.to_dict() for t in trials],
            "summary": [s.to_dict() for s in summaries],
            "target": _target_to_dict(target),
            **(extra or {}),
        },
    )
    write_summary_csv(run_dir / SUMMARY_CSV, summaries, target)
    if plot:
        plot_curves(trials, run_dir / CURVES_PNG, target=target)
        # report.html from what was just stored (it imports no report module: no cycle)
        from adacli.report.html import write_report_html

        write_report_html(run_dir, trials)


_STAT_FIELDS = (
    "final_test_accuracy",
    "best_test_accuracy",
    "final_train_eval_accuracy",
    "generalization_gap",
    "loss_gap",
    "steps_to_target",
    "seconds_to_target",
    "mean_train_loss",
    "final_train_loss",
    "step_time_ms",
    "optimizer_step_ms",
)


def summary_rows(summaries: Sequence[OptimizerSummary], target: Target | None) -> list[dict[str, Any]]:
    """The summary flattened to one dict per label (``<metric>_mean``, ``_std``, ``_n``) for CSV/tools."""
    rows = []
    for s in summaries:
        row: dict[str, Any] = {
            "optimizer": s.optimizer,
            "optimizer_class": s.optimizer_class,
            "n_trials": s.n_trials,
            "n_diverged": s.n_diverged,
            "n_failed": s.n_failed,
            "reached_fraction": s.reached_fraction,
            "target": None if target is None else target.value,
        }
        for name in _STAT_FIELDS:
            st: Stat = getattr(s, name)
            row[f"{name}_mean"] = st.mean
            row[f"{name}_std"] = st.std
            row[f"{name}_n"] = st.n
            row[f"{name}_ci95_lo"], row[f"{name}_ci95_hi"] = st.ci95 if st.ci95 else (None, None)
        row["state_bytes"] = s.state_bytes
        row["peak_memory_bytes"] = s.peak_memory_bytes
        row["hparams"] = json.dumps(_encode(s.hparams), sort_keys=True, default=str)
        rows.append(row)
    return rows


def write_summary_csv(path: str | Path, summaries: Sequence[OptimizerSummary], target: Target | None) -> None:
    """``summary.csv``: :func:`summary_rows` with a header; empty cells for missing values."""
    rows = summary_rows(summaries, target)
    header = list(rows[0]) if rows else ["optimizer"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def _load_trial_files(run_dir: Path) -> list[TrialResult]:
    trials = []
    for p in sorted((run_dir / TRIALS_DIR).glob("*.json")):
        try:
            trials.append(_trial_from_json(json.loads(p.read_text())))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
            raise InputError(f"not a valid trial file ({e})", file=str(p)) from None
    return trials


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder written by :func:`save_run` (or the trials a killed run left behind).

    When ``results.json`` is not ``complete`` (or absent but ``trials/`` holds files), trials saved by
    :func:`write_trial` that it lacks are merged in and the target and summary are recomputed from them
    (default target unless the stored recipe sets one). Raises :class:`InputError` (exit 2) when the folder,
    or both ``results.json`` and ``trials/``, are missing, or a file is not valid.
    """
    from adacli.analysis import metrics  # only needed to summarise an unfinished run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", file=str(run_dir))
    path = run_dir / RESULTS_FILE
    has_trials = (run_dir / TRIALS_DIR).is_dir()
    if not path.is_file():
        if not has_trials:
            raise InputError(
                f"no {RESULTS_FILE} (nor {TRIALS_DIR}/) here: not an adacli run folder", file=str(run_dir)
            )
        data: dict[str, Any] = {"status": "running", "recipe": {}, "environment": {}, "trials": []}
    else:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e.msg}", file=str(path), line=e.lineno) from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read: {e}", file=str(path)) from None
        if not isinstance(data, dict):
            raise InputError("expected a JSON object at the top level", file=str(path))
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise InputError("missing or invalid schema_version", file=str(path), field="schema_version")
        if version > SCHEMA_VERSION:
            raise InputError(
                f"written by a newer adacli (schema {version}; this one reads up to {SCHEMA_VERSION})",
                file=str(path),
                field="schema_version",
            )
        for key, kind in (("trials", list), ("recipe", dict), ("environment", dict)):
            if not isinstance(data.get(key), kind):
                raise InputError(f"missing or not a {kind.__name__}", file=str(path), field=key)

    try:
        trials = [_trial_from_json(t) for t in data["trials"]]
    except (TypeError, KeyError, AttributeError) as e:
        raise InputError(f"invalid trial record ({e})", file=str(path), field="trials") from None
    status = str(data.get("status", "complete"))
    known = {"schema_version", "status", "recipe", "environment", "trials", "summary", "target"}
    known |= VERDICT_KEYS
    extra = {k: v for k, v in data.items() if k not in known}

    if status == "complete":
        try:
            summaries = [OptimizerSummary.from_dict(s) for s in data.get("summary") or []]
            tdata = data.get("target")
            target = Target(**tdata) if isinstance(tdata, dict) else None
        except TypeError as e:
            raise InputError(f"invalid summary ({e})", file=str(path), field="summary") from None
    else:
        seen = {(t.label, t.seed) for t in trials}
        for t in _load_trial_files(run_dir) if has_trials else []:
            if (t.label, t.seed) not in seen:
                trials.append(t)
                seen.add((t.label, t.seed))
        from adacli.recipe import TargetSpec

        tspec = data["recipe"].get("target") if isinstance(data.get("recipe"), dict) else None
        try:
            spec = TargetSpec(**tspec) if isinstance(tspec, dict) else TargetSpec()
        except ValueError:
            spec = TargetSpec()
        target = metrics.resolve_target(trials, spec)
        summaries = metrics.summarize(trials, target)
        if status == "running":
            status = "interrupted"  # nobody is writing it any more when we read it back
    recipe = data.get("recipe") or {}
    stored = data if status == "complete" and "comparisons" in data else None
    return RunData(
        run_dir=run_dir,
        recipe=recipe,
        environment=data.get("environment") or {},
        trials=trials,
        summaries=summaries,
        target=target,
        status=status,
        schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
        extra=extra,
        verdict=_load_verdict(stored, trials, summaries, target, recipe.get("reference")),
    )


VERDICT_KEYS = {"comparisons", "best", "reference", "power"}


def _load_verdict(
    stored: dict[str, Any] | None,
    trials: list[TrialResult],
    summaries: list[OptimizerSummary],
    target: Target | None,
    reference: Any,
) -> Any:
    """The stored verdict of a complete run; for a run folder written before adacli kept one (or an
    unfinished run, whose summary was just recomputed) the statistics stage runs on the stored trials.
    This is the one place where this module computes statistics."""
    from adacli.analysis import verdict

    if stored is not None:
        return verdict.Verdict.from_dict(stored)
    return verdict.analyze(trials, summaries, target, reference if isinstance(reference, str) else None)


def run_json(run: RunData) -> dict[str, Any]:
    """The machine-readable summary of a run for ``--json`` output: status, target, summary."""
    return _encode(
        {
            "run_dir": str(run.run_dir),
            "status": run.status,
            "target": _target_to_dict(run.target),
            "summary": [s.to_dict() for s in run.summaries],
            **(run.verdict.to_dict() if run.verdict is not None else {}),
        }
    )


# --- curves ----------------------------------------------------------------------------------------


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


def plot_curves(trials: Sequence[TrialResult], path: str | Path, *, target: Target | None = None) -> None:
    """Draw ``curves.png``: smoothed training loss and test accuracy against steps and against seconds.

    One colour per optimizer label. The line is the mean over its seeds and the shaded band spans their
    min..max (with 2-5 seeds a std band says little); seeds are aligned by step, and on the time axes a
    point sits at the seeds' mean training clock for that step. The seeds drawn are the finished,
    non-diverged ones (diverged losses would swamp the scale; they are counted in the legend), or the
    non-diverged ones of any status when none finished. The loss axes are logarithmic and show the target
    as a dashed line. Uses the Agg canvas directly: no GUI backend or global pyplot state is touched.
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
    colours = [f"C{i % 10}" for i in range(len(groups))]
    any_loss = False

    def draw(ax: Any, x: Any, band: tuple[Any, Any, Any], colour: str, name: str, **kw: Any) -> None:
        mean, lo, hi = band
        ax.plot(x, mean, color=colour, label=name, **kw)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2, linewidth=0)

    for colour, (label, group) in zip(colours, groups.items(), strict=True):
        good = [t for t in group if usable(t)] or [t for t in group if t.losses and not trial_diverged(t)]
        n_div = sum(trial_diverged(t) for t in group)
        name = label + (f" ({n_div} diverged)" if n_div else "")
        if not good:
            ax_ls.plot([], [], color=colour, label=name)
            continue
        sm = _aligned([smooth_losses(t.losses) for t in good])
        n = len(sm[0])
        draw(ax_ls, range(1, n + 1), sm, colour, name)
        any_loss = True
        if all(len(t.times) >= n for t in good):
            t_mean = _aligned([t.times[:n] for t in good])[0]
            draw(ax_lt, t_mean, sm, colour, name)
        if all(t.evals for t in good):
            evals = _common_evals(good)
            if evals[0]:
                acc = _aligned([[e.test_accuracy for e in ev] for ev in evals])
                steps = [e.step for e in evals[0]]
                secs = _aligned([[e.seconds for e in ev] for ev in evals])[0]
                draw(ax_as, steps, acc, colour, name, marker="o", markersize=3)
                draw(ax_at, secs, acc, colour, name, marker="o", markersize=3)

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
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)


# --- environment -----------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment_info(device: Any) -> dict[str, Any]:
    """What a result depends on besides the recipe: versions, device, threads, platform.

    ``device`` is a torch.device or a string such as ``"cpu"`` or ``"cuda:0"``.
    """
    import importlib.metadata as md

    import torch

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = _cpu_name()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": version("timm"),
        "adacli": __version__,  # the code that ran, installed or not
        "numpy": version("numpy"),
        "device": str(dev),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return info


# --- live progress ---------------------------------------------------------------------------------


def progress_bars(console: Console, *, disable: bool = False, bar_width: int = 30) -> Progress:
    """The live display of a run: rows of description, bar, i/n, an info field and elapsed time.

    Shared by the serial compare and the multi-worker display so both read the same.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=bar_width),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        refresh_per_second=4,
        transient=False,
    )


class CompareProgress:
    """Live progress of a comparison: overall trials i/n, and the current trial's label, seed, step, loss.

    Use as a context manager around the trial loop::

        with CompareProgress(console) as progress:
            for i, trial in enumerate(plan):
                progress.trial_started(i, len(plan), trial.label, trial.seed)
                ...  # the trainer calls progress.step(step, total_steps, loss) every step
                progress.trial_finished(result)

    ``step`` is called on every training step, so it only stores its arguments and re-renders at most
    every ``min_interval`` seconds (one ``time.perf_counter()`` call and a comparison otherwise): its cost
    must not show in the measured step time. ``loss`` may be a float or a 0-dim tensor; it is only
    converted (a host sync on GPU) when rendered. With ``disable=True`` every method is a no-op.
    """

    def __init__(
        self,
        console: Console | None = None,
        *,
        disable: bool = False,
        min_interval: float = 0.2,
    ) -> None:
        self.console = console or Console(stderr=True)
        self.disable = disable
        self.min_interval = min_interval
        self._next_render = 0.0
        self._progress = progress_bars(self.console, disable=disable, bar_width=30)
        self._overall: Any = None
        self._trial: Any = None
        self._label = ""
        self._seed = 0
        self._step = 0
        self._total: int | None = None
        self._loss: Any = None
        self.started = 0
        self.finished = 0

    def __enter__(self) -> CompareProgress:
        if not self.disable:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.disable:
            self._render()
            self._progress.stop()

    def trial_started(self, index: int, total: int, label: str, seed: int) -> None:
        """A trial begins; ``index`` is 0-based (as from ``enumerate``), shown as ``index + 1``/``total``."""
        self.started += 1
        self._label, self._seed, self._step, self._total, self._loss = label, seed, 0, None, None
        if self.disable:
            return
        if self._overall is None:
            self._overall = self._progress.add_task("trials", total=total, info="")
        self._progress.update(self._overall, total=total, completed=index, info=f"trial {index + 1}/{total}")
        if self._trial is None:
            self._trial = self._progress.add_task("", total=None, info="")
        self._progress.reset(self._trial, total=None, description=f"{label} seed {seed}", info="")
        self._next_render = 0.0

    def step(self, step: int, total_steps: int | None, loss: Any) -> None:
        """Record the trainer's current step (1-based), its total (None for a time budget) and loss."""
        self._step, self._total, self._loss = step, total_steps, loss
        if self.disable:
            return
        now = time.perf_counter()
        if now >= self._next_render:
            self._next_render = now + self.min_interval
            self._render()

    def _render(self) -> None:
        if self._trial is None:
            return
        loss = self._loss
        try:
            value = float(loss) if loss is not None else None
        except (TypeError, ValueError, RuntimeError):
            value = None
        info = f"loss {value:.4g}" if value is not None else ""
        self._progress.update(self._trial, total=self._total, completed=self._step, info=info)

    def trial_finished(self, result: TrialResult) -> None:
        """A trial ended: advance the overall bar and print one line about it above the live display."""
        self.finished += 1
        if self.disable:
            return
        self._render()
        if self._overall is not None:
            self._progress.advance(self._overall)
        e = result.final_eval
        acc = f", test acc {e.test_accuracy:.2f}%" if e is not None else ""
        status = {
            "ok": "[green]done[/]",
            "diverged": "[red]diverged[/]",
            "failed": "[red]failed[/]",
            "interrupted": "[yellow]interrupted[/]",
        }.get(result.status, result.status)
        why = f" ({result.error})" if result.error and result.status != "ok" else ""
        self._progress.console.print(
            f"{status} {result.label} seed {result.seed}: {result.steps_done} steps in "
            f"{result.train_seconds:.2f} s{acc}{why}",
            highlight=False,
        )
