"""run_trial: fairness, budgets, the clock, evaluation, schedules, precision, divergence and failures.

Everything runs on the CPU with a real timm model (test_resnet) on real (synthetic) data at 8 px, a
handful of steps per trial.
"""

from __future__ import annotations

import ast
import math
import time
from pathlib import Path

import pytest
import torch

from adacli.errors import InputError
from adacli.optim.registry import resolve_optimizer
from adacli.recipe import BudgetSpec, ModelSpec, ScheduleSpec
from adacli.train import trial as trial_mod
from adacli.train.schedule import lr_factor
from adacli.train.step import cpu_precision_guard, resolve_device
from adacli.train.trial import (
    TrialConfig,
    initial_model,
    optimizer_state_bytes,
    run_trial,
    state_fingerprint,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def cfg(**budget) -> TrialConfig:
    budget.setdefault("batch_size", 32)
    return TrialConfig(budget=BudgetSpec(**budget))


def test_fairness_same_weights_and_batches_per_seed(data, model0):
    """Every optimizer of a seed starts from the same weights and sees the same batches: its first loss
    (computed before any update) is bit-identical; a different seed gives different weights and batches."""
    before = state_fingerprint(model0)
    assert state_fingerprint(initial_model(ModelSpec(name="test_resnet"), data, seed=0)) == before
    other = initial_model(ModelSpec(name="test_resnet"), data, seed=1)
    assert state_fingerprint(other) != before

    results = [
        run_trial(model0, data, resolve_optimizer(name, hp), cfg(steps=3), seed=0)
        for name, hp in [("adabelief", {}), ("adam", {}), ("sgd", {"lr": 0.1, "momentum": 0.9})]
    ]
    assert state_fingerprint(model0) == before  # trials train copies
    firsts = {r.losses[0] for r in results}
    assert len(firsts) == 1, firsts
    assert len({tuple(r.losses[1:]) for r in results}) == 3  # and then the optimizers do differ
    r1 = run_trial(other, data, resolve_optimizer("adam"), cfg(steps=1), seed=1)
    assert r1.losses[0] != results[0].losses[0]

    # the batches themselves: the trial's stream is data.train_batches(bs, seed): equal by seed
    a, b = data.train_batches(32, 0, "cpu"), data.train_batches(32, 0, "cpu")
    for _ in range(10):  # past an epoch boundary (230 images / 32 = 7 batches per epoch)
        (xa, ya), (xb, yb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_step_budget_records_and_evals(data, model0):
    r = run_trial(model0, data, resolve_optimizer("adam"), cfg(steps=7, eval_every=3), seed=0, label="A")
    assert r.status == "ok" and r.error is None
    assert (r.label, r.optimizer, r.optimizer_class) == ("A", "adam", "torch.optim.adam.Adam")
    assert r.hparams["eps"] == 1e-8 and r.hparams["lr"] == 1e-3  # defaults recorded
    assert r.steps_done == 7 and len(r.times) == 7
    assert all(t2 > t1 for t1, t2 in zip(r.times, r.times[1:], strict=False)) and r.times[0] > 0
    assert [e.step for e in r.evals] == [3, 6, 7]
    for e in r.evals:
        assert e.seconds == pytest.approx(r.times[e.step - 1], abs=0.05)
        assert 0 <= e.test_accuracy <= 100 and 0 <= e.train_eval_accuracy <= 100
        assert math.isfinite(e.test_loss) and math.isfinite(e.train_eval_loss)
    assert r.step_time_ms > 0 and 0 < r.optimizer_step_ms < r.step_time_ms * 2
    n_params = sum(p.numel() for p in model0.parameters())
    assert r.state_bytes == 2 * n_params * 4 + 4 * len(list(model0.parameters()))  # exp_avg, exp_avg_sq, step
    # CPU: growth of the process RSS, sampled at evaluations (0 when the allocator reused memory); its
    # size is pinned down on CUDA, where allocations are counted exactly (test below)
    assert isinstance(r.peak_memory_bytes, int)
    assert r.extra["stop_reason"] == "budget" and r.extra["total_steps"] == 7


def test_epoch_budget(data, model0):
    per_epoch = data.steps_per_epoch(32)
    r = run_trial(model0, data, resolve_optimizer("sgd", {"lr": 0.05}), cfg(epochs=1.5), seed=0)
    assert r.steps_done == math.ceil(1.5 * per_epoch)
    assert r.extra["epochs"] == pytest.approx(r.steps_done / per_epoch)
    assert [e.step for e in r.evals][-1] == r.steps_done and len(r.evals) <= 10 + 1


def test_seconds_budget(data, model0):
    r = run_trial(model0, data, resolve_optimizer("adam"), cfg(seconds=0.6), seed=0)
    assert r.status == "ok" and r.steps_done >= 2
    assert r.train_seconds >= 0.6
    assert r.train_seconds < 0.6 + 10 * r.step_time_ms / 1e3 + 0.5  # stops within about one step
    assert r.evals and r.evals[-1].step == r.steps_done and r.extra["total_steps"] is None


def test_evaluation_is_not_training_time(data, model0, monkeypatch):
    """Slow down evaluation by 0.15 s per call: the training clock must not see it."""
    real = trial_mod.evaluate

    def slow_evaluate(*a, **k):
        time.sleep(0.15)
        return real(*a, **k)

    monkeypatch.setattr(trial_mod, "evaluate", slow_evaluate)
    t0 = time.perf_counter()
    r = run_trial(model0, data, resolve_optimizer("adam"), cfg(steps=4, eval_every=1), seed=0)
    wall = time.perf_counter() - t0
    assert len(r.evals) == 4  # 8 evaluate calls, 1.2 s of sleeping
    assert r.train_seconds <= wall - 1.2
    assert r.train_seconds < 1.2


def test_divergence_stops_the_trial_with_a_result(data, model0):
    r = run_trial(model0, data, resolve_optimizer("sgd", {"lr": 1e6}), cfg(steps=20, eval_every=5), seed=0)
    assert r.status == "diverged"
    assert "step" in r.error and ("not finite" in r.error or "1e3" in r.error)
    bad = r.losses[-1]
    assert not math.isfinite(bad) or bad > 1e3 * r.losses[0]
    assert r.steps_done < 20 and len(r.times) == r.steps_done
    assert all(e.step <= r.steps_done for e in r.evals)
    assert r.extra["stop_reason"] == "diverged"


def test_user_optimizer_crash_is_a_failed_trial(data, model0, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    r = run_trial(model0, data, resolve_optimizer("compare_user_optim:CrashingSGD"), cfg(steps=6), seed=0)
    assert r.status == "failed" and "RuntimeError: user optimizer bug" in r.error
    assert r.steps_done == 2 and r.optimizer_class == "compare_user_optim.CrashingSGD"


def test_keyboard_interrupt_propagates(data, model0, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    with pytest.raises(KeyboardInterrupt):
        run_trial(model0, data, resolve_optimizer("compare_user_optim:InterruptingSGD"), cfg(steps=3), seed=0)


def test_lr_factor_shapes():
    cos = ScheduleSpec(name="cosine", warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(cos, i, 0.0) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(cos, 4, 0.0) == pytest.approx(1.0)
    assert lr_factor(cos, 9, 0.5) == pytest.approx(0.55)
    assert lr_factor(cos, 99, 1.0) == pytest.approx(0.1)
    lin = ScheduleSpec(name="linear")
    assert lr_factor(lin, 5, 0.25) == pytest.approx(0.75)
    step = ScheduleSpec(name="step", step_size=3, gamma=0.5)
    assert [lr_factor(step, i, 0.0) for i in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert lr_factor(ScheduleSpec(name="step"), 0, 0.7) == pytest.approx(0.01)  # no step_size: thirds
    assert lr_factor(None, 3, 0.3) == 1.0


def test_schedule_is_applied_to_the_optimizer(data, model0, monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    from compare_user_optim import LrRecordingSGD

    LrRecordingSGD.seen.clear()
    sched = ScheduleSpec(name="cosine", warmup_steps=2)
    config = TrialConfig(budget=BudgetSpec(steps=6, batch_size=32), schedule=sched)
    r = run_trial(
        model0, data, resolve_optimizer("compare_user_optim:LrRecordingSGD", {"lr": 0.1}), config, seed=0
    )
    assert r.status == "ok"
    expected = [0.1 * lr_factor(sched, i, (i - 2) / 4) for i in range(6)]
    assert LrRecordingSGD.seen == pytest.approx(expected)
    assert LrRecordingSGD.seen[:2] == pytest.approx([0.05, 0.1])


def test_schedule_on_a_seconds_budget_follows_the_training_clock(data, model0, monkeypatch):
    """On a time budget the schedule's progress is the training clock over the budget: each step's lr
    lies between the values at the clock readings (``times``) of the two steps before it."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    from compare_user_optim import LrRecordingSGD

    LrRecordingSGD.seen.clear()
    seconds = 0.5
    budget = BudgetSpec(seconds=seconds, batch_size=32)
    config = TrialConfig(budget=budget, schedule=ScheduleSpec(name="linear"))
    r = run_trial(
        model0, data, resolve_optimizer("compare_user_optim:LrRecordingSGD", {"lr": 0.1}), config, seed=0
    )
    seen = LrRecordingSGD.seen
    assert r.status == "ok" and len(seen) == r.steps_done >= 5
    assert seen[0] == pytest.approx(0.1)  # the clock starts at 0

    def lr_at(clock: float) -> float:  # linear from 0.1 to 0 over the budget
        return 0.1 * (1 - min(clock / seconds, 1.0))

    for i in range(1, len(seen)):
        before = r.times[i - 2] if i >= 2 else 0.0
        assert lr_at(r.times[i - 1]) - 1e-12 <= seen[i] <= lr_at(before) + 1e-12, (i, seen[i])
    assert seen[-1] < 0.05 and seen == sorted(seen, reverse=True)  # it decays until the budget ends


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu(data, model0, precision):
    config = TrialConfig(budget=BudgetSpec(steps=3, batch_size=32), precision=precision, channels_last=True)
    r = run_trial(model0, data, resolve_optimizer("adabelief"), config, seed=0)
    assert r.status == "ok", r.error
    assert r.steps_done == 3 and all(math.isfinite(v) for v in r.losses)
    assert r.extra["precision"] == precision


def test_state_bytes_counts_each_tensor():
    p = torch.nn.Parameter(torch.zeros(10))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(10)
    opt.step()
    assert optimizer_state_bytes(opt) == 40


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    best = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"  # auto's order of preference
    assert resolve_device("auto") == torch.device(best) and resolve_device(None) == torch.device(best)
    given = torch.device("cpu")
    assert resolve_device(given) is given
    with pytest.raises(InputError, match="unknown device 'gpu'") as e:
        resolve_device("gpu")
    assert e.value.field == "device" and e.value.exit_code == 2
    with pytest.raises(InputError, match="unsupported device 'meta'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_warm_up_leaves_weights_buffers_and_grads_untouched(data, model0):
    """The untimed warm-up pass (one-off costs off the clock) must not change what the trial trains."""
    import copy

    net = copy.deepcopy(model0).train()
    before = state_fingerprint(net)
    trial_mod.warm_up(net, net, data, cfg(steps=1), resolve_optimizer("adabelief", {"lr": 0.5}))
    assert state_fingerprint(net) == before  # BatchNorm running stats included
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_memory_holds_the_model_and_optimizer_state(data, model0):
    """On CUDA the trial's peak memory is counted by the allocator: at least the copied model's
    parameters and gradients plus the optimizer state it allocated during the trial."""
    config = TrialConfig(budget=BudgetSpec(steps=3, batch_size=32, eval_every=3), device=torch.device("cuda"))
    r = run_trial(model0, data, resolve_optimizer("adam"), config, seed=0)
    param_bytes = sum(p.numel() * 4 for p in model0.parameters())
    assert r.status == "ok" and r.state_bytes >= 2 * param_bytes
    assert r.peak_memory_bytes >= 2 * param_bytes + r.state_bytes, (r.peak_memory_bytes, param_bytes)


def test_bf16_on_the_cpu_runs_with_onednn_off_and_restores_it(data, model0, monkeypatch):
    """torch's oneDNN bf16 convolution backward hands back gradients that later allocations overwrite
    (benchmarks/bf16_cpu_grads.py); a bf16 CPU trial therefore trains with oneDNN off, and only then."""
    seen = []
    real = torch.nn.functional.cross_entropy

    def spy(*args, **kwargs):
        seen.append(torch.backends.mkldnn.enabled)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    before = torch.backends.mkldnn.enabled
    config = TrialConfig(budget=BudgetSpec(steps=3, batch_size=32), precision="bf16")
    assert run_trial(model0, data, resolve_optimizer("adabelief"), config, seed=0).status == "ok"
    assert seen and not any(seen) and torch.backends.mkldnn.enabled == before
    seen.clear()
    fp32 = TrialConfig(budget=BudgetSpec(steps=2, batch_size=32))
    assert run_trial(model0, data, resolve_optimizer("adabelief"), fp32, seed=0).status == "ok"
    assert seen and all(seen) == before
    with cpu_precision_guard(torch.device("cpu"), "fp16"):  # fp16 is not affected
        assert torch.backends.mkldnn.enabled == before


# --- the train stage's shape ---------------------------------------------------------------------


ADACLI = Path(trial_mod.__file__).resolve().parents[1]
HIGHER_STAGES = ("adacli.run", "adacli.report", "adacli.ci", "adacli.app", "adacli.cli")


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from adacli... import name`` in a file (module level and in functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("adacli"):
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.startswith("adacli")]
    return out


def test_train_stage_imports_no_higher_stage_and_no_one_imports_its_private_names():
    """One training step serves trial, preflight and step-test through public names only; the train
    stage itself never reaches up into run, report, ci, app or cli."""
    for path in (ADACLI / "train").glob("*.py"):
        for module, name in _imports(path):
            assert not module.startswith(HIGHER_STAGES), f"{path.name} imports {module}"
            assert not name.startswith("_"), f"{path.name} imports {module}.{name}"
    users = [
        *ADACLI.rglob("*.py"),
        *(ADACLI.parent / "tests").glob("*.py"),
        *(ADACLI.parent / "benchmarks").glob("*.py"),
    ]
    for path in users:
        for module, name in _imports(path):
            if module.startswith("adacli.train"):
                assert not name.startswith("_"), f"{path.name} imports {module}.{name}"


def test_train_stage_and_its_step_users_fit_on_a_screen():
    files = [*(ADACLI / "train").glob("*.py")]
    files += [ADACLI / f for f in ("ci/steptest.py", "ci/bench.py", "ci/problems.py", "run/preflight.py")]
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(ADACLI)}:{node.name} {n} lines")
    assert not long, long
