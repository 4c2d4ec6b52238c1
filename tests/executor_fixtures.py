"""Fixtures shared by the executor and suite tests: the executors' environment and a real local Ray head.

Imported into the test modules that use them (``from executor_fixtures import env, ray_cluster``), so
each module gets its own instances (module scope), as when they were defined in the module itself.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import helpers
import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEAD_FLAGS = ("--include-dashboard", "false", "--disable-usage-stats")
SWEEP_OPTS = ["{name: adam, lr: [1.0e-3, 1.0e-2]}", '{name: "sweep_user_optim:DyingSGD", lr: [0.02, 0.1]}']

write_recipe = partial(
    helpers.write_recipe,
    name="ex",
    file="r.yaml",
    seeds=2,
    budget="{steps: 6, batch_size: 32, eval_every: 3}",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """tests/ importable here and in workers (spawn copies sys.path; Ray workers read PYTHONPATH), the
    kill marker present (DyingSGD only dies when a test removes it), one torch thread."""
    folder = tmp_path_factory.mktemp("executors")
    marker = folder / "kill-marker"
    marker.write_text("present: nobody dies")
    saved = {
        k: os.environ.get(k) for k in ("PYTHONPATH", "ADACLI_TEST_KILL_MARKER", "ADACLI_TEST_COUNT_FILE")
    }
    os.environ["PYTHONPATH"] = os.pathsep.join([str(FIXTURES), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["ADACLI_TEST_KILL_MARKER"] = str(marker)
    sys.path.insert(0, str(FIXTURES))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"folder": folder, "marker": marker, "recipe": write_recipe(folder, SWEEP_OPTS)}
    torch.set_num_threads(threads)
    sys.path.remove(str(FIXTURES))
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def machine_ip() -> str | None:
    """This machine's network (non-loopback) address, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


@pytest.fixture(scope="module")
def ray_cluster(env):
    """A real local Ray cluster, started as a user would (`ray start --head --block`, 2 CPUs) and stopped
    by terminating that command; the run joins it through ``--ray-address``.

    It listens on 127.0.0.1 only (``--node-ip-address 127.0.0.1`` with Ray's cluster mode off, which
    otherwise swaps a loopback address for the machine's network address, here and in the driver) and
    keeps its files, the cluster record ``ray_current_cluster`` included, in a temp folder of its own
    that is removed afterwards: nothing is left for a later ``ray.init()`` to join."""
    ray = pytest.importorskip("ray")
    constants = importlib.import_module("ray._private.ray_constants")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="adacli-ray-")  # short: Ray's socket paths must fit 107 bytes
    os.environ["RAY_AUTH_MODE"] = "disabled"  # Ray >= 2.52 would want a token shared by head and driver
    head_env = {**os.environ, constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}
    saved_flag, constants.ENABLE_RAY_CLUSTER = constants.ENABLE_RAY_CLUSTER, False
    ray_cli = str(Path(sys.executable).parent / "ray")
    loopback = ["--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir]
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            *loopback,
            *HEAD_FLAGS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=head_env,
    )
    try:
        seen = []
        for line in head.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "Ray runtime started" in line:
                break
        else:
            pytest.fail("ray start --head did not start:\n" + "".join(seen[-20:]))
        ip = machine_ip()
        assert ip is None or refused(ip, port), f"the Ray head listens on {ip}, not only on 127.0.0.1"
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        constants.ENABLE_RAY_CLUSTER = saved_flag
        os.environ.pop("RAY_AUTH_MODE", None)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not Path(temp_dir).exists()
