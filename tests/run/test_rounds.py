"""Seeds until decided, end to end: rounds of seeds that stop once the primary comparisons with the
reference are decided or at ``max``; the run folder says which; a resumed run replays the same looks; local
workers give the same rounds as the serial executor; bad input is one line, exit 2.

Tiny recipes (test_resnet on 8 px synthetic images, a few steps), one torch thread.
"""

from __future__ import annotations

import json
from functools import partial

import helpers
import pytest
from helpers import invoke, one_line

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

write_recipe = partial(helpers.write_recipe, name="rounds", steps=6)
BROKEN = ["{name: adam, lr: 0.01}", "{name: sgd, lr: 1.0e-9, label: broken}"]
TWINS = ["{name: adam, lr: 0.01, label: a}", "{name: adam, lr: 0.01, label: b}"]


def results(folder):
    return json.loads((folder / "results.json").read_text())


def test_a_clear_difference_stops_at_the_first_round(tmp_path):
    path = write_recipe(tmp_path, BROKEN, seeds="{min: 3, max: 9, until: decided}", extra="reference: adam\n")
    res = invoke("compare", str(path), "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    data = results(tmp_path / "run")
    assert data["seeds"]["mode"] == "sequential" and data["seeds"]["looks"] == [3]
    assert data["seeds"]["stopped"] == "decided" and len(data["trials"]) == 6
    acc = next(c for c in data["comparisons"] if c["metric"] == "final_test_accuracy")
    assert acc["outcome"] == "better" and acc["ci_level"] > 0.95  # the design's stricter first look
    assert "(3 seeds, sequential: decided)" in data["headline"]
    assert data["families"][0]["method"] == "group-sequential+bonferroni"


def test_an_undecidable_comparison_runs_to_max_and_says_so(tmp_path):
    # two labels of one optimizer on a 64-image test set: one image is 1.6 points, so "within 0.5 points"
    # cannot be shown and nothing differs: every round is undecided until max
    path = write_recipe(
        tmp_path, TWINS, seeds="{min: 2, max: 4, step: 1, until: decided}", extra="reference: a\n"
    )
    res = invoke("compare", str(path), "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    data = results(tmp_path / "run")
    assert data["seeds"]["looks"] == [2, 3, 4] and data["seeds"]["stopped"] == "max"
    assert sorted({t["seed"] for t in data["trials"]}) == [0, 1, 2, 3]
    assert "undecided" in data["headline"] and "stopped at max" in data["headline"]
    out = one_line(res.output)
    assert "1 comparison(s) undecided at 2 seeds; running seeds 2..2" in out
    assert "seeds until decided: 4 seeds (looks at 2, 3, 4); reached max = 4 seeds" in out
    # resumed: the same looks replayed on the stored trials, nothing trained again
    res = invoke("compare", str(path), "--resume", str(tmp_path / "run"))
    assert res.exit_code == 0 and "trials run: 0, reused: 8" in res.output, res.output
    assert results(tmp_path / "run")["seeds"] == data["seeds"]


def test_local_workers_give_the_same_rounds_as_the_serial_executor(tmp_path):
    path = write_recipe(
        tmp_path, BROKEN, seeds="{min: 2, max: 3, step: 1, until: decided}", extra="reference: adam\n"
    )
    runs = {}
    for name, args in (("serial", []), ("local", ["--jobs", "2", "--threads", "1"])):
        res = invoke("compare", str(path), "--out", str(tmp_path / name), *args)
        assert res.exit_code == 0, res.output
        runs[name] = results(tmp_path / name)
    assert runs["serial"]["seeds"] == runs["local"]["seeds"]
    clocked = ("seconds_to_target", "step_time_ms", "optimizer_step_ms")  # wall-clock figures differ
    same = [[c for c in runs[k]["comparisons"] if c["metric"] not in clocked] for k in runs]
    assert same[0] == same[1]


def test_seeds_until_decided_from_the_command_line_and_bad_input(tmp_path):
    path = write_recipe(tmp_path, BROKEN, seeds=3, extra="reference: adam\n")
    res = invoke("compare", str(path), "--seeds-until-decided", "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    seeds = results(tmp_path / "run")["seeds"]
    assert (seeds["mode"], seeds["min"], seeds["max"]) == ("sequential", 3, 20)
    data = helpers.DATASET.replace("}", ", val_fraction: 0.25}")
    until = "{min: 2, max: 4, until: decided}"
    sweep = write_recipe(
        tmp_path, ["{name: adam, lr: [0.01, 0.1]}"], seeds=until, dataset=data, file="sweep.yaml"
    )
    res = invoke("compare", str(sweep))
    assert res.exit_code == 2 and "seeds: {until: decided} does not combine with a sweep" in one_line(
        res.output
    )
    plan = write_recipe(tmp_path, BROKEN, seeds="{min: 3, max: 9, until: decided}", file="plan.yaml")
    res = invoke("validate", str(plan))
    assert (
        res.exit_code == 0
        and "6 trials first, then rounds of 3 seed(s) until decided, up to 9 seeds (18"
        in (one_line(res.output))
    )
    bad = write_recipe(tmp_path, BROKEN, seeds="{min: 5, max: 3, until: decided}", file="bad.yaml")
    res = invoke("compare", str(bad))
    assert res.exit_code == 2 and f"{bad}:5: seeds: min (5) must not exceed max (3)" in one_line(res.output)
    assert "Traceback" not in res.output
