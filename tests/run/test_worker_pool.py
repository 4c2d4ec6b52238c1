"""The local worker pool: workers that start once and serve several recipes, as many as there is work
for (never more than ``--jobs`` or the cap), one torch thread each, and none left behind when the parent
is killed.

Tiny recipes (test_resnet on 8 px synthetic images, a few steps); one torch thread per trial everywhere,
so the pool's results are compared with the serial ones bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adacli.cli import app
from adacli.recipe import load_recipe
from adacli.run.executors import LocalExecutor, SerialExecutor, WorkerSetup, max_local_workers
from adacli.run.plan import build_plan
from adacli.train.step import resolve_device

pytestmark = pytest.mark.usefixtures("one_thread")

DATASET = "{name: synthetic, image_size: 8, num_classes: 4, channels: 1, train_size: 256, test_size: 64}"
OTHER_DATASET = (
    "{name: synthetic, image_size: 8, num_classes: 3, channels: 3, train_size: 192, test_size: 48}"
)


def write_recipe(path: Path, *, dataset: str = DATASET, seeds: int = 2, budget: str | None = None) -> Path:
    budget = budget or "{steps: 6, batch_size: 32, eval_every: 3}"
    path.write_text(
        f"name: {path.stem}\nmodel: {{name: test_resnet}}\ndataset: {dataset}\nbudget: {budget}\n"
        f"seeds: {seeds}\ndevice: cpu\noptimizers:\n  - {{name: adam}}\n  - {{name: sgd, lr: 0.05}}\n"
    )
    return path


def tasks_and_setup(path: Path):
    recipe = load_recipe(path)
    plan = build_plan(recipe, resolve_device("cpu"))
    setup = WorkerSetup(recipe=recipe.model_dump(mode="json"), device="cpu", threads=1)
    return plan.first_tasks(), setup


def run_all(executor, jobs_by_setup) -> dict[tuple[str, int], object]:
    """Submit every (setup, tasks) group through ``use`` and collect results by (recipe, task index)."""
    executor.start(lambda ev: None)
    out: dict[tuple[str, int], object] = {}
    owner: dict[int, str] = {}
    try:
        for name, (tasks, setup) in jobs_by_setup.items():
            executor.use(setup)
            for t in tasks:
                owner[id(t)] = name
                executor.submit(t)
            while executor.outstanding:
                for task, result in executor.wait(0.5):
                    out[(owner[id(task)], task.index)] = result
        return out
    finally:
        executor.close()


def _figures(ev) -> dict:
    """An evaluation's figures without its clock reading (times differ from run to run)."""
    return {k: v for k, v in vars(ev).items() if k != "seconds"}


def test_one_pool_serves_several_recipes_with_the_serial_numbers(tmp_path):
    """Two recipes (different datasets and models' heads) through one two-worker pool: every trial equals
    the serial one bit for bit, and the two workers that started served both recipes."""
    groups = {
        "a": tasks_and_setup(write_recipe(tmp_path / "a.yaml")),
        "b": tasks_and_setup(write_recipe(tmp_path / "b.yaml", dataset=OTHER_DATASET)),
    }
    pool = LocalExecutor(groups["a"][1], jobs=2, devices=["cpu"], threads=1)
    pooled = run_all(pool, groups)
    serial = run_all(SerialExecutor(WorkerSetup(groups["a"][1].recipe, "cpu", threads=1)), groups)
    assert set(pooled) == set(serial) and len(pooled) == 8
    for k, r in pooled.items():
        s = serial[k]
        assert r.status == s.status == "ok", (k, r.error)
        assert r.losses == s.losses, k  # bit for bit
        assert [_figures(e) for e in r.evals] == [_figures(e) for e in s.evals], k
        assert r.extra["val"] == s.extra["val"]
        assert r.extra["worker"]["threads"] == 1
    described = pool.describe()
    assert described["workers"] == 2 and described["worker_restarts"] == []
    pids = {r.extra["worker"]["pid"] for r in pooled.values()}
    assert len(pids) == 2  # the two workers started once and ran both recipes
    for pid in pids:
        assert {name for (name, _), r in pooled.items() if r.extra["worker"]["pid"] == pid} == {"a", "b"}


