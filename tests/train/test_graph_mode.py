"""``model.compile: graph``: whole-step CUDA graphs for trials.

Without CUDA the decision logic, the capturable switch, the eager fallback with its one-line note and the
recipe field run here; the capture itself is checked by the ``cuda`` tests (``pytest -m cuda`` on a GPU).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from adacli import AdaBelief
from adacli.cli import app
from adacli.optim.registry import resolve_optimizer
from adacli.recipe import BudgetSpec, ModelSpec, ScheduleSpec, recipe_schema
from adacli.train import graph as graph_mod
from adacli.train.graph import graph_problem, make_capturable
from adacli.train.trial import TrialConfig, run_trial

CUDA = torch.device("cuda")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class UserAdam(torch.optim.Adam):
    """A user's subclass: it may do anything on the host, so it is not captured."""


def _params() -> list[nn.Parameter]:
    return [nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(2))]


def test_graph_problem_decides_which_trials_are_captured():
    ps = _params()
    for opt in (AdaBelief(ps), torch.optim.Adam(ps), torch.optim.AdamW(ps), torch.optim.SGD(ps, lr=0.1)):
        assert graph_problem(opt, CUDA, "bf16") is None, type(opt)
        assert graph_problem(opt, CUDA, "fp32") is None
        assert "CUDA device" in graph_problem(opt, torch.device("cpu"), "fp32")
        assert "fp16 loss scaling" in graph_problem(opt, CUDA, "fp16")
    assert "not known to be capturable" in graph_problem(UserAdam(ps), CUDA, "fp32")
    damped = torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1)
    assert "dampening" in graph_problem(damped, CUDA, "fp32")


@pytest.mark.parametrize("scheduled", [False, True])
def test_make_capturable_sets_device_counters_and_a_tensor_lr(scheduled):
    ps = _params()
    ada, adam, sgd = AdaBelief(ps, lr=0.01), torch.optim.AdamW(ps, lr=0.01), torch.optim.SGD(ps, lr=0.1)
    for opt in (ada, adam, sgd):
        make_capturable(opt, torch.device("cpu"), scheduled)
        group = opt.param_groups[0]
        assert group.get("capturable", True) is True
        assert isinstance(group["lr"], torch.Tensor) is scheduled
    assert bool(sgd.param_groups[0]["fused"]) is scheduled
    # the capturable AdaBelief steps (device counters) and a scheduler drives its Tensor lr in place
    sched = torch.optim.lr_scheduler.LambdaLR(ada, lambda i: 0.5)
    for p in ps:
        p.grad = torch.ones_like(p)
    ada.step()
    sched.step()
    assert ada.state[ps[0]]["step"].item() == 1
    assert float(ada.param_groups[0]["lr"]) == pytest.approx(0.005)


def test_graph_on_cpu_runs_eagerly_with_a_one_line_note(data, model0, capsys, monkeypatch):
    """On the CPU the switch is a note, not an error: the same recipe runs on a laptop and a GPU box."""
    monkeypatch.setattr(graph_mod, "_notes_shown", set())
    resolved = resolve_optimizer("adabelief", {"lr": 1e-2})
    budget = BudgetSpec(steps=6, batch_size=32, eval_every=6)
    schedule = ScheduleSpec(name="cosine", warmup_steps=2)
    eager = run_trial(model0, data, resolved, TrialConfig(budget=budget, schedule=schedule), seed=1)
    graph_cfg = TrialConfig(budget=budget, schedule=schedule, compile="graph")
    graphed = run_trial(model0, data, resolved, graph_cfg, seed=1)
    again = run_trial(model0, data, resolved, graph_cfg, seed=2)
    err = capsys.readouterr().err
    assert err.count("note: model.compile: graph: CUDA graphs need a CUDA device") == 1  # once per process
    assert len(err.strip().splitlines()) == 1
    assert graphed.status == "ok" and again.status == "ok"
    assert graphed.extra["graph"] is False and "graph" not in eager.extra
    assert graphed.losses == eager.losses  # the eager loop, unchanged


