"""Trial keys and resume: a content hash of everything that determines a trial, and the finished trials
of a run folder indexed by it.

Why content hashes rather than positions in the plan: a resumed run may have more seeds, another grid or
another executor, and the same trial can appear twice in one run (the chosen configuration's trial on
the selection seed is both a sweep trial and a final trial). A key that depends only on *what the trial
computes* makes "already done?" a dictionary look-up in all those cases.

The key hashes (canonical JSON, SHA-256):

* the recipe slice a trial depends on: ``model``, ``dataset`` (without ``download``), ``budget``,
  ``precision``, ``schedule``;
* the optimizer: its name as written, its class (module.Class) and every resolved hyperparameter
  (defaults included; numbers normalized so ``0`` and ``0.0`` agree, tuples and lists alike);
* the seed and the device type (``cpu`` / ``cuda`` / ``mps``: numbers differ between them);
* the adacli and torch versions (a new version may compute differently).

Labels, the executor, the number of workers and threads are not in the key: they do not change what the
trial computes (threads may change float reduction order, which is noise far below seed variance).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.results import TrialResult

KEY_VERSION = 1
FINISHED = ("ok", "diverged")  # statuses a resume keeps; failed/interrupted trials run again


def versions() -> dict[str, str]:
    """The versions that enter every key."""
    import torch

    import adacli

    return {"adacli": adacli.__version__, "torch": torch.__version__}


def recipe_slice(recipe: Any) -> dict[str, Any]:
    """The part of a recipe (a ``Recipe`` or its JSON dump) that determines a trial."""
    data = recipe if isinstance(recipe, dict) else recipe.model_dump(mode="json")
    dataset = dict(data.get("dataset") or {})
    dataset.pop("download", None)
    return {
        "model": data.get("model"),
        "dataset": dataset,
        "budget": data.get("budget"),
        "precision": data.get("precision", "fp32"),
        "schedule": data.get("schedule"),
    }


def _norm(v: Any) -> Any:
    """Canonical form of a value for hashing: numbers as floats, tuples as lists, keys sorted."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        return f if math.isfinite(f) else repr(f)
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    return repr(v)


def trial_key(
    slice_: dict[str, Any],
    *,
    optimizer: str,
    optimizer_class: str,
    hparams: dict[str, Any],
    seed: int,
    device_type: str,
    versions_: dict[str, Any],
) -> str:
    """The content hash of one trial (40 hex digits)."""
    material = {
        "key_version": KEY_VERSION,
        "recipe": _norm(slice_),
        "optimizer": optimizer,
        "optimizer_class": optimizer_class,
        "hparams": _norm(hparams),
        "seed": int(seed),
        "device_type": device_type,
        "versions": {k: versions_.get(k) for k in ("adacli", "torch")},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def device_type(device: Any) -> str:
    return str(device).split(":")[0]


def stored_key(trial: TrialResult, recipe_json: dict[str, Any], environment: dict[str, Any]) -> str | None:
    """The key of a stored trial: the one it was saved with, else recomputed from the run's recipe and
    environment (trials saved by plain ``adacli compare`` carry no key)."""
    key = trial.extra.get("trial_key")
    if isinstance(key, str):
        return key
    if not recipe_json:
        return None
    device = trial.extra.get("device") or environment.get("device") or "cpu"
    # environment_info reads the installed package's metadata: None when adacli runs from a source
    # checkout that was never installed; then the version is taken to be this one
    stored_versions = {
        "adacli": environment.get("adacli") or versions()["adacli"],
        "torch": environment.get("torch"),
    }
    return trial_key(
        recipe_slice(recipe_json),
        optimizer=trial.optimizer,
        optimizer_class=trial.optimizer_class,
        hparams=trial.hparams,
        seed=trial.seed,
        device_type=device_type(device),
        versions_=stored_versions,
    )


@dataclass
class FolderScan:
    """What a run folder holds for a resume: its finished trials by key, which trial file holds which
    finished trial, the files that could not be read, and the stored recipe and environment."""

    finished: dict[str, TrialResult] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # trials/ file name -> key of its finished trial
    damaged: list[str] = field(default_factory=list)  # e.g. "trials/003-adam-seed1.json (not JSON)"
    recipe: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


def _why(e: BaseException) -> str:
    if isinstance(e, json.JSONDecodeError):
        return "cut short or not JSON"
    return f"{type(e).__name__}: {e}".splitlines()[0][:80]


def _read_results(path: Path, scan: FolderScan) -> list[TrialResult]:
    """The stored recipe and environment, and the trials and sweep trials of ``results.json``."""
    from adacli.report import tables as report

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
            out.append(_checked(report._trial_from_json(t)))
        except Exception:  # a damaged record is skipped; its trial runs again
            continue
    return out


def _checked(t: TrialResult) -> TrialResult:
    """A stored trial whose fields have the types the run relies on (else ValueError)."""
    if not isinstance(t.extra, dict) or not isinstance(t.hparams, dict) or not isinstance(t.losses, list):
        raise ValueError("fields of the wrong type")
    if not isinstance(t.seed, int) or not isinstance(t.label, str) or not isinstance(t.optimizer, str):
        raise ValueError("fields of the wrong type")
    return t


def _key(t: TrialResult, scan: FolderScan) -> str | None:
    try:
        return stored_key(t, scan.recipe, scan.environment)
    except Exception:  # hyperparameters that cannot be hashed: not reusable
        return None


def scan_folder(run_dir: str | Path) -> FolderScan:
    """Read a run folder for a resume. Never raises for damaged content: a truncated or corrupted trial
    file (or results.json) is listed in ``damaged`` and its trial simply runs again; failed and
    interrupted trials are not finished, so they run again too."""
    from adacli.report import tables as report

    run_dir = Path(run_dir)
    scan = FolderScan()
    stored: list[tuple[str | None, TrialResult]] = []
    results = run_dir / report.RESULTS_FILE
    if results.is_file():
        stored += [(None, t) for t in _read_results(results, scan)]
    for p in sorted((run_dir / report.TRIALS_DIR).glob("*.json")):
        try:
            stored.append((p.name, _checked(report._trial_from_json(json.loads(p.read_text())))))
        except Exception as e:  # any damage: reported, the trial runs again
            scan.damaged.append(f"{report.TRIALS_DIR}/{p.name} ({_why(e)})")
    for name, t in stored:
        key = _key(t, scan) if t.status in FINISHED else None
        if key is None:
            continue
        scan.finished.setdefault(key, t)
        if name is not None:
            scan.files[name] = key
    return scan


def finished_trials(run_dir: str | Path) -> dict[str, TrialResult]:
    """Every finished trial (status ok or diverged) of a run folder by key (see :func:`scan_folder`)."""
    return scan_folder(run_dir).finished


__all__ = [
    "FINISHED",
    "FolderScan",
    "device_type",
    "finished_trials",
    "recipe_slice",
    "scan_folder",
    "stored_key",
    "trial_key",
    "versions",
]