def test_workers_start_for_the_work_there_is(tmp_path):
    """``--jobs 8`` on a one-trial recipe starts one worker."""
    path = write_recipe(tmp_path / "one.yaml", seeds=1)
    path.write_text(path.read_text().replace("  - {name: sgd, lr: 0.05}\n", ""))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["compare", str(path), "--jobs", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ex = json.loads((out / "results.json").read_text())["environment"]["executor"]
    assert ex["kind"] == "local" and ex["jobs"] == 8 and ex["workers"] == 1, ex
    assert ex["threads_per_worker"] == 1 and len(ex["worker_ready_s"]) == 1


def test_absurd_jobs_is_exit_2_naming_the_cap(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", seeds=1)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["compare", str(path), "--jobs", "100000", "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "--jobs" in text and f"at most {max_local_workers()}" in text and "Traceback" not in text
    assert not (out / "trials").exists()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _group(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_of_the_parent_leaves_no_worker_behind(tmp_path):
    """A real ``--jobs 2`` run, SIGKILLed while both workers train: ten seconds later none of its
    processes (workers, the process they are forked from) is alive."""
    path = write_recipe(tmp_path / "r.yaml", budget="{seconds: 60, batch_size: 32, eval_every: 1000}")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "adacli", "compare", str(path), "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: every process it starts can be found
    )
    try:
        deadline = time.monotonic() + 120
        while len(_group(proc.pid)) < 4:  # the parent, the forkserver, two workers (+ resource tracker)
            assert proc.poll() is None, "the run ended before its workers started"
            assert time.monotonic() < deadline, "the workers did not start in 120 s"
            time.sleep(0.1)
        time.sleep(1.0)  # both workers are in their first trial
        left = [p for p in _group(proc.pid) if p != proc.pid]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in left if _alive(p)], "processes outlived their killed parent"
    finally:
        for p in _group(proc.pid):
            os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def _trial_figures(run_dir: Path) -> dict:
    """Every trial's numbers (not its clock readings) and the summary's non-time figures."""
    data = json.loads((run_dir / "results.json").read_text())
    trials = {
        (t["label"], t["seed"]): (
            t["losses"],
            [{k: v for k, v in e.items() if k != "seconds"} for e in t["evals"]],
            t["extra"]["val"],
            t["extra"]["init_fingerprint"],
        )
        for t in data["trials"]
    }
    keep = (
        "final_test_accuracy",
        "best_test_accuracy",
        "generalization_gap",
        "steps_to_target",
        "mean_train_loss",
    )
    summary = [{k: s[k] for k in keep} for s in data["summary"]]
    return {"trials": trials, "summary": summary}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_default_numbers_are_the_same_on_one_core_two_cores_serial_and_jobs_2(tmp_path):
    """The default executor (one-thread workers, one per core), ``--jobs 1``, ``--jobs 2`` and the
    default on a single core (``taskset -c 0``: one in-process trial at a time) give bit-identical
    trials and summaries."""
    path = write_recipe(tmp_path / "r.yaml")
    runs = {}
    for name, args in {"serial": ["--jobs", "1"], "jobs 2": ["--jobs", "2"], "default": []}.items():
        runs[name] = tmp_path / name.replace(" ", "")
        res = CliRunner().invoke(app, ["compare", str(path), "--out", str(runs[name]), *args])
        assert res.exit_code == 0, res.output
    runs["one core"] = tmp_path / "onecore"
    core = min(os.sched_getaffinity(0))
    proc = subprocess.run(
        [sys.executable, "-m", "adacli", "compare", str(path), "--out", str(runs["one core"])],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),  # what `taskset -c 0` does
    )
    assert proc.returncode == 0, proc.stderr
    reference = _trial_figures(runs["serial"])
    assert len(reference["trials"]) == 4
    for name, run_dir in runs.items():
        assert _trial_figures(run_dir) == reference, name
    executors = {
        n: json.loads((d / "results.json").read_text())["environment"]["executor"] for n, d in runs.items()
    }
    assert executors["one core"]["kind"] == "serial" and executors["one core"]["threads"] == 1
    assert executors["one core"]["default"] and not executors["serial"]["default"]
    default = executors["default"]
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        assert default["kind"] == "local" and default["workers"] == min(cores, 4) == default["jobs"]
        assert default["threads_per_worker"] == 1
