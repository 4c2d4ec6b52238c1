"""The watchdog of a local Ray instance: a killed run leaves no process and no session folder behind.

The watchdog is checked on its own with plain processes (a run that leaves an orphan behind when it is
killed, as Ray's agents are left), then on a real local Ray instance under ``adacli compare --executor
ray`` killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, write_recipe

from adacli.run import reaper

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="the watchdog reads /proc")

# a "run" that starts a grandchild in a session of its own (it survives its parents, as Ray's agents do)
RUN = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
print("started", flush=True)
time.sleep(120)
"""


def _alive(pid: int, start: int) -> bool:
    st = reaper.process_stat(pid)  # what the watchdog reads
    return st is not None and st[1] == start


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_the_watchdog_kills_what_a_killed_run_left_and_removes_its_folder(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir()
    (folder / "session.log").write_text("x")
    run = subprocess.Popen([sys.executable, "-c", RUN], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None and run.stdout.readline().strip() == "started"
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "adacli.run.reaper", str(run.pid), str(folder)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        assert _wait_until(lambda: len(reaper.descendants(run.pid)) == 1, 10)
        ((orphan, start),) = reaper.descendants(run.pid).items()
        time.sleep(3 * reaper.INTERVAL)  # the watchdog has seen it
        run.kill()
        run.wait()
        assert _wait_until(lambda: not _alive(orphan, start), 10), "the orphan survived"
        assert _wait_until(lambda: not folder.exists(), 5) and watchdog.wait(timeout=5) == 0
    finally:
        for p in (run, watchdog):
            if p.poll() is None:
                p.kill()


def test_a_stopped_watchdog_kills_nothing(tmp_path):
    """A run that closes its instance itself stops the watchdog: its processes and folder are its own."""
    folder = tmp_path / "instance"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watchdog = reaper.start(folder)
        time.sleep(3 * reaper.INTERVAL)
        reaper.stop(watchdog)
        assert watchdog is not None and watchdog.returncode == 0
        assert sleeper.poll() is None and folder.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_killed_ray_run_leaves_no_ray_process_and_no_session_folder(tmp_path):
    """`kill -9` of `adacli compare --executor ray` (a local instance): within seconds no process of
    that instance is alive (Ray left its dashboard and runtime-env agents) and its folder is gone."""
    pytest.importorskip("ray")
    recipe = write_recipe(
        tmp_path, ["{name: adam}", "{name: sgd}"], budget="{seconds: 60, batch_size: 32, eval_every: 1000}"
    )
    cmd = [sys.executable, "-m", "adacli", "compare", str(recipe), "--executor", "ray", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    run = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "run")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def training() -> bool:
            names = [_comm(pid) for pid in reaper.descendants(run.pid)]
            return "ray::_ray_run" in names or run.poll() is not None

        assert _wait_until(training, 120) and run.poll() is None, "the Ray run did not start"
        tree = reaper.descendants(run.pid)
        session = next(f for pid in tree if (f := _session_folder(pid)) is not None)
        time.sleep(3 * reaper.INTERVAL)
        run.send_signal(signal.SIGKILL)
        run.wait()
        left = lambda: [pid for pid, start in tree.items() if _alive(pid, start)]  # noqa: E731
        assert _wait_until(lambda: not left(), 15), [_comm(pid) for pid in left()]
        assert _wait_until(lambda: not session.exists(), 5), session
    finally:
        if run.poll() is None:
            run.kill()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _session_folder(pid: int) -> Path | None:
    """The instance's own folder, from a Ray process's command line (``--log_dir=/tmp/adacli-ray-...``)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for arg in args:
        if "adacli-ray-" in arg:
            path = arg.split("=", 1)[-1]
            start = path.index("adacli-ray-")
            end = path.find("/", start)
            return Path(path[: end if end > 0 else None])
    return None
