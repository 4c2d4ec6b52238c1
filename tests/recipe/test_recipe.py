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


MERGED = """\
name: merged
model: {name: test_resnet}
dataset: {name: digits, image_size: 16}
budget: {steps: 20, batch_size: 32}
optimizers:
  - &adam {name: adam, lr: 1.0e-3, weight_decay: 0.0}
  - {<<: *adam, name: adamw, label: adamw-a}
  - <<: [*adam]
    name: adamw
    lr: 3.0e-3
"""


def test_yaml_merge_keys_share_optimizer_settings(tmp_path):
    """``<<: *base`` (and a list of bases) merges a mapping; a key written beside the merge overrides
    the merged one; merged keys take the line where they are defined."""
    path = _write(tmp_path, MERGED)
    r = load_recipe(path)
    assert [o.hparams for o in r.optimizers] == [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 0.0},
    ]
    assert [o.name for o in r.optimizers] == ["adam", "adamw", "adamw"]
    assert r.line_of("optimizers", 2, "lr") == 10 and r.line_of("optimizers", 1, "weight_decay") == 6
    check_environment(r, path)


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        # a key written twice beside the merge is still a duplicate
        (MERGED.replace("    lr: 3.0e-3\n", "    lr: 3.0e-3\n    lr: 1.0e-2\n"), "duplicate key 'lr'", 11),
        # a merged key that is not a hyperparameter: its line is where it is written
        (MERGED.replace("weight_decay: 0.0}", "weight_decy: 0.0}"), "hyperparameter 'weight_decy'", 6),
        # only a mapping can be merged
        (MERGED.replace("<<: *adam,", "<<: 3,"), "expected a mapping", 7),
        # still no Python tags
        (MERGED.replace("- &adam {", "- !!python/object/apply:os.system ['true']\n  - &adam {"), "python", 6),
    ],
    ids=["duplicate-beside-merge", "merged-typo", "merge-scalar", "python-tag"],
)
def test_yaml_merge_keys_keep_the_errors(tmp_path, text, words, line):
    err = _error(tmp_path, text, env=True)
    assert words in str(err) and err.line == line, str(err)


@pytest.mark.parametrize(
    ("replace", "field", "words"),
    [
        (("adabelief, lr: 1.0e-3}", "adabelief, lr: .nan}"), "optimizers[0].lr", "finite number"),
        (("lr: 1.0e-3\n  - {name: sgd", "lr: -.inf\n  - {name: sgd"), "optimizers[1].lr", "finite number"),
        (("momentum: 0.9", "momentum: {grid: [0.9, .nan]}"), "optimizers[2].momentum.grid[1]", "finite"),
        (("kwargs: {}", "kwargs: {drop_rate: .inf}"), "model.kwargs.drop_rate", "finite number"),
        (("steps: 20", "seconds: .inf"), "budget.seconds", "finite number"),
        (("steps: 20", "epochs: .inf"), "budget.epochs", "finite number"),
        (("steps: 20", "steps: 1.0e12"), "budget.steps", "less than or equal to 10000000"),
        (("seeds: 2", "seeds: [1, 4294967297]"), "seeds", "0..2**32-1"),
        (("seeds: 2", "seeds: 2\ntarget: {value: .nan}"), "target.value", "finite number"),
        (("image_size: 16", "image_size: 16\n  val_fraction: .nan"), "dataset.val_fraction", "finite"),
        (("seeds: 2", "seeds: 2\ngate: {accuracy_drop: .inf}"), "gate.accuracy_drop", "finite number"),
        (("seeds: 2", "seeds: 2\nschedule: {name: step, gamma: .nan}"), "schedule.gamma", "finite"),
        (("adabelief, lr: 1.0e-3}", "adabelief, lr: 2024-01-01}"), "optimizers[0].lr", "a number, a"),
    ],
)
def test_every_number_is_finite_and_in_range(tmp_path, replace, field, words):
    """Non-finite numbers anywhere (hyperparameters at any depth, model kwargs, budget, target, gate,
    schedule) and seeds the generator cannot tell apart are refused where they are written."""
    err = _error(tmp_path, GOOD.replace(*replace))
    assert err.field == field and words in err.message, str(err)
    assert err.line is not None


def test_command_line_overrides_are_blamed_on_the_option(tmp_path):
    """``--device cuda`` without CUDA names the option, not the recipe's ``device`` line."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    r = load_recipe(_write(tmp_path, GOOD)).with_overrides(device="cuda", steps=5)
    with pytest.raises(InputError) as e:
        check_environment(r, r.source_file)
    assert e.value.field == "--device" and e.value.file is None and "CUDA is not available" in str(e.value)
    assert r.option_for("budget", "steps") == "--steps" and r.option_for("budget", "batch_size") is None
    with pytest.raises(InputError) as e:
        r.with_overrides(seeds=5000)
    assert e.value.field == "--seeds"
