"""Preflight: a model that cannot take the data, an optimizer that cannot step, and budget settings
that cannot mean what they say are exit 2 with the field to fix, before any trial runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adacli.cli import app
from adacli.errors import InputError
from adacli.recipe import load_recipe
from adacli.run.preflight import check_environment, check_recipe, preflight


def write(tmp_path: Path, body: str, *, name: str = "r") -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: {name}\n" + textwrap.dedent(body))
    return str(path)


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(result, code: int = 2) -> str:
    """The CLI's error: exit ``code``, one line, no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


MODEL_DATA = """\
model: {{name: {model}}}
dataset: {{name: digits, image_size: {size}}}
budget: {{steps: 3, batch_size: 16}}
optimizers: [adabelief]
"""


@pytest.mark.parametrize(
    ("model", "size", "expected"),
    [
        (
            "test_vit",
            28,
            "test_vit needs image sizes divisible by 16 (dataset digits is 28 px here): "
            "set dataset.image_size: 32",
        ),
        ("test_vit", 8, "set dataset.image_size: 16"),
        (
            "test_convnext",
            16,
            "test_convnext needs larger images (dataset digits is 16 px here): set dataset.image_size: 32",
        ),
    ],
)
def test_model_that_cannot_take_the_images_is_exit_2_with_the_fix(tmp_path, model, size, expected):
    path = write(tmp_path, MODEL_DATA.format(model=model, size=size))
    recipe = load_recipe(path)
    check_environment(recipe, path)  # the cheap check cannot see it: only a real forward pass does
    with pytest.raises(InputError) as e:
        preflight(recipe, path)
    assert e.value.field == "dataset.image_size" and e.value.line == 3 and e.value.exit_code == 2
    assert expected in str(e.value)
    fixed = load_recipe(write(tmp_path, MODEL_DATA.format(model=model, size=int(expected.split()[-1]))))
    assert preflight(fixed).optimizer_steps == 1  # the suggested size does work


def test_compare_stops_before_the_first_trial(tmp_path):
    path = write(tmp_path, MODEL_DATA.format(model="test_vit", size=28))
    out = tmp_path / "run"
    line = one_line_error(cli("compare", path, "--out", str(out)))
    assert "dataset.image_size: test_vit needs image sizes divisible by 16" in line
    assert not out.exists()  # nothing trained, nothing written


def test_short_betas_names_the_field(tmp_path):
    path = write(
        tmp_path,
        MODEL_DATA.format(model="test_resnet", size=8).replace(
            "[adabelief]", "[{name: adabelief, betas: [0.9]}]"
        ),
    )
    line = one_line_error(cli("validate", path))
    assert line.endswith("optimizers[0].betas: needs 2 values like its default [0.9, 0.999], got [0.9]")


def test_optimizer_that_fails_its_first_step_is_exit_2(tmp_path):
    # torch's Adam builds with capturable=True on the CPU, then fails in step(): only stepping shows it
    path = write(
        tmp_path,
        MODEL_DATA.format(model="test_resnet", size=8).replace(
            "[adabelief]", "[adabelief, {name: adam, capturable: true}]"
        ),
    )
    line = one_line_error(cli("validate", path))
    assert "optimizers[1]: 'adam' (capturable=True) fails its first step() on model test_resnet" in line
    assert "AssertionError" in line


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"budget": "{steps: 5, batch_size: 100000}"},
            "budget.batch_size",
            "100000 is larger than the training set (1294 images of digits",
        ),
        (
            {"schedule": "{name: cosine, warmup_steps: 100}"},
            "schedule.warmup_steps",
            "warmup_steps 100 >= the budget's 5 steps",
        ),
        ({"schedule": "{name: step, step_size: 5}"}, "schedule.step_size", "step_size 5 >= the budget's 5"),
        (
            {"budget": "{epochs: 1, batch_size: 16}", "schedule": "{name: linear, warmup_steps: 80}"},
            "schedule.warmup_steps",
            "the budget's 80 steps",
        ),
    ],
)
def test_settings_that_contradict_the_budget_are_exit_2(tmp_path, change, field, words):
    keys = {"budget": "{steps: 5, batch_size: 16}", **change}
    body = "model: {name: test_resnet}\ndataset: {name: digits, image_size: 8}\n"
    body += "".join(f"{k}: {v}\n" for k, v in keys.items()) + "optimizers: [adabelief]\n"
    line = one_line_error(cli("validate", write(tmp_path, body)))
    assert f"{field}: " in line and words in line, line


