"""Fixtures shared by the test files, and the import path of the test optimizers.

The optimizers the tests name by import path, as a user names their own (``compare_user_optim:CrashingSGD``,
``broken_optimizers:IgnoresGradients``), live in ``tests/fixtures/``; that folder is put on ``sys.path``
here, and on ``PYTHONPATH`` for the worker processes and subprocesses the tests start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

FIXTURES = str(Path(__file__).resolve().parent / "fixtures")
for folder in (FIXTURES, str(Path(__file__).resolve().parent)):
    if folder not in sys.path:
        sys.path.insert(0, folder)
os.environ["PYTHONPATH"] = os.pathsep.join([FIXTURES, *filter(None, [os.environ.get("PYTHONPATH")])])
# the CLI's output is checked as a pipe gets it (200 columns); an exported COLUMNS (a user's shell, or
# pytest-xdist's workers, which set 80) would wrap it
os.environ.pop("COLUMNS", None)

#: test processes at most (pytest-xdist, ``-n auto``): each imports torch (about 0.5 GB); beyond a few,
#: the Ray and worker-pool tests, which use two cores each, only wait for each other
MAX_TEST_PROCESSES = 4


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): one test process per core, at most :data:`MAX_TEST_PROCESSES`."""
    return max(1, min(os.cpu_count() or 1, MAX_TEST_PROCESSES))


# the executors' environment and a real local Ray head (tests/run/test_executors.py, tests/app/test_suite.py)
from executor_fixtures import env, ray_cluster  # noqa: E402, F401


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored afterwards: tiny models gain nothing from intra-op threads,
    and on a busy 2-core machine they contend (files that train use it for every test via pytestmark)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
