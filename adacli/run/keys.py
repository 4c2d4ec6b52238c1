"""Trial keys: a content hash of everything that determines a trial, so "already done?" is a look-up.

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
from typing import Any

from adacli.results import TrialResult

KEY_VERSION = 1


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


__all__ = ["device_type", "recipe_slice", "stored_key", "trial_key", "versions"]
