"""Executors and resume: serial, ``--jobs 2`` (with a worker killed mid-trial) and a real local Ray
instance give the same per-trial results and summary; resume skips finished trials (counted from the
outside, by the optimizers themselves); a real SIGINT to a ``--jobs 2`` sweep loses nothing that
finished, and the resumed run completes it.

Tiny recipes (test_resnet on 8 px synthetic images, 6 steps). Every run pins torch to one thread per
trial, so float reductions happen in the same order everywhere (``--threads 1``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from executor_fixtures import write_recipe
from helpers import invoke

from adacli.recipe import load_recipe
from adacli.run import keys, store
from adacli.run.executors import ProgressEvent
from adacli.run.pipeline import run_recipe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def serial(env):
    """The reference: the sweep run serially in this process."""
    recipe = load_recipe(env["recipe"])
    return run_recipe(recipe, out_dir=env["folder"] / "serial", executor="serial", threads=1)


def all_trials(run_dir: Path) -> dict[tuple[str, int], dict]:
    data = json.loads((run_dir / "results.json").read_text())
    trials = data["trials"] + data["sweep"]["trials"]
    return {(t["label"], t["seed"]): t for t in trials}


def assert_same_results(a_dir: Path, b_dir: Path) -> None:
    a, b = all_trials(a_dir), all_trials(b_dir)
    assert set(a) == set(b) and len(a) == 8  # 4 sweep trials + 2 optimizers x 2 seeds
    for k, ta in a.items():
        tb = b[k]
        assert ta["status"] == tb["status"] == "ok", (k, ta["error"], tb["error"])
        assert ta["extra"]["trial_key"] == tb["extra"]["trial_key"]
        assert torch.allclose(torch.tensor(ta["losses"]), torch.tensor(tb["losses"]), rtol=1e-5, atol=1e-7), k
        for ea, eb in zip(ta["evals"], tb["evals"], strict=True):
            assert ea["step"] == eb["step"] and abs(ea["test_accuracy"] - eb["test_accuracy"]) < 1e-9
            assert abs(ea["test_loss"] - eb["test_loss"]) < 1e-5
        assert abs(ta["extra"]["val"]["accuracy"] - tb["extra"]["val"]["accuracy"]) < 1e-9
    ra = json.loads((a_dir / "results.json").read_text())
    rb = json.loads((b_dir / "results.json").read_text())
    assert [o["chosen"] for o in ra["sweep"]["optimizers"]] == [
        o["chosen"] for o in rb["sweep"]["optimizers"]
    ]
    for sa, sb in zip(ra["summary"], rb["summary"], strict=True):
        assert sa["optimizer"] == sb["optimizer"] and sa["hparams"] == sb["hparams"]
        for k in ("final_test_accuracy", "best_test_accuracy", "generalization_gap", "steps_to_target"):
            assert sa[k]["n"] == sb[k]["n"] and abs((sa[k]["mean"] or 0) - (sb[k]["mean"] or 0)) < 1e-6, k
        assert abs(sa["mean_train_loss"]["mean"] - sb["mean_train_loss"]["mean"]) < 1e-5


def test_jobs_2_equals_serial_even_when_a_worker_is_killed(env, serial):
    env["marker"].unlink()  # the first DyingSGD trial SIGKILLs its worker; the retry survives
    out = env["folder"] / "local"
    res = invoke("compare", str(env["recipe"]), "--jobs", "2", "--threads", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert env["marker"].exists()
    data = json.loads((out / "results.json").read_text())
    ex = data["environment"]["executor"]
    assert ex["kind"] == "local" and ex["jobs"] == 2 and ex["threads_per_worker"] == 1
    assert ex["start_method"] in ("forkserver", "spawn") and len(ex["worker_restarts"]) == 1, ex
    assert ex["workers"] == 2
    assert "DyingSGD" in ex["worker_restarts"][0] and "signal 9" in ex["worker_restarts"][0]
    workers = {t["extra"]["worker"]["id"] for t in all_trials(out).values() if "worker" in t["extra"]}
    assert workers == {"w0", "w1"}  # both workers ran trials
    assert data["status"] == "complete"
    assert_same_results(serial.run_dir, out)


class Recorder:
    """A progress consumer that keeps what it is told (the CLI renders the same calls with rich)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.done: list[tuple[str, bool]] = []
        self.notes: list[str] = []
        self.total = 0

    def plan(self, total: int) -> None:
        self.total = total

    def event(self, ev: ProgressEvent) -> None:
        self.events.append(ev)

    def finished(self, task, result, reused: bool) -> None:
        self.done.append((result.label, reused))

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_ray_equals_serial_with_progress_streamed_back(env, serial, ray_cluster):
    rec = Recorder()
    recipe = load_recipe(env["recipe"])
    out = env["folder"] / "ray"
    outcome = run_recipe(
        recipe,
        out_dir=out,
        executor="ray",
        ray_address=ray_cluster,
        threads=1,
        cpus_per_trial=1,
        progress=rec,
    )
    assert outcome.status == "complete"
    ex = outcome.environment["executor"]
    assert ex["kind"] == "ray" and ex["concurrent_trials"] == 2 and ex["address"] == ray_cluster
    assert_same_results(serial.run_dir, out)
    steps = [e for e in rec.events if e.kind == "step"]
    assert steps and all(e.worker.startswith("ray:") for e in steps)  # progress came back from Ray workers
    # sweep trials 0-3 and the seed-1 finals 6, 7 ran; the seed-0 finals (4, 5) are sweep trials reused
    assert {e.task_index for e in rec.events if e.kind == "start"} == {0, 1, 2, 3, 6, 7}
    assert rec.total == 8 and len(rec.done) == 8 and sum(r for _, r in rec.done) == 2
    assert any("chose lr=" in n for n in rec.notes)
    import ray

    assert not ray.is_initialized()  # the run disconnected from the cluster it joined