def test_batch_of_one_with_batch_norm_is_exit_2(tmp_path):
    body = MODEL_DATA.format(model="test_resnet", size=8).replace("batch_size: 16", "batch_size: 1")
    line = one_line_error(cli("validate", write(tmp_path, body)))
    assert line.endswith(
        ":4: budget.batch_size: model test_resnet needs batches of at least 2 in training (batch norm): "
        "set budget.batch_size: 2 or more"
    )


def test_surprising_but_valid_setting_is_one_warning(tmp_path):
    body = MODEL_DATA.format(model="test_resnet", size=8).replace(
        "batch_size: 16", "batch_size: 16, eval_every: 50"
    )
    result = cli("validate", write(tmp_path, body))
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if "warning" in ln]
    assert warnings == [
        f"warning: {tmp_path / 'recipe.yaml'}:4: budget.eval_every 50 > the budget's 3 steps: "
        "the only evaluation is the final one"
    ]
    assert (
        "preflight: model built on cpu (fp32), one forward/backward on a batch of 16, 1 optimizer step(s)"
        in (result.output)
    )


def test_sweep_without_a_validation_split_is_caught_by_validate(tmp_path):
    body = MODEL_DATA.format(model="test_resnet", size=8).replace(
        "image_size: 8", "image_size: 8, val_fraction: 0"
    )
    body = body.replace("[adabelief]", "[{name: sgd, lr: [0.1, 0.01]}]")
    line = one_line_error(cli("validate", write(tmp_path, body)))
    assert "dataset.val_fraction: a sweep selects on the validation split" in line


@pytest.mark.parametrize("name", ["..", ".", ".hidden"])
def test_run_names_cannot_leave_the_runs_folder(tmp_path, name):
    path = write(tmp_path, MODEL_DATA.format(model="test_resnet", size=8), name=f'"{name}"')
    line = one_line_error(cli("validate", path))
    assert ":1: name: a run name cannot start with '.'" in line


def test_preflight_leaves_the_random_state_alone(tmp_path):
    recipe = load_recipe(write(tmp_path, MODEL_DATA.format(model="test_resnet", size=8)))
    torch.manual_seed(123)
    report = preflight(recipe)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))
    assert report.device == "cpu" and report.batch_size == 16 and report.train_size == 1294
    assert report.total_steps == 3 and report.optimizer_steps == 1 and report.seconds > 0


def test_users_own_optimizer_is_built_not_stepped(tmp_path, monkeypatch):
    tests = str(Path(__file__).resolve().parents[1] / "fixtures")
    monkeypatch.syspath_prepend(tests)
    body = MODEL_DATA.format(model="test_resnet", size=8).replace(
        "[adabelief]", "[adabelief, {name: 'compare_user_optim:InterruptingSGD'}]"
    )
    report = preflight(load_recipe(write(tmp_path, body)))  # its step() raises KeyboardInterrupt
    assert (report.optimizer_steps, report.not_stepped) == (1, 1)


def test_cpu_batch_is_capped(tmp_path):
    body = MODEL_DATA.format(model="test_resnet", size=8).replace("batch_size: 16", "batch_size: 1000")
    assert preflight(load_recipe(write(tmp_path, body))).batch_size == 64


def test_check_recipe_runs_both_stages(tmp_path):
    bad_name = write(tmp_path, MODEL_DATA.format(model="test_resnett", size=8))
    with pytest.raises(InputError, match="unknown timm model 'test_resnett'"):  # stage 1: the environment
        check_recipe(load_recipe(bad_name), bad_name)
    bad_size = write(tmp_path, MODEL_DATA.format(model="test_vit", size=8))
    with pytest.raises(InputError, match=r"set dataset\.image_size: 16"):  # stage 2: preflight
        check_recipe(load_recipe(bad_size), bad_size)
    good = write(tmp_path, MODEL_DATA.format(model="test_resnet", size=8))
    assert check_recipe(load_recipe(good), good, device="cpu").device == "cpu"


@pytest.mark.parametrize(
    ("optimizer", "words"),
    [
        (
            "{name: adam, lr: {log_range: [1.0e-4, 1.0e-1], n: 100000000}}",
            "optimizers[0].lr: log_range's n must be an integer >= 2 and <= 1000 (got 100000000)",
        ),
        (
            "{name: adam, lr: {log_range: [1.0e-4, 1.0e-1], n: 50}, "
            "eps: {log_range: [1.0e-9, 1.0e-6], n: 21}}",
            "optimizers[0]: 1050 configurations (50 lr x 21 eps): at most 1000 per optimizer",
        ),
    ],
)
def test_a_sweep_too_large_to_run_is_exit_2_at_once(tmp_path, optimizer, words):
    body = MODEL_DATA.format(model="test_resnet", size=8).replace("[adabelief]", f"[{optimizer}]")
    line = one_line_error(cli("validate", write(tmp_path, body)))
    assert words in line


