"""Sweeps: grid / log-range expansion, the tuple rule, equal budgets, validation errors (exit 2, one line),
selection on the validation split (never test), and one real sweep end to end through the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import helpers
import pytest
import torch
from helpers import invoke

from adacli.errors import InputError
from adacli.recipe import Recipe, load_recipe
from adacli.results import EvalPoint, TrialResult
from adacli.run.sweep import expand, log_range, select

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def recipe_of(optimizers: list[dict], **extra) -> Recipe:
    return Recipe.model_validate(
        {
            "name": "t",
            "model": {"name": "test_resnet"},
            "dataset": {"name": "digits"},
            "budget": {"steps": 5},
            "optimizers": optimizers,
            **extra,
        }
    )


def write_recipe(tmp_path: Path, optimizers: list[str], *, seeds=2, extra="", steps=6) -> Path:
    budget = f"{{steps: {steps}, batch_size: 32, eval_every: 3}}"
    return helpers.write_recipe(tmp_path, optimizers, name="sw", seeds=seeds, budget=budget, extra=extra)



# --- expansion -------------------------------------------------------------------------------------


def test_log_range_is_geometric_and_inclusive():
    assert log_range(1e-4, 1e-1, 4) == [1e-4, 1e-3, 1e-2, 1e-1]
    vals = log_range(1e-3, 1e-1, 5)
    assert vals[0] == 1e-3 and vals[-1] == 0.1 and len(vals) == 5
    ratios = [b / a for a, b in itertools.pairwise(vals)]
    assert max(ratios) - min(ratios) < 1e-4  # equal steps in log space (6 significant digits)


def test_grids_log_ranges_cross_products_and_the_tuple_rule():
    sweeps = expand(
        recipe_of(
            [
                {"name": "adam", "lr": [1e-3, 1e-2, 1e-1, 1.0], "betas": [0.9, 0.999]},  # betas: one value
                {"name": "adabelief", "lr": {"log_range": [1e-4, 1e-1], "n": 4}},
                {"name": "adamw", "betas": [[0.9, 0.999], [0.95, 0.999]], "weight_decay": {"grid": [0, 0.1]}},
                {"name": "sgd", "lr": [0.1, 0.01], "momentum": {"grid": [0.0, 0.9]}},
            ]
        )
    )
    adam, ab, adamw, sgd = sweeps
    assert adam.axes == {"lr": [1e-3, 1e-2, 1e-1, 1.0]} and adam.fixed == {"betas": [0.9, 0.999]}
    assert [c["betas"] for c in adam.configs] == [[0.9, 0.999]] * 4
    assert ab.axes == {"lr": [1e-4, 1e-3, 1e-2, 1e-1]} and ab.n == 4
    assert adamw.axes == {"betas": [[0.9, 0.999], [0.95, 0.999]], "weight_decay": [0, 0.1]} and adamw.n == 4
    assert sgd.n == 4 and sgd.configs[1] == {"lr": 0.1, "momentum": 0.9}
    assert sgd.config_label(1) == "sgd[lr=0.1,momentum=0.9]"
    assert adamw.config_label(3) == "adamw[betas=(0.95,0.999),weight_decay=0.1]"
    # every config resolves and builds (tuples for betas)
    from adacli.optim.registry import resolve_optimizer

    r = resolve_optimizer("adamw", adamw.configs[2])
    assert r.hparams["betas"] == (0.95, 0.999) and r.build([torch.zeros(1, requires_grad=True)])


def test_no_sweep_is_one_config_per_optimizer():
    sweeps = expand(recipe_of([{"name": "adam", "lr": 0.01, "betas": [0.8, 0.9]}, {"name": "sgd"}]))
    assert [sw.n for sw in sweeps] == [1, 1] and not any(sw.axes for sw in sweeps)
    assert sweeps[0].config_label(0) == "adam" and sweeps[0].configs == [{"lr": 0.01, "betas": [0.8, 0.9]}]


def test_unequal_budgets_are_an_error_unless_the_recipe_allows_them():
    opts = [{"name": "adam", "lr": [1e-3, 1e-2, 1e-1]}, {"name": "sgd", "lr": 0.1}]
    with pytest.raises(InputError, match=r"different numbers of configurations \(adam 3, sgd 1\)"):
        expand(recipe_of(opts))
    sweeps = expand(recipe_of(opts, sweep={"equal_budget": False}))
    assert [sw.n for sw in sweeps] == [3, 1]


BAD = [
    ("{name: adam, lr: {log_range: [0.1, 0.01], n: 3}}", "0 < lo < hi", 8),
    ("{name: adam, lr: {log_range: [0, 0.1], n: 3}}", "0 < lo < hi", 8),
    ("{name: adam, lr: {log_range: [1.0e-3, 0.1]}}", "both keys", 8),
    ("{name: adam, lr: {log_range: [1.0e-3, 0.1], n: 1}}", "n must be an integer >= 2", 8),
    ("{name: adam, lr: {log_rnge: [1.0e-3, 0.1], n: 3}}", "did you mean 'log_range'", 8),
    ("{name: adam, lr: []}", "empty list", 8),
    ("{name: adam, lr: [0.1, 0.1]}", "appears twice", 8),
    ("{name: adam, betas: [[0.9, 0.999], 0.9]}", "not a mix", 8),
    ("{name: adam, lr: {grid: 0.1}}", "grid must be a non-empty list", 8),
    ("{name: adam, lrr: [0.1, 0.2]}", "unknown hyperparameter 'lrr'", 8),
    ("{name: adam, lr: [0.1, -1.0]}", "learning rate", 8),  # a grid point the constructor rejects
]


@pytest.mark.parametrize(("opt", "message", "line"), BAD)
def test_bad_sweeps_exit_2_with_one_line_naming_file_line_and_field(tmp_path, opt, message, line):
    path = write_recipe(tmp_path, [opt], seeds=1)
    for cmd in ("validate", "compare"):
        args = [cmd, str(path)] + (["--out", str(tmp_path / "run")] if cmd == "compare" else [])
        res = invoke(*args)
        assert res.exit_code == 2, res.output
        text = res.output.strip()
        assert "\n" not in text and "Traceback" not in text, text
        assert message in text and f"sw.yaml:{line}:" in text and "optimizers[0]" in text, text
    assert not (tmp_path / "run").exists()  # nothing trained, no run folder


def test_unequal_budget_from_a_file_points_at_optimizers(tmp_path):
    path = write_recipe(tmp_path, ["{name: adam, lr: [0.1, 0.01]}", "{name: sgd, lr: 0.1}"], seeds=1)
    res = invoke("validate", str(path))
    assert res.exit_code == 2 and "sw.yaml:7: optimizers:" in res.output and "equal_budget" in res.output
    ok = write_recipe(
        tmp_path,
        ["{name: adam, lr: [0.1, 0.01]}", "{name: sgd, lr: 0.1}"],
        extra="sweep: {equal_budget: false}\n",
    )
    assert invoke("validate", str(ok)).exit_code == 0
    assert load_recipe(ok).sweep.equal_budget is False


# --- selection -------------------------------------------------------------------------------------


def trial(val_acc: float, val_loss: float, test_acc: float, status: str = "ok") -> TrialResult:
    """A measured trial as results.json stores it: final eval on test, final figures on val."""
    return TrialResult(
        label="x",
        optimizer="adam",
        optimizer_class="torch.optim.adam.Adam",
        hparams={},
        seed=0,
        status=status,  # type: ignore[arg-type]
        losses=[1.0, 0.5],
        times=[0.1, 0.2],
        evals=[EvalPoint(2, 0.2, 0.5, 90.0, 0.4, test_acc)],
        extra={"val": {"split": "val", "size": 100, "step": 2, "loss": val_loss, "accuracy": val_acc}},
    )


def test_selection_reads_val_never_test():
    sw = expand(recipe_of([{"name": "adam", "lr": [1e-3, 1e-2, 1e-1]}]))[0]
    # config 0 is best on test, config 1 is best on val: val decides
    by_config = {0: [trial(50.0, 1.0, 99.0)], 1: [trial(70.0, 0.9, 10.0)], 2: [trial(60.0, 0.8, 50.0)]}
    choice = select(sw, by_config)
    assert choice.index == 1 and choice.chosen == {"lr": 1e-2} and choice.note is None
    # the test accuracies play no part: permuting them changes nothing
    by_config[1][0].evals[0].test_accuracy, by_config[0][0].evals[0].test_accuracy = 99.0, 10.0
    assert select(sw, by_config).index == 1
    # val_loss metric: config 2 has the lowest val loss
    assert select(sw, by_config, metric="val_loss").index == 2
    # a trial without val figures (e.g. from another tool) is not usable for selection
    assert (
        select(
            sw, {0: [trial(50, 1, 99)], 1: [TrialResult("x", "adam", "", {}, 0)], 2: [trial(40, 1, 99)]}
        ).index
        == 0
    )


def test_selection_ties_diverged_and_seed_means():
    sw = expand(recipe_of([{"name": "adam", "lr": [1e-3, 1e-2, 1e-1]}]))[0]
    # tie on accuracy: lower val loss wins; a diverged config never wins even with a higher accuracy
    c = select(sw, {0: [trial(60, 0.9, 0)], 1: [trial(60, 0.7, 0)], 2: [trial(90, math.nan, 0, "diverged")]})
    assert c.index == 1 and c.scores[2].n_usable == 0
    # exact tie: the earlier configuration
    assert select(sw, {0: [trial(60, 0.7, 0)], 1: [trial(60, 0.7, 0)], 2: [trial(10, 2.0, 0)]}).index == 0
    # mean over selection seeds (sweep.seeds: all)
    two = {
        0: [trial(80, 1, 0), trial(40, 1, 0)],
        1: [trial(65, 1, 0), trial(65, 1, 0)],
        2: [trial(0, 3, 0)] * 2,
    }
    c = select(sw, two)
    assert c.index == 1 and c.scores[0].val_accuracy == 60.0
    # nothing finished: the first config is kept, and the choice says so
    bad = {j: [trial(0, math.nan, 0, "diverged")] for j in range(3)}
    c = select(sw, bad)
    assert c.index == 0 and "no configuration finished" in (c.note or "")


# --- end to end --------------------------------------------------------------------------------------


def test_sweep_end_to_end_selects_on_val_and_runs_the_choice_on_every_seed(tmp_path):
    path = write_recipe(
        tmp_path,
        [
            "{name: adam, lr: [1.0e-3, 3.0e-2]}",
            "{name: sgd, lr: {log_range: [1.0e-3, 0.1], n: 2}, momentum: 0.9}",
        ],
        seeds=2,
    )
    out = tmp_path / "run"
    res = invoke("compare", str(path), "--out", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    sweep = data["sweep"]
    val_size = data["environment"]["data"]["val_size"]
    assert val_size == sweep["val_size"] > 0
    assert sweep["split"] == "val" and sweep["metric"] == "val_accuracy" and sweep["selection_seeds"] == [0]
    assert len(sweep["trials"]) == 4  # every sweep trial is kept
    for t in sweep["trials"]:
        assert t["extra"]["role"] == "sweep" and t["seed"] == 0
        assert t["extra"]["val"]["split"] == "val" and t["extra"]["val"]["size"] == val_size
    for opt in sweep["optimizers"]:
        mine = [t for t in sweep["trials"] if t["extra"]["optimizer_label"] == opt["label"]]
        # the choice is the val-accuracy argmax (ties: val loss) of the stored sweep trials
        best = min(mine, key=lambda t: (-t["extra"]["val"]["accuracy"], t["extra"]["val"]["loss"]))
        assert opt["chosen"] == best["extra"]["sweep"]["config"]
        assert opt["val_accuracy"] == best["extra"]["val"]["accuracy"]
        assert f"lr={opt['chosen']['lr']:g}" in res.output  # the table shows the chosen values
    # final trials: the chosen config on every seed, labelled by the optimizer; seed 0 is the sweep trial
    finals = data["trials"]
    assert [(t["label"], t["seed"]) for t in finals] == [("adam", 0), ("sgd", 0), ("adam", 1), ("sgd", 1)]
    chosen = {o["label"]: o["chosen"] for o in sweep["optimizers"]}
    for t in finals:
        assert (
            t["hparams"]["lr"] == chosen[t["label"]]["lr"]
            and t["extra"]["sweep"]["chosen"] == chosen[t["label"]]
        )
    seed0 = {t["label"]: t for t in finals if t["seed"] == 0}
    for t in sweep["trials"]:
        if t["extra"]["sweep"]["config"] == chosen[t["extra"]["optimizer_label"]]:
            assert t["losses"] == seed0[t["extra"]["optimizer_label"]]["losses"]
    assert data["environment"]["trials_run"] == 4 + 2 and data["environment"]["trials_reused"] == 2
    assert "trials run: 6, reused: 2" in res.output
    assert "chosen" in res.output and "val split" in res.output
    assert (out / "lr_sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "curves.png").is_file()
    assert [s["optimizer"] for s in data["summary"]] == ["adam", "sgd"]
    # `adacli report` re-renders the sweep table from the folder
    rep = invoke("report", str(out), "--no-plot")
    assert rep.exit_code == 0 and "sweep: chosen configurations" in rep.output
    # --json on a sweep: stdout is the JSON alone (the choice notes go to stderr); every trial is reused
    res = invoke("compare", str(path), "--resume", str(out), "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert [o["chosen"] for o in payload["sweep"]["optimizers"]] == [o["chosen"] for o in sweep["optimizers"]]
    assert "chose lr=" in res.stderr and "trials run" not in res.stdout
