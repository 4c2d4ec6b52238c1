"""The run-folder store: the one reader and writer of ``results.json``, ``trials/`` and the files beside them.

Run folder layout (DESIGN.md section 5)::

    results.json      schema_version, status, recipe, environment, trials, summary, target, statistics
    summary.csv       one row per optimizer label (the summary, flattened)
    curves.png        training loss and test accuracy (rendered by adacli.report.plots)
    report.html       the self-contained page of the run (rendered by adacli.report.html)
    gate.json         the regression gate's verdict, when the run was judged against a baseline
    trials/NNN-<label>-seed<S>.json   each finished trial, written as soon as it finishes

``trials/`` exists so that a killed run (Ctrl-C, OOM, power) keeps every trial that finished:
:func:`start_run` writes a ``results.json`` with status ``running`` first, each trial gets its file as it
finishes, and :func:`load_run` merges those files in when ``results.json`` is not ``complete``.
A suite folder's ``results.json`` (``kind: "suite"``) goes through :func:`write_results` too.

Everything here reads and writes files and nothing else: what goes into ``results.json`` is
:meth:`RunData.results`, rendered pages and plots come in as text and bytes. Every write is atomic
(:func:`adacli.files.write_atomic`), so a reader never meets half a file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.errors import InputError
from adacli.files import write_atomic
from adacli.results import (
    SCHEMA_VERSION,
    OptimizerSummary,
    Stat,
    Target,
    TrialResult,
    dumps,
    encode,
    target_to_dict,
    trial_from_json,
)

RESULTS_FILE = "results.json"
SUMMARY_CSV = "summary.csv"
CURVES_PNG = "curves.png"
REPORT_HTML = "report.html"
GATE_JSON = "gate.json"
LR_SENSITIVITY_PNG = "lr_sensitivity.png"
PROFILES_PNG = "profiles.png"
TRIALS_DIR = "trials"
FINISHED = ("ok", "diverged")  # statuses a resume keeps; failed/interrupted trials run again
SUITE_KIND = "suite"


# --- the run, in memory -----------------------------------------------------------------------------


@dataclass
class RunData:
    """A run as ``results.json`` holds it: what the save step wrote, or what survived of a run cut short.

    ``verdict`` is the statistics stage's :class:`adacli.analysis.verdict.Verdict` (its fields are
    top-level keys of results.json); ``extra`` holds any other top-level key (``sweep``, ...); ``gate``
    the regression gate's verdict (``gate.json``) when the run was judged.
    """

    run_dir: Path
    recipe: dict[str, Any]
    environment: dict[str, Any]
    trials: list[TrialResult]
    summaries: list[OptimizerSummary]
    target: Target | None
    status: str = "complete"  # complete | interrupted | running (a run that never finished)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    verdict: Any = None
    gate: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # what reading the folder found (not saved)
    rebuilt: bool = False  # results.json was missing or damaged: this run was rebuilt from trial files

    def results(self) -> dict[str, Any]:
        """The content of ``results.json`` (numbers not yet encoded): the one definition of that file."""
        return {
            "schema_version": self.schema_version,
            "status": self.status,
            "recipe": self.recipe,
            "environment": self.environment,
            "trials": [t.to_dict() for t in self.trials],
            "summary": [s.to_dict() for s in self.summaries],
            "target": target_to_dict(self.target),
            **self.extra,
            **(self.verdict.to_dict() if self.verdict is not None else {}),
        }

    def summary_json(self) -> dict[str, Any]:
        """The machine-readable summary for ``--json`` output: status, target, summary, statistics and the
        sweep's choices (without the sweep trials' histories)."""
        out = {
            "run_dir": str(self.run_dir),
            "status": self.status,
            "target": target_to_dict(self.target),
            "summary": [s.to_dict() for s in self.summaries],
            **(self.verdict.to_dict() if self.verdict is not None else {}),
        }
        sweep = self.extra.get("sweep")
        if isinstance(sweep, dict):
            out["sweep"] = {k: v for k, v in sweep.items() if k != "trials"}
            out["sweep"]["n_trials"] = len(sweep.get("trials") or [])
        return encode(out)


# --- writing ---------------------------------------------------------------------------------------


def write_results(folder: Path, data: Mapping[str, Any]) -> Path:
    """Write ``folder/results.json``: the only function that writes that file (runs and suites)."""
    return write_atomic(Path(folder) / RESULTS_FILE, dumps(dict(data)))


def start_run(folder: Path, *, recipe: dict[str, Any], environment: dict[str, Any]) -> Path:
    """A ``results.json`` with status ``running`` and no trials yet, so that a run killed before its save
    still has its recipe and environment next to the trials it finished."""
    empty = RunData(Path(folder), recipe, environment, [], [], None, status="running")
    return write_results(folder, empty.results())


def write_trial(path: Path, result: TrialResult) -> Path:
    """One finished trial's file (the run folder chooses its name, see :mod:`adacli.run.folder`)."""
    return write_atomic(path, dumps(result.to_dict()))