DIGITS = """\
model: {name: test_resnet}
dataset: {name: digits, image_size: 16}
budget: {steps: 3, batch_size: 16}
optimizers: [adam]
"""


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        # a dataset key the data contradicts was silently ignored
        (
            ("image_size: 16}", "image_size: 16, num_classes: 5}"),
            "dataset.num_classes",
            "digits has 10 classes",
        ),
        (("image_size: 16}", "image_size: 16, channels: 3}"), "dataset.channels", "has 1 channel"),
        (("image_size: 16}", "image_size: 16, difficulty: 2.0}"), "dataset.difficulty", "synthetic"),
        # a model kwarg that contradicts the dataset
        (
            ("test_resnet}", "test_resnet, kwargs: {num_classes: 3}}"),
            "model.kwargs.num_classes",
            "(10 classes)",
        ),
        (("test_resnet}", "test_resnet, kwargs: {in_chans: 3}}"), "model.kwargs.in_chans", "(1 channels)"),
        # timm raising what it likes (KeyError, FileNotFoundError): one line naming model.kwargs
        (("test_resnet}", "test_resnet, kwargs: {act_layer: no_such_act}}"), "model.kwargs", "KeyError"),
        (
            (
                "test_resnet}",
                "test_resnet, kwargs: {pretrained: true, pretrained_cfg_overlay: {file: /no.pth}}}",
            ),
            "model.kwargs",
            "FileNotFoundError",
        ),
        # a synthetic dataset that cannot be allocated
        (
            ("name: digits, image_size: 16}", "name: synthetic, image_size: 1024, train_size: 90000000}"),
            "dataset.train_size",
            "GiB",
        ),
    ],
)
def test_data_and_model_that_contradict_or_cannot_be_built_are_exit_2(tmp_path, change, field, words):
    path = write(tmp_path, DIGITS.replace(*change))
    with pytest.raises(InputError) as e:
        check_environment(load_recipe(path), path)
    assert e.value.field == field and words in str(e.value), str(e.value)
    assert e.value.file == path and e.value.line is not None


def test_settings_that_agree_with_the_data_are_accepted(tmp_path):
    """Unusual but valid: the dataset's own class and channel counts, written out."""
    body = DIGITS.replace("image_size: 16}", "image_size: 16, num_classes: 10, channels: 1}")
    path = write(tmp_path, body.replace("test_resnet}", "test_resnet, kwargs: {num_classes: 10}}"))
    check_environment(load_recipe(path), path)


def test_a_large_sweep_steps_every_swept_value_on_a_stand_in(tmp_path, monkeypatch):
    """Beyond REAL_STEP_LIMIT configurations the real model takes one step per optimizer, and every swept
    value one step on a 2x2 stand-in parameter: a value that fails its step is still exit 2, named."""
    import adacli.run.preflight as pf

    monkeypatch.setattr(pf, "REAL_STEP_LIMIT", 4)
    grid = "{name: adam, lr: {grid: [1.0e-3, 1.0e-2, 0.1]}, capturable: [false, true]}"  # 6 points
    path = write(tmp_path, DIGITS.replace("[adam]", f"[{grid}]"))
    with pytest.raises(InputError) as e:
        check_environment(load_recipe(path), path)
    assert "capturable=True) fails its first step() on a 2x2 stand-in parameter" in str(e.value), str(e.value)
    assert e.value.field == "optimizers[0]"
    lrs = "lr: {grid: [1.0e-3, 1.0e-2, 0.1]}"
    ok = write(tmp_path, DIGITS.replace("[adam]", f"[{{name: adam, {lrs}}}, {{name: sgd, {lrs}}}]"))
    recipe = load_recipe(ok)
    check_environment(recipe, ok)
    assert preflight(recipe, ok).optimizer_steps == 2  # 6 configurations > 4: one real step each


def test_an_epoch_budget_beyond_what_a_trial_records_is_exit_2(tmp_path):
    """A finite epoch count can still mean more steps than a trial can keep (the data decides how many
    steps an epoch has): exit 2 before training, naming budget.epochs."""
    path = write(tmp_path, DIGITS.replace("{steps: 3, batch_size: 16}", "{epochs: 90000, batch_size: 1}"))
    with pytest.raises(InputError) as e:
        check_recipe(load_recipe(path), path)
    assert e.value.field == "budget.epochs" and "more than the 10,000,000 a trial can record" in str(e.value)