def test_recipe_compile_field_accepts_graph_and_booleans(tmp_path):
    schema = recipe_schema()
    compile_schema = schema["$defs"]["ModelSpec"]["properties"]["compile"]
    assert {"type": "boolean"} in compile_schema["anyOf"]
    assert {"const": "graph", "type": "string"} in compile_schema["anyOf"]
    for value, expected in (("graph", "graph"), ("true", True), ("false", False)):
        assert ModelSpec(name="test_resnet", compile=value).compile == expected
    base = "name: t\nmodel: {{name: test_resnet, compile: {}}}\ndataset: {{name: digits}}\n"
    base += "budget: {{steps: 2}}\noptimizers: [adabelief]\n"
    runner = CliRunner()
    for value in ("graph", "true"):
        path = tmp_path / f"{value}.yaml"
        path.write_text(base.format(value))
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(base.format("grph"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "model.compile" in result.output and "'graph'" in result.output
    assert "Traceback" not in result.output
    json.dumps(schema)


# --- CUDA ---------------------------------------------------------------------------------------------


def _cuda_pair(data, model0, name: str, hparams: dict, *, schedule=None, precision="bf16", steps=30):
    resolved = resolve_optimizer(name, hparams)
    budget = BudgetSpec(steps=steps, batch_size=32, eval_every=steps)
    common = dict(budget=budget, schedule=schedule, device=CUDA, precision=precision)
    eager = run_trial(model0, data, resolved, TrialConfig(**common), seed=3)
    graphed = run_trial(model0, data, resolved, TrialConfig(**common, compile="graph"), seed=3)
    return eager, graphed


@pytest.mark.parametrize(
    ("name", "hparams"),
    [
        ("adabelief", {"lr": 1e-2}),
        ("adam", {"lr": 1e-2}),
        ("adamw", {"lr": 1e-2, "weight_decay": 0.05}),
        ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ],
)
@pytest.mark.parametrize("scheduled", [False, True])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_trial_matches_the_eager_loop(data, model0, name, hparams, scheduled):
    """Same seed, same batches, same schedule: the graphed trial follows the eager one (bf16 tolerance)."""
    schedule = ScheduleSpec(name="cosine", warmup_steps=3) if scheduled else None
    eager, graphed = _cuda_pair(data, model0, name, hparams, schedule=schedule)
    assert eager.status == graphed.status == "ok", (eager.error, graphed.error)
    assert graphed.extra["graph"] is True
    assert len(graphed.losses) == len(eager.losses) == 30
    assert graphed.losses[0] == pytest.approx(eager.losses[0], rel=1e-2)  # the same initial weights
    for a, b in zip(graphed.losses, eager.losses, strict=True):
        assert a == pytest.approx(b, rel=0.05, abs=0.02)
    assert graphed.evals[-1].test_accuracy == pytest.approx(eager.evals[-1].test_accuracy, abs=10.0)
    assert graphed.losses[-1] < graphed.losses[0]  # it trained


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_user_class_on_cuda_falls_back_with_a_note(data, model0, capsys, monkeypatch):
    monkeypatch.setattr(graph_mod, "_notes_shown", set())
    _, graphed = _cuda_pair(data, model0, f"{__name__}:UserAdam", {"lr": 1e-2}, steps=5)
    assert graphed.status == "ok" and graphed.extra["graph"] is False
    assert "not known to be capturable; running eagerly" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_capturing_a_non_capturable_adabelief_step_is_refused():
    p = nn.Parameter(torch.randn(64, device="cuda"))
    p.grad = torch.randn_like(p)
    opt = AdaBelief([p])
    opt.step()
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="capturable=True"), torch.cuda.graph(graph):
        opt.step()


def test_graph_capture_on_cuda_is_announced_as_unverified_until_a_gpu_check_passes(monkeypatch):
    """Checked without a GPU: the note a CUDA trial prints once before capturing, none on the CPU (whose
    note says it runs eagerly) and none once the capture is marked verified."""
    note = graph_mod.unverified_note(CUDA)
    assert note is not None and "unverified" in note and "benchmarks/gpu_check.sh" in note
    assert "\n" not in note and note.startswith("model.compile: graph:")
    assert graph_mod.unverified_note(torch.device("cpu")) is None
    monkeypatch.setattr(graph_mod, "GRAPH_CAPTURE_VERIFIED", True)
    assert graph_mod.unverified_note(CUDA) is None