def write_file(folder: Path, name: str, content: str | bytes) -> Path:
    """A rendered file of the run (curves.png, report.html, ...), written atomically."""
    return write_atomic(Path(folder) / name, content)


def save_run(run: RunData, files: Mapping[str, str | bytes]) -> None:
    """The run folder at the end of a run: ``results.json``, ``summary.csv``, ``gate.json`` when judged,
    and the rendered ``files`` (name -> content), each written once."""
    write_results(run.run_dir, run.results())
    write_atomic(run.run_dir / SUMMARY_CSV, summary_csv(run.summaries, run.target))
    if run.gate is not None:
        write_atomic(run.run_dir / GATE_JSON, dumps(run.gate))
    for name, content in files.items():
        write_file(run.run_dir, name, content)


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
    """The summary flattened to one dict per label (``<metric>_mean``, ``_std``, ``_n``, ``_ci95_lo/hi``)."""
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
        row["hparams"] = json.dumps(encode(s.hparams), sort_keys=True, default=str)
        rows.append(row)
    return rows


def summary_csv(summaries: Sequence[OptimizerSummary], target: Target | None) -> str:
    """``summary.csv``: :func:`summary_rows` with a header; empty cells for missing values."""
    rows = summary_rows(summaries, target)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["optimizer"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return out.getvalue()


# --- reading a run ---------------------------------------------------------------------------------


def _read_results_file(path: Path) -> dict[str, Any]:
    """``results.json`` as a dict whose top-level fields have the types the readers rely on."""
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
    return data


def _trial_files(run_dir: Path, notes: list[str]) -> list[TrialResult]:
    """The readable trial files of a folder; a damaged one is left out, with a note."""
    trials = []
    for p in sorted((run_dir / TRIALS_DIR).glob("*.json")):
        try:
            trials.append(_checked(trial_from_json(json.loads(p.read_text()))))
        except Exception as e:  # cut short, not JSON, fields of the wrong type: the others still count
            notes.append(f"{TRIALS_DIR}/{p.name} is damaged ({_why(e)}): left out")
    return trials


def _stored_data(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    """results.json's content; when it is missing or damaged but trial files survive, what is rebuilt
    from them (their setup as the recipe, status ``running``: the trials are merged in and summarized)."""
    path = run_dir / RESULTS_FILE
    trial_files = sorted((run_dir / TRIALS_DIR).glob("*.json"))
    if path.is_file():
        try:
            return _read_results_file(path)
        except InputError as e:
            if not trial_files:
                raise
            notes.append(
                f"{RESULTS_FILE} is damaged ({e.message}): rebuilt from {len(trial_files)} trial files"
            )
    elif not (run_dir / TRIALS_DIR).is_dir():
        raise InputError(
            f"no {RESULTS_FILE} (nor {TRIALS_DIR}/) here: not an adacli run folder", file=str(run_dir)
        )
    return {"status": "running", "recipe": _setup_as_recipe(trial_files), "environment": {}, "trials": []}


def _setup_as_recipe(trial_files: list[Path]) -> dict[str, Any]:
    """The recipe setup the trial files name (model, dataset, budget, precision, schedule), or {}."""
    for p in trial_files:
        try:
            setup = json.loads(p.read_text()).get("extra", {}).get("setup")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(setup, dict):
            return {k: v for k, v in setup.items() if k != "device"}
    return {}


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder written by :func:`save_run` (or the trials a killed run left behind).

    When ``results.json`` is not ``complete`` (or absent, or damaged, but ``trials/`` holds files), trial
    files it lacks are merged in and the target, summary and statistics are recomputed from them (the
    stored recipe's target, or the default); ``RunData.notes`` says when results.json was rebuilt. Raises
    :class:`InputError` (exit 2) when the folder, or both ``results.json`` and ``trials/``, are missing, or
    a file is not valid and no trial file can stand in for it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("run folder not found", file=str(run_dir))
    notes: list[str] = []
    data = _stored_data(run_dir, notes)
    try:
        trials = [trial_from_json(t) for t in data["trials"]]
    except (TypeError, KeyError, AttributeError) as e:
        where = str(run_dir / RESULTS_FILE)
        raise InputError(f"invalid trial record ({e})", file=where, field="trials") from None
    status = str(data.get("status", "complete"))
    run = RunData(run_dir, data.get("recipe") or {}, data.get("environment") or {}, trials, [], None, status)
    run.schema_version = int(data.get("schema_version", SCHEMA_VERSION))
    run.notes = notes
    run.rebuilt = "schema_version" not in data
    run.extra = {k: v for k, v in data.items() if k not in _known_keys()}
    run.gate = _read_gate(run_dir)
    if status == "complete":
        _stored_statistics(run, data)
    else:
        _recomputed_statistics(run, data.get("seeds"))
    return run


def _known_keys() -> set[str]:
    from adacli.analysis.verdict import Verdict

    base = {"schema_version", "status", "recipe", "environment", "trials", "summary", "target"}
    return base | {f.name for f in dataclasses.fields(Verdict)}


def _stored_statistics(run: RunData, data: dict[str, Any]) -> None:
    """A complete run's stored summary, target and verdict (a folder written before adacli kept a verdict
    gets one computed from its trials)."""
    from adacli.analysis import verdict

    try:
        run.summaries = [OptimizerSummary.from_dict(s) for s in data.get("summary") or []]
        tdata = data.get("target")
        run.target = Target(**tdata) if isinstance(tdata, dict) else None
    except TypeError as e:
        where = str(run.run_dir / RESULTS_FILE)
        raise InputError(f"invalid summary ({e})", file=where, field="summary") from None
    if "comparisons" in data and "headline" in data:
        run.verdict = verdict.Verdict.from_dict(data)
    else:  # written before adacli kept a verdict, or the four outcomes: judged now, from the trials
        settings = verdict.Settings.of_run(run.recipe, run.environment, data.get("seeds"))
        run.verdict = verdict.analyze(run.trials, run.summaries, run.target, settings=settings)


def _recomputed_statistics(run: RunData, seeds: Any = None) -> None:
    """A run that did not finish: its trial files merged in, target, summary and verdict recomputed."""
    from adacli.analysis import metrics, verdict
    from adacli.recipe import TargetSpec

    seen = {(t.label, t.seed) for t in run.trials}
    if (run.run_dir / TRIALS_DIR).is_dir():
        for t in _trial_files(run.run_dir, run.notes):
            if (t.label, t.seed) not in seen:
                run.trials.append(t)
                seen.add((t.label, t.seed))
    tspec = run.recipe.get("target")
    try:
        spec = TargetSpec(**tspec) if isinstance(tspec, dict) else TargetSpec()
    except ValueError:
        spec = TargetSpec()
    settings = verdict.Settings.of_run(run.recipe, run.environment, seeds)
    run.target = metrics.resolve_target(run.trials, spec, reference=settings.reference)
    run.summaries = metrics.summarize(run.trials, run.target)
    run.verdict = verdict.analyze(run.trials, run.summaries, run.target, settings=settings)
    if run.status == "running":
        run.status = "interrupted"  # nobody is writing it any more when we read it back


def _read_gate(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / GATE_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- reading a folder for a resume -------------------------------------------------------------------


@dataclass
class FolderScan:
    """What a run folder holds for a resume: its finished trials by key, which trial file holds which
    finished trial, the files that could not be read, and the stored recipe and environment."""

    finished: dict[str, TrialResult] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # trials/ file name -> key of its finished trial
    damaged: list[str] = field(default_factory=list)  # e.g. "trials/003-adam-seed1.json (not JSON)"
    recipe: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    setups: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (trial file, the setup it names)
    unchecked: int = 0  # readable trial files that do not name their setup (written by an older adacli)


def _why(e: BaseException) -> str:
    if isinstance(e, json.JSONDecodeError):
        return "cut short or not JSON"
    return f"{type(e).__name__}: {e}".splitlines()[0][:80]


def _checked(t: TrialResult) -> TrialResult:
    """A stored trial whose fields have the types the run relies on (else ValueError)."""
    if not isinstance(t.extra, dict) or not isinstance(t.hparams, dict) or not isinstance(t.losses, list):
        raise ValueError("fields of the wrong type")
    if not isinstance(t.seed, int) or not isinstance(t.label, str) or not isinstance(t.optimizer, str):
        raise ValueError("fields of the wrong type")
    return t


def _scan_results(path: Path, scan: FolderScan) -> list[TrialResult]:
    """The stored recipe and environment, and the trials and sweep trials of ``results.json``."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        scan.damaged.append(f"{path.name} ({_why(e)})")
        return []
    scan.recipe = data.get("recipe") if isinstance(data.get("recipe"), dict) else {}
    scan.environment = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    sweep = data.get("sweep") if isinstance(data.get("sweep"), dict) else {}
    out = []
    for t in [*(data.get("trials") or []), *(sweep.get("trials") or [])]:
        try:
            out.append(_checked(trial_from_json(t)))
        except Exception:  # a damaged record is skipped; its trial runs again
            continue
    return out


def scan_folder(run_dir: str | Path) -> FolderScan:
    """Read a run folder for a resume. Never raises for damaged content: a truncated or corrupted trial
    file (or results.json) is listed in ``damaged`` and its trial simply runs again; failed and
    interrupted trials are not finished, so they run again too."""
    from adacli.run.keys import stored_key

    run_dir = Path(run_dir)
    scan = FolderScan()
    stored: list[tuple[str | None, TrialResult]] = []
    if (run_dir / RESULTS_FILE).is_file():
        stored += [(None, t) for t in _scan_results(run_dir / RESULTS_FILE, scan)]
    for p in sorted((run_dir / TRIALS_DIR).glob("*.json")):
        try:
            stored.append((p.name, _checked(trial_from_json(json.loads(p.read_text())))))
        except Exception as e:  # any damage: reported, the trial runs again
            scan.damaged.append(f"{TRIALS_DIR}/{p.name} ({_why(e)})")
    for name, t in stored:
        if name is not None and isinstance(t.extra.get("setup"), dict):
            scan.setups.append((f"{TRIALS_DIR}/{name}", t.extra["setup"]))
        elif name is not None:
            scan.unchecked += 1
    for name, t in stored:
        try:
            key = stored_key(t) if t.status in FINISHED else None
        except Exception:  # hyperparameters that cannot be hashed: not reusable
            key = None
        if key is None:
            continue
        scan.finished.setdefault(key, t)
        if name is not None:
            scan.files[name] = key
    return scan


# --- suite folders -----------------------------------------------------------------------------------


def results_kind(folder: Path) -> str | None:
    """The ``kind`` of a folder's results.json ("" for a run folder's), None when there is none to read."""
    try:
        data = json.loads((Path(folder) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(data.get("kind", "")) if isinstance(data, dict) else ""


def load_suite_results(folder: Path) -> dict[str, Any]:
    """A suite folder's results.json (InputError when it is not one)."""
    path = Path(folder) / RESULTS_FILE
    if results_kind(folder) != SUITE_KIND:
        why = f'not a suite folder (no {RESULTS_FILE} with "kind": "{SUITE_KIND}")'
        raise InputError(why, file=str(path))
    return json.loads(path.read_text())


__all__ = [
    "CURVES_PNG",
    "FINISHED",
    "GATE_JSON",
    "LR_SENSITIVITY_PNG",
    "PROFILES_PNG",
    "REPORT_HTML",
    "RESULTS_FILE",
    "SUITE_KIND",
    "SUMMARY_CSV",
    "TRIALS_DIR",
    "FolderScan",
    "RunData",
    "load_run",
    "load_suite_results",
    "results_kind",
    "save_run",
    "scan_folder",
    "start_run",
    "summary_csv",
    "summary_rows",
    "write_file",
    "write_results",
    "write_trial",
]
