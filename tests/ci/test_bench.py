"""The step benchmark: `adacli bench` runs end to end on a tiny timm model and reports every candidate."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from adacli.ci import bench
from adacli.cli import app
from adacli.errors import InputError


def test_model_param_shapes_are_real_timm_shapes():
    shapes = bench.model_param_shapes("resnet18")
    assert len(shapes) == 62 and shapes[0] == (64, 3, 7, 7)
    assert sum(torch.Size(s).numel() for s in shapes) == 11_689_512


def test_unknown_model_is_an_input_error():
    with pytest.raises(InputError, match="did you mean 'resnet18'"):
        bench.model_param_shapes("resnet1")


def test_bench_cli_json_on_a_tiny_model():
    args = ["bench", "--model", "test_resnet", "--rounds", "2", "--threads", "1", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"] == "cpu" and data["rounds"] == 2 and data["threads"] == 1
    rows = {row["optimizer"]: row for row in data["rows"]}
    for label in (
        "adacli AdaBelief foreach",
        "adacli AdaBelief single",
        bench.FUSED_ADAM,
        bench.FOREACH_ADAM,
    ):
        assert label in rows
    assert bench.TIMM in rows and bench.OFFICIAL in rows
    assert rows[bench.FUSED_ADAM]["vs_torch_fused_adam"] == pytest.approx(1.0)
    assert rows[bench.TIMM]["vs_timm"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["median_ms"] > 0 and row["steps_timed"] == 2 * 3
        assert row["vs_torch_fused_adam"] == pytest.approx(
            row["median_ms"] / rows[bench.FUSED_ADAM]["median_ms"]
        )


def test_bench_cli_table_and_bad_device():
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--model", "test_resnet", "--rounds", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "x fused Adam" in result.stdout and "adacli AdaBelief foreach" in result.stdout
    bad = runner.invoke(app, ["bench", "--model", "test_resnet", "--device", "tpu"])
    assert bad.exit_code == 2


def test_default_models_include_small_ones():
    """Small models (a hundred tiny tensors: dispatch-bound) are measured by default, before large ones."""
    assert bench.DEFAULT_MODELS[:3] == bench.SMALL_MODELS == ("test_resnet", "test_convnext", "test_vit")
    assert set(bench.LARGE_MODELS) <= set(bench.DEFAULT_MODELS)
    assert len(bench.model_param_shapes("test_convnext")) == 101
