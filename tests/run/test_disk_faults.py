"""Disk faults on a real file system: a full or read-only disk is one line naming the path, exit 2 before
training and exit 1 after (finished trials intact), never a half-written or 0-byte temporary file, and a
resume afterwards works.

The faults are real: a small tmpfs (when this process may mount one, as root in a container can) filled
to the point wanted (ENOSPC, where tests/run/test_faults.py uses a file-size limit), and a read-only
tmpfs (EROFS).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import invoke, one_line, write_recipe

OPTIMIZERS = ["{name: adam}", "{name: sgd}"]


def _mount(folder: Path, options: str) -> Path:
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or 'not root'})")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs; ``fill(free)`` leaves ``free`` bytes on it."""
    disk = _mount(tmp_path / "disk", "size=1m")

    def fill(free: int) -> None:
        filler = disk / "filler"
        filler.unlink(missing_ok=True)
        total = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * max(0, total - free))

    yield disk, fill
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    """Temporary, lock or empty files anywhere under ``folder``."""
    bad = []
    for p in folder.rglob("*"):
        if p.is_file() and (p.name.endswith(".tmp") or p.name == "adacli.lock" or p.stat().st_size == 0):
            bad.append(str(p.relative_to(folder)))
    return bad


def test_a_full_disk_before_training_is_exit_2_and_leaves_nothing(small_disk, tmp_path):
    disk, fill = small_disk
    fill(0)
    recipe = write_recipe(tmp_path, OPTIMIZERS)
    res = invoke("compare", str(recipe), "--out", str(disk / "run"), "--threads", "1")
    assert res.exit_code == 2, res.output
    assert "No space left on device" in res.output and str(disk / "run") in res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no folder, no lock, no .tmp


def test_a_disk_full_after_training_is_exit_1_with_trials_intact_and_resume_works(small_disk, tmp_path):
    disk, fill = small_disk
    fill(60_000)  # the trial files and results.json fit, curves.png does not
    recipe = write_recipe(tmp_path, OPTIMIZERS)
    run = disk / "run"
    res = invoke("compare", str(recipe), "--out", str(run), "--threads", "1")
    assert res.exit_code == 1, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in res.output
    trials = sorted((run / "trials").glob("*.json"))
    assert [json.loads(p.read_text())["status"] for p in trials] == ["ok", "ok"]
    assert _leftovers(run) == []
    fill(900_000)
    again = invoke("compare", str(recipe), "--resume", str(run), "--threads", "1")
    assert again.exit_code == 0, again.output
    assert "trials run: 0, reused: 2" in one_line(again.output)
    assert json.loads((run / "results.json").read_text())["status"] == "complete"
    assert (run / "curves.png").stat().st_size > 0 and _leftovers(run) == []


def test_a_read_only_disk_is_exit_2_naming_the_folder(tmp_path):
    disk = _mount(tmp_path / "ro", "size=64k,ro")
    try:
        res = invoke("compare", str(write_recipe(tmp_path, OPTIMIZERS)), "--out", str(disk / "run"))
        assert res.exit_code == 2, res.output
        assert "Read-only file system" in res.output and f"{disk / 'run'}: --out:" in one_line(res.output)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
