"""Command-line numbers are checked by the data model like the recipe's: finite, in range, named."""

from __future__ import annotations

import math

import pytest

from adacli.errors import InputError
from adacli.recipe.options import BenchOptions, RunOptions, max_threads


@pytest.mark.parametrize(
    ("values", "option", "words"),
    [
        ({"threads": 100_000}, "--threads", "at most"),
        ({"threads": 0}, "--threads", "must be >= 1"),
        ({"jobs": 0}, "--jobs", "must be >= 1"),
        ({"cpus_per_trial": math.nan}, "--cpus-per-trial", "finite number"),
        ({"cpus_per_trial": math.inf}, "--cpus-per-trial", "finite number"),
        ({"cpus_per_trial": 0.0}, "--cpus-per-trial", "must be > 0"),
        ({"gpus_per_trial": -1.0}, "--gpus-per-trial", "must be >= 0"),
    ],
)
def test_run_options_name_the_option(values, option, words):
    with pytest.raises(InputError) as e:
        RunOptions.parse(**values)
    assert e.value.field == option and words in e.value.message and e.value.exit_code == 2, str(e.value)


def test_run_options_accept_sane_values_and_defaults():
    opts = RunOptions.parse(jobs=3, threads=max_threads(), cpus_per_trial=0.5, gpus_per_trial=None)
    assert (opts.jobs, opts.threads, opts.cpus_per_trial) == (3, max_threads(), 0.5)
    assert opts.gpus_per_trial is None
    assert RunOptions.parse().jobs is None  # not given: adacli chooses the executor and its workers


@pytest.mark.parametrize(
    ("values", "option"), [({"rounds": 0}, "--rounds"), ({"threads": 10**6}, "--threads")]
)
def test_bench_options(values, option):
    with pytest.raises(InputError) as e:
        BenchOptions.parse(**values)
    assert e.value.field == option


def test_gate_flags_are_checked_by_the_gate_section_model():
    from adacli.ci.gate import Tolerances

    with pytest.raises(InputError) as e:
        Tolerances.from_spec(None, accuracy_drop=math.nan)
    assert e.value.field == "--accuracy-drop" and "finite" in e.value.message
    assert Tolerances.from_spec(None, sigma_k=0.5).sigma_k == 0.5