NEWER = ("trial_key", "role", "optimizer_label", "config_index", "val", "worker")


def strip_to_an_earlier_format(run_dir: Path, newer: tuple[str, ...] = NEWER) -> None:
    """Make a run folder look like one written before trials carried keys and val figures (earlier
    adacli versions' plain `compare`)."""

    def strip(t: dict) -> dict:
        t["extra"] = {k: v for k, v in t["extra"].items() if k not in newer}
        return t

    data = json.loads((run_dir / "results.json").read_text())
    data["trials"] = [strip(t) for t in data["trials"]]
    (run_dir / "results.json").write_text(json.dumps(data))
    for p in (run_dir / "trials").glob("*.json"):
        p.write_text(json.dumps(strip(json.loads(p.read_text()))))


def test_resume_skips_finished_trials_of_a_plain_compare_run(env, tmp_path, monkeypatch):
    count = tmp_path / "count.txt"
    monkeypatch.setenv("ADACLI_TEST_COUNT_FILE", str(count))
    path = write_recipe(
        tmp_path, ["{name: adam}", '{name: "sweep_user_optim:CountingSGD", lr: 0.05}'], seeds=1
    )
    out = tmp_path / "run"
    assert (
        invoke("compare", str(path), "--out", str(out), "--threads", "1").exit_code == 0
    )  # plain serial run
    assert len(count.read_text().splitlines()) == 1
    first = json.loads((out / "results.json").read_text())["trials"]
    assert first[0]["extra"]["trial_key"] and first[0]["extra"]["val"]["split"] == "val"
    strip_to_an_earlier_format(out)

    # trials saved without a key were made by code nobody can name: they are trained again, not reused
    res = invoke("compare", str(path), "--resume", str(out), "--seeds", "2", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "trials run: 4, reused: 0" in res.output
    assert len(count.read_text().splitlines()) == 3  # CountingSGD trained again on seed 0, and seed 1
    data = json.loads((out / "results.json").read_text())
    counting = "sweep_user_optim:CountingSGD"
    assert [(t["label"], t["seed"]) for t in data["trials"]] == [
        ("adam", 0),
        (counting, 0),
        ("adam", 1),
        (counting, 1),
    ]
    assert data["trials"][0]["losses"] == first[0]["losses"] and "reused" not in data["trials"][0]["extra"]
    assert data["environment"]["trials_run"] == 4 and data["environment"]["resumed_from"] == str(out)

    res = invoke("compare", str(path), "--resume", str(out), "--seeds", "2")
    assert res.exit_code == 0 and "trials run: 0, reused: 4" in res.output
    assert len(count.read_text().splitlines()) == 3
    strip_to_an_earlier_format(out, newer=("val",))  # keys, but no validation figures

    # the recipe becomes a sweep over adam's lr (its default 1e-3 included): the earlier run's seed-0 adam
    # trial has no validation figures, so as a selection trial it runs again; adam's seed-1 trial (run by
    # the resume above, with val figures) is reused if 1e-3 wins
    sweep_path = write_recipe(tmp_path, ["{name: adam, lr: [1.0e-3, 1.0e-2]}"], seeds=2)
    res = invoke("compare", str(sweep_path), "--resume", str(out), "--threads", "1")
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    first_adam = next(t for t in data["sweep"]["trials"] if t["hparams"]["lr"] == 1e-3)
    assert "reused" not in first_adam["extra"] and first_adam["extra"]["val"]["split"] == "val"
    chosen = data["sweep"]["optimizers"][0]["chosen"]["lr"]
    assert f"trials run: {2 if chosen == 1e-3 else 3}, reused: {2 if chosen == 1e-3 else 1}" in res.output


def test_ctrl_c_during_a_jobs_2_sweep_keeps_finished_trials_and_resume_completes_it(
    env, tmp_path, monkeypatch
):
    """A real SIGINT, delivered to this process (as a terminal's Ctrl-C is) as soon as the first trial file
    exists, while two workers are training: exit 130, finished trials saved; the resume trains only the
    rest (counted by the optimizer itself)."""
    count = tmp_path / "count.txt"
    monkeypatch.setenv("ADACLI_TEST_COUNT_FILE", str(count))
    path = write_recipe(
        tmp_path,
        ["{name: adam, lr: [1.0e-3, 1.0e-2]}", '{name: "sweep_user_optim:CountingSGD", lr: [0.02, 0.1]}'],
        budget="{seconds: 0.5, batch_size: 32, eval_every: 1000}",
    )
    out = tmp_path / "run"
    sent = threading.Event()

    def ctrl_c_after_first_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "trials").is_dir() and list((out / "trials").glob("*.json")):
                os.kill(os.getpid(), signal.SIGINT)
                sent.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=ctrl_c_after_first_trial, daemon=True)
    watcher.start()
    res = invoke("compare", str(path), "--jobs", "2", "--out", str(out))
    watcher.join(5)
    assert sent.is_set() and res.exit_code == 130, res.output
    assert "interrupted" in res.output
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted"
    finished = store.scan_folder(out).finished
    assert 1 <= len(finished) < 6  # 6 distinct trials: 4 sweep + 2 optimizers x seed 1
    counting_done = sum(t.optimizer == "sweep_user_optim:CountingSGD" for t in finished.values())
    before = len(count.read_text().splitlines()) if count.exists() else 0

    res = invoke("compare", str(path), "--resume", str(out), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert f"trials run: {6 - len(finished)}," in res.output
    assert len(count.read_text().splitlines()) - before == 3 - counting_done  # only unfinished ones trained
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "complete" and len(data["sweep"]["trials"]) == 4
    assert [t["seed"] for t in data["trials"]] == [0, 0, 1, 1] and all(
        t["status"] == "ok" for t in data["trials"]
    )


def test_trial_keys_are_content_hashes():
    base = dict(optimizer="adam", optimizer_class="torch.optim.adam.Adam", seed=0, device_type="cpu")
    slice_ = {"model": {"name": "m"}, "dataset": {"name": "d"}, "budget": {"steps": 5}, "precision": "fp32"}
    v = {"adacli": "0.1.0", "torch": "2.0"}
    k = keys.trial_key(slice_, hparams={"lr": 0.01, "betas": (0.9, 0.999), "wd": 0}, versions_=v, **base)
    same = keys.trial_key(slice_, hparams={"wd": 0.0, "betas": [0.9, 0.999], "lr": 1e-2}, versions_=v, **base)
    assert k == same
    assert k != keys.trial_key(
        slice_, hparams={"lr": 0.02, "betas": (0.9, 0.999), "wd": 0}, versions_=v, **base
    )
    assert k != keys.trial_key(
        slice_, hparams={"lr": 0.01, "betas": (0.9, 0.999), "wd": 0}, versions_={**v, "torch": "2.1"}, **base
    )
    assert k != keys.trial_key(
        slice_, hparams={"lr": 0.01, "betas": (0.9, 0.999), "wd": 0}, versions_=v, **{**base, "seed": 1}
    )
    assert k != keys.trial_key(
        {**slice_, "budget": {"steps": 6}},
        hparams={"lr": 0.01, "betas": (0.9, 0.999), "wd": 0},
        versions_=v,
        **base,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "0"], "--jobs: must be >= 1"),
        (["--executor", "locl"], "did you mean 'local'"),
        (["--executor", "serial", "--jobs", "2"], "--jobs"),
        (["--executor", "local", "--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
        (["--resume", "/nonexistent/run"], "--resume: run folder to resume not found"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_executor_options_exit_2(env, tmp_path, args, message):
    path = write_recipe(tmp_path, ["{name: adam}"], seeds=1)
    res = invoke("compare", str(path), "--out", str(tmp_path / "run"), *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run" / "trials").exists()


def test_ray_missing_is_a_clear_exit_2(env, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra installed
    path = write_recipe(tmp_path, ["{name: adam}"], seeds=1)
    res = invoke("compare", str(path), "--executor", "ray", "--out", str(tmp_path / "run"))
    assert res.exit_code == 2, res.output
    assert 'pip install "adacli[ray]"' in res.output


def test_threads_and_devices_for_local_workers():
    from adacli.run.executors import LocalExecutor, WorkerSetup, local_devices, max_local_workers

    setup = WorkerSetup(recipe={}, device="cpu")
    assert LocalExecutor(setup, 2, ["cpu"]).threads == 1  # one intra-op thread per worker by default
    assert LocalExecutor(setup, max_local_workers(), ["cpu"]).threads == 1
    assert LocalExecutor(setup, 2, ["cpu"], threads=3).threads == 3
    assert local_devices("cpu", 4) == ["cpu"] and local_devices("cuda:1", 4) == ["cuda:1"]
    if torch.cuda.is_available():  # every visible GPU, round-robin over the workers
        assert local_devices("auto", 4) == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        assert local_devices("auto", 4) == ["cpu"]
    ex = LocalExecutor(setup, 3, ["cuda:0", "cuda:1"])
    ex.peak = 3  # as if three workers had started
    assert ex.describe()["devices"] == ["cuda:0", "cuda:1", "cuda:0"]  # 3 workers on 2 GPUs


def test_unreachable_ray_address_is_exit_2_within_seconds(env, tmp_path):
    pytest.importorskip("ray")
    path = write_recipe(tmp_path, ["{name: adam}"], seeds=1)
    t0 = time.monotonic()
    res = invoke("compare", str(path), "--ray-address", "127.0.0.1:1", "--out", str(tmp_path / "run"))
    took = time.monotonic() - t0
    assert res.exit_code == 2, res.output
    assert (
        "--ray-address: cannot start or reach Ray (127.0.0.1:1): nothing answers at 127.0.0.1:1"
        in " ".join(res.output.split())
    )
    assert took < 30, took  # Ray alone retries for more than 10 minutes
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_ray_without_address_starts_a_fresh_loopback_instance(env, serial, tmp_path, monkeypatch):
    """No --ray-address: a new local instance on 127.0.0.1, whatever RAY_ADDRESS (or a dead cluster's
    record) says; the results equal the serial run's."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # a dead cluster a plain ray.init() would try to join
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    out = tmp_path / "ray-local"
    seen: dict[str, object] = {}

    class Probe(Recorder):
        def finished(self, task, result, reused: bool) -> None:
            super().finished(task, result, reused)
            if "node" not in seen:
                seen["node"] = ray.nodes()[0]["NodeManagerAddress"]

    recipe = load_recipe(env["recipe"])
    outcome = run_recipe(recipe, out_dir=out, executor="ray", threads=1, cpus_per_trial=1, progress=Probe())
    assert outcome.status == "complete" and outcome.environment["executor"]["address"] == "local instance"
    assert seen["node"] == "127.0.0.1"  # the instance's node listened on loopback
    assert_same_results(serial.run_dir, out)
    assert not ray.is_initialized()  # the instance it started is shut down
    session = outcome.environment["executor"]["session_folder"]  # its own folder, not Ray's shared one
    assert Path(session).name.startswith("adacli-ray-") and not Path(session).exists()  # removed


def test_a_worker_that_dies_twice_fails_its_trial_and_the_run_goes_on(env, tmp_path):
    path = write_recipe(tmp_path, ["{name: adam}", '{name: "sweep_user_optim:KilledSGD"}'], seeds=1)
    out = tmp_path / "run"
    res = invoke("compare", str(path), "--jobs", "2", "--threads", "1", "--out", str(out))
    assert res.exit_code == 1, res.output  # a trial that cannot run is a failure, not a result
    assert "worker process died (signal 9), twice; not retried" in " ".join(res.output.split())
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "complete"
    assert [(t["label"], t["status"]) for t in data["trials"]] == [
        ("adam", "ok"),
        ("sweep_user_optim:KilledSGD", "failed"),
    ]
    assert len(data["environment"]["executor"]["worker_restarts"]) == 2


def test_a_signal_to_the_parent_alone_saves_finished_trials_and_stops_the_workers(env, tmp_path):
    """`timeout -s INT` reaches the `--jobs 2` parent only: it stops its workers, saves the finished
    trials with status interrupted and exits 130; no process is left behind. (SIGTERM, 143, to a serial
    run: tests/app/test_compare.py; one guard handles both signals.)"""
    sig, code = signal.SIGINT, 130
    path = write_recipe(
        tmp_path, ["{name: adam}", "{name: sgd}"], budget="{seconds: 0.5, batch_size: 32, eval_every: 1000}"
    )
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "adacli",
        "compare",
        str(path),
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: what is left of it can be found afterwards
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "trials").is_dir() or not list((out / "trials").glob("*.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no trial finished in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert "interrupted" in err and f"--resume {out}" in " ".join(err.split())
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "interrupted"
    assert 1 <= len(data["trials"]) < 4 and all(t["status"] == "ok" for t in data["trials"])
    assert not (out / "adacli.lock").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the workers (same process group) are gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("worker processes outlived the interrupted run")


def test_the_ray_executor_never_lets_ray_start_an_instance_of_its_own():
    """Pointing a Ray executor at a recipe before it connects (a suite's first workload) once called
    ``ray.put``, and Ray started a default instance of its own (in its shared temp folder, never removed)
    on which the trials then ran instead of the ``--ray-address`` cluster. Now nothing touches Ray before
    ``start``, and any Ray call before ``ray.init`` raises instead of starting an instance."""
    ray = pytest.importorskip("ray")
    from adacli.run.executors import RayExecutor, WorkerSetup

    assert not ray.is_initialized()
    ex = RayExecutor(WorkerSetup(recipe={}, device="cpu"), address="127.0.0.1:1")
    ex.use(WorkerSetup(recipe={"name": "next"}, device="cpu"))
    assert not ray.is_initialized() and ex.setup.recipe == {"name": "next"}
    with pytest.raises(Exception, match=r"(?i)init"):
        ray.put(1)
    assert not ray.is_initialized()
