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
* the adacli and torch versions (a new version may compute differently);
* **the code that computes the trial**: a fingerprint of the source of adacli's optimizer and training
  modules (``adacli/optim``, ``adacli/train``) and, for a user's optimizer (``package.module:Class``), of
  its module file. A version string is not enough: a CI runner that keeps its workspace re-runs the gate
  into the same ``--out`` after a change to AdaBelief, and every trial of the old code would be reused
  ("no regression" without running anything). With the code in the key, changed code trains again.

Labels, the executor, the number of workers and threads are not in the key: they do not change what the
trial computes (threads may change float reduction order, which is noise far below seed variance).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from adacli.results import TrialResult

KEY_VERSION = 3  # 2: the code fingerprint entered the key; 3: the train-eval subset is capped at 2048
# images (evaluations of larger sets differ)

#: the packages whose source computes a trial (their fingerprint enters every key)
CODE_PACKAGES = ("optim", "train")


def versions() -> dict[str, str]:
    """The versions that enter every key."""
    import torch

    import adacli

    return {"adacli": adacli.__version__, "torch": torch.__version__}


@functools.cache
def code_fingerprint() -> str:
    """A hash of the source of adacli's optimizer and training modules (read once per process)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def optimizer_fingerprint(cls: type) -> str | None:
    """A hash of the module file of a user's optimizer class; None for adacli's own (covered by
    :func:`code_fingerprint`), torch's and timm's (their versions) and classes without a source file."""
    module = sys.modules.get(cls.__module__)
    top = cls.__module__.split(".")[0]
    if top in ("adacli", "torch", "timm", "pytorch_optimizer") or module is None:
        return None
    file = getattr(module, "__file__", None)
    if not file:
        return None
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


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
    code: dict[str, str | None] | None = None,
) -> str:
    """The content hash of one trial (40 hex digits); ``code``: the fingerprints of the code that
    computes it (``{"adacli": code_fingerprint(), "optimizer": optimizer_fingerprint(cls)}``)."""
    material = {
        "key_version": KEY_VERSION,
        "recipe": _norm(slice_),
        "optimizer": optimizer,
        "optimizer_class": optimizer_class,
        "hparams": _norm(hparams),
        "seed": int(seed),
        "device_type": device_type,
        "versions": {k: versions_.get(k) for k in ("adacli", "torch")},
        "code": code,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def device_type(device: Any) -> str:
    return str(device).split(":")[0]


def stored_key(trial: TrialResult) -> str | None:
    """The key a stored trial was saved with; None for a trial saved without one (its code is unknown,
    so it is never reused)."""
    key = trial.extra.get("trial_key")
    return key if isinstance(key, str) else None


__all__ = [
    "CODE_PACKAGES",
    "KEY_VERSION",
    "code_fingerprint",
    "device_type",
    "optimizer_fingerprint",
    "recipe_slice",
    "stored_key",
    "trial_key",
    "versions",
]
