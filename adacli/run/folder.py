"""The run folder a run writes into: chosen safely, locked while written, and never overwriting finished
work.

Rules (what ``adacli compare`` promises about ``--out`` and ``--resume``):

* **Default folder** ``runs/<name>/<timestamp>/``: the recipe's name is reduced to a safe single path
  component, so no name (``..``, ``a/b``, ``/abs``) leads outside ``runs/``.
* **One writer.** A run holds ``adacli.lock`` (its pid) in the folder while it writes; another run that
  wants the folder gets exit 2. A lock whose pid is dead (a killed run) is stale and taken over.
* **Same setup.** ``--resume RUN`` continues a run only when its recipe setup (what determines a trial:
  model, dataset, budget, precision, schedule, and the device type) is the one being run; otherwise
  exit 2 naming the difference, e.g. ``model.name: test_resnet -> test_vit``. ``--out DIR`` into a
  non-empty folder is allowed only when DIR is such a run: it then continues it, as ``--resume`` does.
* **No overwrite.** A trial file whose name is taken by a *different* finished trial gets a ``~2``
  suffix instead of replacing it (failed, interrupted or damaged files are replaced: they are not
  finished work).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.errors import InputError
from adacli.results import TrialResult
from adacli.run import store
from adacli.run.keys import device_type, recipe_slice

LOCK_FILE = "adacli.lock"


def safe_component(name: str, fallback: str = "run") -> str:
    """``name`` as one harmless path component: separators and odd characters become ``_``, leading
    dots are dropped (no ``..``, no hidden folder), at most 80 characters."""
    text = re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).lstrip("._").rstrip("_")[:80]
    return text or fallback


def default_run_dir(recipe: Any, root: str | Path = "runs") -> Path:
    """``runs/<name>/<YYYYmmdd-HHMMSS>/`` (a numeric suffix when two runs start in the same second)."""
    base = Path(root) / safe_component(recipe.name) / time.strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    return path


# --- the lock ---------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class RunLock:
    """``adacli.lock`` in a run folder, holding this process's pid (see :func:`acquire_lock`)."""

    path: Path
    recovered_from: int | None = None  # the dead pid of a stale lock taken over

    def release(self) -> None:
        if _read_pid(self.path) == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()


def acquire_lock(run_dir: Path, option: str) -> RunLock:
    """Take the folder's lock (creating the folder): InputError (exit 2) when a live process holds it
    or the folder cannot be written."""
    path = run_dir / LOCK_FILE
    recovered = None
    for _ in range(3):
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _read_pid(path)
            if pid is None:  # just created by another run that has not written its pid yet?
                time.sleep(0.2)
                pid = _read_pid(path)
            if pid is not None and _pid_alive(pid):
                raise InputError(
                    f"another adacli run (pid {pid}) is writing this folder; wait for it, or choose another",
                    file=str(run_dir),
                    field=option,
                ) from None
            recovered = pid if pid is not None else -1
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        except OSError as e:
            why = e.strerror or str(e)
            raise InputError(f"cannot write here: {why}", file=str(run_dir), field=option) from None
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as e:  # a full disk takes the empty file but not its pid: no lock left behind
            with contextlib.suppress(OSError):
                path.unlink()
            why = e.strerror or str(e)
            raise InputError(f"cannot write here: {why}", file=str(run_dir), field=option) from None
        return RunLock(path, recovered)
    raise InputError("could not take the run folder's lock", file=str(run_dir), field=option)


# --- same setup? ------------------------------------------------------------------------------------


def setup_of(recipe_json: dict[str, Any], device: Any) -> dict[str, Any]:
    """What a run folder's trials depend on besides the optimizer and seed (see adacli.run.keys)."""
    return {**recipe_slice(recipe_json), "device": device_type(device or "cpu")}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)


