"""Recipes: valid ones load; each bad input is one InputError naming file, line, field and what is allowed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from adacli.errors import InputError
from adacli.recipe import Recipe, load_recipe, recipe_schema
from adacli.run.preflight import check_environment

GOOD = """\
name: tiny
model: {name: test_resnet, kwargs: {}}
dataset:
  name: digits
  image_size: 16
budget: {steps: 20, batch_size: 32, eval_every: 10}
seeds: 2
optimizers:
  - {name: adabelief, lr: 1.0e-3}
  - name: adam
    lr: 1.0e-3
  - {name: sgd, lr: 0.05, momentum: 0.9, label: sgd-m}
"""

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "recipe.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def _error(tmp_path: Path, text: str, env: bool = False) -> InputError:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        r = load_recipe(path)
        if env:
            check_environment(r, path)
    assert e.value.file == path and e.value.exit_code == 2
    assert "\n" not in str(e.value)  # one line
    return e.value


def test_good_recipe_loads_and_checks(tmp_path):
    path = _write(tmp_path, GOOD)
    r = load_recipe(path)
    assert isinstance(r, Recipe) and r.seed_list == [0, 1]
    assert r.optimizers[2].hparams == {"lr": 0.05, "momentum": 0.9}
    assert (
        r.source_file == path and r.line_of("optimizers", 1, "lr") == 11 and r.line_of("dataset", "name") == 4
    )
    check_environment(r, path)


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 would read 3e-6 as a string; a recipe author means a number.
    head = GOOD.split("optimizers:")[0]
    text = head + "optimizers:\n  - {name: adam, lr: 3e-6, eps: 1E-8, betas: [0.9, 999e-3]}\n"
    r = load_recipe(_write(tmp_path, text))
    assert r.optimizers[0].hparams == {"lr": 3e-6, "eps": 1e-8, "betas": [0.9, 0.999]}
    check_environment(r)


def test_shorthand_optimizer_names(tmp_path):
    r = load_recipe(_write(tmp_path, GOOD.split("optimizers:")[0] + "optimizers: [adabelief, adam]\n"))
    assert [o.name for o in r.optimizers] == ["adabelief", "adam"]


def test_unknown_key_has_line_and_suggestion(tmp_path):
    e = _error(tmp_path, GOOD.replace("  image_size: 16", "  image_sise: 16"))
    assert e.line == 5 and e.field == "dataset.image_sise" and e.suggestion == "image_size"
    assert "image_size" in e.allowed and str(e).startswith(f"{e.file}:5: dataset.image_sise: unknown key")
    e = _error(tmp_path, GOOD + "schedul: {name: cosine}\n")
    assert e.line == 13 and e.suggestion == "schedule"


def test_bad_enum_value(tmp_path):
    e = _error(tmp_path, GOOD + "precision: fp64\n")
    assert e.line == 13 and e.field == "precision" and e.allowed == ["fp32", "bf16", "fp16"]
    e = _error(tmp_path, GOOD + "schedule: {name: cosin}\n")
    assert e.field == "schedule.name" and e.suggestion == "cosine"
    e = _error(tmp_path, GOOD + "device: gpu\n")
    assert e.field == "device" and e.line == 13


def test_verdict_and_seeds_until_decided_keys(tmp_path):
    text = GOOD.replace("seeds: 2", "seeds: {min: 3, max: 12, until: decided}")
    text += "verdict: {primary: steps_to_target, margins: {final_test_accuracy: 1.0}}\n"
    r = load_recipe(_write(tmp_path, text))
    plan = r.seed_plan
    assert plan is not None and (plan.min, plan.max, plan.round_size) == (3, 12, 3)
    assert r.seed_list == [0, 1, 2] and r.verdict.primary == "steps_to_target"
    assert r.verdict.margins == {"final_test_accuracy": 1.0}
    fixed = load_recipe(_write(tmp_path, GOOD)).with_overrides(until_decided=True)
    assert fixed.seed_plan is not None and (fixed.seed_plan.min, fixed.seed_plan.max) == (2, 20)
    cases = {
        "seeds: {min: 3, max: 20}": ("seeds.until", "missing required key"),
        "seeds: {min: 3, max: 20, until: forever}": (
            "seeds.until",
            "'forever' is not allowed; allowed: decided",
        ),
        "seeds: {min: 5, max: 3, until: decided}": ("seeds", "min (5) must not exceed max (3)"),
        "seeds: {min: 1, max: 3, until: decided}": ("seeds.min", "greater than or equal to 2"),
        "seeds: {min: 3, mx: 9, until: decided}": ("seeds.mx", "unknown key 'mx' (did you mean 'max'?)"),
        "seeds: {min: 3, until: decided, spending: linear}": (
            "seeds.spending",
            "allowed: pocock, obrien-fleming",
        ),
    }
    for text, (field, message) in cases.items():
        e = _error(tmp_path, GOOD.replace("seeds: 2", text))
        assert e.field == field and e.line == 7 and message in str(e), str(e)
    e = _error(tmp_path, GOOD + "verdict: {primary: test_accuracy}\n")
    assert e.field == "verdict.primary" and e.suggestion == "best_test_accuracy" and e.line == 13
    e = _error(tmp_path, GOOD + "verdict: {margins: {accuracy: 1}}\n")
    assert e.field == "verdict.margins.accuracy" and "unknown metric 'accuracy'" in str(e)
    assert e.allowed is not None and "final_test_accuracy" in e.allowed
    e = _error(tmp_path, GOOD + "verdict: {margins: {loss_gap: -1}}\n")
    assert e.field == "verdict.margins.loss_gap" and "greater than or equal to 0" in str(e)


def test_misspelt_names_suggest(tmp_path):
    e = _error(tmp_path, GOOD.replace("name: digits", "name: digts"))
    assert (e.line, e.field, e.suggestion) == (4, "dataset.name", "digits")
    e = _error(tmp_path, GOOD.replace("test_resnet", "test_resnt"), env=True)
    assert (e.line, e.field, e.suggestion) == (2, "model.name", "test_resnet")
    e = _error(tmp_path, GOOD.replace("name: adam\n", "name: adma\n"), env=True)
    assert e.line == 10 and e.field == "optimizers[1].name" and e.suggestion is not None
    e = _error(tmp_path, GOOD.replace("{name: adabelief, lr", "{name: adabelif, lr"), env=True)
    assert e.suggestion == "adabelief" and e.line == 9


def test_unknown_hyperparameter_lists_allowed(tmp_path):
    e = _error(tmp_path, GOOD.replace("momentum: 0.9", "momentun: 0.9"), env=True)
    assert e.field == "optimizers[2].momentun" and e.line == 12 and "momentum" in e.allowed
    e = _error(tmp_path, GOOD.replace("lr: 0.05", "lr: -0.05"), env=True)
    assert e.field == "optimizers[2]" and "learning rate" in str(e)


def test_budget_needs_exactly_one(tmp_path):
    e = _error(tmp_path, GOOD.replace("steps: 20,", "steps: 20, epochs: 2,"))
    assert e.field == "budget" and e.line == 6 and "exactly one of steps | epochs | seconds" in str(e)
    e = _error(tmp_path, GOOD.replace("steps: 20,", ""))
    assert e.field == "budget"


def test_missing_and_malformed(tmp_path):
    e = _error(tmp_path, GOOD.replace("seeds: 2\n", "seeds: many\n"))
    assert e.field == "seeds" and e.line == 7
    e = _error(tmp_path, GOOD.replace("model: {name: test_resnet, kwargs: {}}\n", ""))
    assert e.field == "model" and "missing" in str(e)
    e = _error(tmp_path, GOOD + "seeds: 3\n")
    assert "duplicate key 'seeds'" in str(e) and e.line == 13
    e = _error(tmp_path, GOOD + "bad: [1, 2\n")
    assert "invalid YAML" in str(e) and e.line is not None
    e = _error(tmp_path, "- just\n- a list\n")
    assert "mapping" in str(e)
    e = _error(tmp_path, "")
    assert "empty" in str(e)
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_environment_errors(tmp_path):
    e = _error(
        tmp_path, GOOD.replace("  name: digits", f"  name: cifar10\n  root: {tmp_path / 'none'}"), env=True
    )
    assert e.field == "dataset.root" and e.line == 5 and "cifar-10-batches-py" in str(e)
    import torch

    if not torch.cuda.is_available():
        e = _error(tmp_path, GOOD + "device: cuda\n", env=True)
        assert e.field == "device" and e.line == 13 and "CUDA" in str(e)
    e = _error(tmp_path, GOOD.replace("name: adam\n", "name: 'no_such_pkg_xyz.optim:Opt'\n"), env=True)
    assert "does not import" in str(e) and e.line == 10
    e = _error(tmp_path, GOOD.replace("kwargs: {}", "kwargs: {bogus: 1}"), env=True)
    assert e.field == "model.kwargs" and e.line == 2
    e = _error(tmp_path, GOOD.replace("adabelief, lr: 1.0e-3}", "adabelief, label: sgd-m}"), env=True)
    assert "unique" in str(e)


def test_check_environment_after_overrides_still_has_lines(tmp_path):
    path = _write(tmp_path, GOOD.replace("momentum: 0.9", "momentun: 0.9"))
    r = load_recipe(path)
    copy = Recipe.model_validate(r.model_dump())  # e.g. CLI overrides: private line info is gone
    with pytest.raises(InputError) as e:
        check_environment(copy, path)
    assert e.value.line == 12


def test_schema_is_json_schema():
    s = recipe_schema()
    json.dumps(s)
    assert s["type"] == "object" and {"model", "dataset", "budget", "optimizers"} <= set(s["required"])
    assert s["additionalProperties"] is False


# Training images (after the recipe's validation split) of the datasets the shipped recipes download.
TRAIN_SIZES = {"cifar10": 50000, "fashion_mnist": 60000}


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    """Every shipped recipe passes every check compare makes, with no warning; the digits ones also
    pass the real preflight (the others' budgets are checked against their datasets' known sizes)."""
    import math

    from adacli.recipe import assign_labels
    from adacli.run.preflight import check_budget_settings, preflight
    from adacli.run.sweep import optimizer_configs

    if path.read_text().find("\nworkloads:") >= 0:  # a suite: every workload must pass the recipe checks
        from adacli.recipe.suite import load_suite
        from adacli.run.preflight import check_suite

        suite = load_suite(path)
        assert suite.spec.name == path.stem and len(suite.workloads) >= 4
        assert check_suite(suite) == []  # every workload passes the preflight, with no warning
        return
    r = load_recipe(path)
    assert r.name == path.stem
    check_environment(r, path)
    assert len(set(assign_labels(r.optimizers))) == len(r.optimizers)
    configs = sum(len(optimizer_configs(r, i)) for i in range(len(r.optimizers)))
    if r.dataset.name == "digits":
        report = preflight(r, path)
        assert report.warnings == [] and report.optimizer_steps == configs and report.train_size > 1000
        return
    size = TRAIN_SIZES[r.dataset.name]
    train = size - round(size * r.dataset.val_fraction)
    steps = math.ceil(r.budget.epochs * (train // r.budget.batch_size))
    assert check_budget_settings(r, train_size=train, total=steps, path=path) == []