def setup_difference(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> list[str]:
    """Differences between two setups as ``field: old -> new`` (at most ``limit``, then ``...``)."""
    a, b = _flat(old), _flat(new)
    keys = sorted(set(a) | set(b), key=lambda k: (k not in a, k not in b, k))
    diffs = [f"{k}: {_show(a.get(k))} -> {_show(b.get(k))}" for k in keys if a.get(k) != b.get(k)]
    return [*diffs[:limit], "..."] if len(diffs) > limit else diffs


# --- the folder ---------------------------------------------------------------------------------------


@dataclass
class RunFolder:
    """The folder a run writes into, locked, with what a previous run left there."""

    path: Path
    lock: RunLock
    resumed: bool  # a previous run's trials are reused
    created: bool  # this run created the folder (removed again if the run stops before writing)
    scan: store.FolderScan = field(default_factory=store.FolderScan)
    setup: dict[str, Any] = field(default_factory=dict)  # stamped into every trial file (see below)
    written: set[str] = field(default_factory=set)

    def warnings(self) -> list[str]:
        """One line per thing worth telling: a stale lock taken over, damaged trial files."""
        out = []
        if self.lock.recovered_from is not None:
            pid = self.lock.recovered_from
            who = f"pid {pid}" if pid > 0 else "an unknown process"
            out.append(f"warning: took over a stale lock of {who} (no longer running) in {self.path}")
        if self.scan.damaged:
            damaged = self.scan.damaged
            shown = ", ".join(damaged[:3]) + (", ..." if len(damaged) > 3 else "")
            out.append(
                f"warning: {len(damaged)} damaged file(s) ignored: {shown}; a trial they held runs again "
                "unless another file of the folder holds it"
            )
        return out

    def write_trial(self, result: TrialResult, index: int) -> Path:
        """Save one trial as ``trials/NNN-<label>-seed<S>.json`` (atomic), unless that name holds another
        finished trial of a previous run: then ``NNN-<label>-seed<S>~2.json`` (and so on).

        The file carries the run's setup (``extra.setup``), so a folder can be told apart from another
        setup's by its trial files alone, even when its results.json is lost or damaged."""
        tdir = self.path / store.TRIALS_DIR
        stem = f"{index:03d}-{safe_component(result.label, 'trial')[:60]}-seed{result.seed}"
        key = result.extra.get("trial_key")
        n = 1
        while True:
            name = f"{stem}.json" if n == 1 else f"{stem}~{n}.json"
            other = self.scan.files.get(name)
            if name in self.written or other is None or other == key:
                break
            n += 1
        self.written.add(name)
        stamped = dataclasses.replace(result, extra={**result.extra, "setup": self.setup})
        return store.write_trial(tdir / name, stamped)

    def close(self, wrote: bool) -> None:
        """Release the lock; a folder this run created and never wrote into is removed again."""
        self.lock.release()
        if self.created and not wrote:
            with contextlib.suppress(OSError):
                self.path.rmdir()


def _stored_setup(scan: store.FolderScan) -> dict[str, Any] | None:
    if not scan.recipe:
        return None
    return setup_of(scan.recipe, scan.environment.get("device"))


def _check_same_setup(path: Path, scan: store.FolderScan, setup: dict[str, Any], option: str) -> None:
    """The folder's setup, from its results.json and from every trial file that says which setup made
    it, must be ``setup``; a folder that says nothing (no readable results.json, trial files without a
    setup) cannot be checked and is refused too: mixing its trials with new ones could go unnoticed."""
    stored = _stored_setup(scan)
    if stored is None and not scan.setups:
        if option == "--out" or scan.unchecked:
            why = f"no readable {store.RESULTS_FILE}" + (
                f", and {scan.unchecked} trial file(s) that do not say which setup made them"
                if scan.unchecked
                else ""
            )
            what = "an adacli run folder" if option == "--out" else "a run folder whose setup can be checked"
            raise InputError(
                f"not empty and not {what} ({why}): choose an empty or new folder",
                file=str(path),
                field=option,
            )
        return
    for where, other in ([(store.RESULTS_FILE, stored)] if stored is not None else []) + scan.setups:
        diff = setup_difference(other, setup)
        if diff:
            raise InputError(
                f"made by another recipe setup ({'; '.join(diff)}; {where}): its trials cannot be reused and "
                "would be mixed with new ones; choose another folder",
                file=str(path),
                field=option,
            )


def _resume_dir(resume: str | Path, out_dir: str | Path | None) -> Path:
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise InputError("run folder to resume not found", file=str(run_dir), field="--resume")
    if not (run_dir / store.RESULTS_FILE).is_file() and not (run_dir / store.TRIALS_DIR).is_dir():
        raise InputError(
            f"not an adacli run folder (no {store.RESULTS_FILE} nor {store.TRIALS_DIR}/)",
            file=str(run_dir),
            field="--resume",
        )
    if out_dir is not None and Path(out_dir).resolve() != run_dir.resolve():
        raise InputError("--resume writes into the folder it resumes; drop --out", field="--out")
    return run_dir


def _occupied(path: Path) -> bool:
    return path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir())


def open_run_folder(
    recipe: Any, setup: dict[str, Any], *, out_dir: str | Path | None, resume: str | Path | None
) -> RunFolder:
    """Choose, check and lock the run folder (InputError, exit 2, for every refusal; nothing written)."""
    if resume is not None:
        path, option = _resume_dir(resume, out_dir), "--resume"
    elif out_dir is not None:
        path, option = Path(out_dir), "--out"
        if path.exists() and not path.is_dir():
            raise InputError("exists and is not a folder", file=str(path), field="--out")
    else:
        path, option = default_run_dir(recipe), "--out"
    created = not path.exists()
    try:
        lock = acquire_lock(path, option)
    except InputError:
        if created:  # nothing of this run may stay behind (a full disk took the folder, not the lock)
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    try:
        resumed = resume is not None or _occupied(path)
        scan = store.scan_folder(path) if resumed else store.FolderScan()
        if resumed:
            _check_same_setup(path, scan, setup, option)
    except BaseException:
        lock.release()
        raise
    return RunFolder(path, lock, resumed, created, scan, setup)


__all__ = [
    "LOCK_FILE",
    "RunFolder",
    "RunLock",
    "acquire_lock",
    "default_run_dir",
    "open_run_folder",
    "safe_component",
    "setup_difference",
    "setup_of",
]
