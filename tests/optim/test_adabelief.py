"""AdaBelief against the official adabelief-pytorch 0.2.1, path against path, and its state handling.

Parity is checked on replayed gradients: one gradient sequence is recorded along one training trajectory of a
small conv net on real data (sklearn digits), then every optimizer under test receives exactly that sequence,
so only the optimizers' arithmetic can differ (independent trajectories would amplify rounding chaotically).
The official optimizer shares one rectification buffer across groups and keeps its flags global, so it is
built once per param group (each on that group's parameters) and compared group by group.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import math

import pytest
import torch
from torch import nn

from adacli import AdaBelief
from adacli.optim import _flat, _fused
from adacli.optim import adabelief as ab

official = pytest.importorskip("adabelief_pytorch")

STEPS = 200
PATHS = ("single", "foreach", "fused")
# capturable=True on the CPU: device step counters and device scalars through the foreach ops, lr a Tensor
WITH_CAPTURABLE = (*PATHS, "capturable")
FLAGS = ("amsgrad", "weight_decouple", "fixed_decay", "rectify", "degenerated_to_sgd")
# per-group hyperparameters (one row per group of the net below)
GROUP_HYPER = (
    dict(lr=1e-2, betas=(0.9, 0.999)),
    dict(lr=3e-3, betas=(0.8, 0.99)),
    dict(lr=5e-3, betas=(0.95, 0.9995)),
    dict(lr=2e-3, betas=(0.9, 0.98)),
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),
        nn.Tanh(),
        nn.Linear(16, 10),
    )


def _group_params(net: nn.Module) -> list[list[nn.Parameter]]:
    ps = list(net.parameters())  # 8 tensors -> 4 groups of 2
    return [ps[0:2], ps[2:4], ps[4:6], ps[6:8]]


def _path_kw(path: str) -> dict:
    if path == "capturable":
        return dict(foreach=True, capturable=True)
    if path == "capturable-fused":
        return dict(fused=True, capturable=True)
    return dict(foreach=path == "foreach", fused=path == "fused")


def _lr(path: str, lr: float) -> float | torch.Tensor:
    """The capturable path takes its lr as a Tensor (what torch's schedulers update in place)."""
    return torch.tensor(lr) if path == "capturable" else lr


def _quiet_official(params, **kw):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints on construction
        return official.AdaBelief(params, print_change_log=False, **kw)


@pytest.fixture(scope="module")
def recorded() -> tuple[nn.Module, list[list[torch.Tensor]]]:
    """The net's initial state and STEPS gradient lists taken along one trajectory on sklearn digits."""
    from sklearn.datasets import load_digits

    x_all, y_all = load_digits(return_X_y=True)
    x_all = torch.tensor(x_all, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y_all = torch.tensor(y_all)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the function-scoped thread fixture
    net = _make_net()
    init = copy.deepcopy(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    grads = []
    for _ in range(STEPS):
        idx = torch.randint(0, len(y_all), (32,), generator=gen)
        loss = nn.functional.cross_entropy(net(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        grads.append([p.grad.detach().clone() for p in net.parameters()])
        opt.step()
    torch.set_num_threads(threads)
    return init, grads


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    denom = b.norm().item()
    return (a - b).norm().item() / (denom if denom > 0 else 1.0)


ALL_COMBOS = [
    (dict(zip(FLAGS, bits, strict=True)) | {"weight_decay": wd}, eps)
    for bits in itertools.product([False, True], repeat=len(FLAGS))
    for wd in (0.0, 1e-2)
    for eps in (1e-16, 1e-8)
]
# 128 (flags, weight decay, eps) combinations, four per run: each param group gets its own combination
RUNS = [ALL_COMBOS[i : i + 4] for i in range(0, len(ALL_COMBOS), 4)]


def test_combo_coverage():
    assert len(ALL_COMBOS) == 128 and len(RUNS) == 32
    seen = {(tuple(c.items()), eps) for c, eps in ALL_COMBOS}
    assert len(seen) == 128


@pytest.mark.parametrize("run", range(len(RUNS)))
def test_parity_with_official(run, recorded, monkeypatch):
    """Every flag combination x two eps x different per-group hyperparameters, all three paths, 200 steps."""
    if run % 2:
        # small chunks so that the foreach path cuts tensors into flat views and runs of tensors
        monkeypatch.setattr(ab, "_CPU_CHUNK", 50)
        monkeypatch.setattr(_flat, "FLAT_MIN_TENSORS", 10**9)
    else:
        # every group (two tensors) a flat bucket: the foreach path's small-tensor update, with slices
        # so small that tensors are also cut into pieces (half the runs) or grouped whole (the others)
        monkeypatch.setattr(_flat, "FLAT_MIN_TENSORS", 2)
        monkeypatch.setattr(_flat, "SLICE", 16 if run % 4 == 0 else 1 << 16)
    init, grads = recorded
    combos = RUNS[run]
    nets = {name: copy.deepcopy(init) for name in (*WITH_CAPTURABLE, "official")}
    ours = {}
    for path in WITH_CAPTURABLE:
        groups = [
            {"params": ps, **GROUP_HYPER[g], **combos[g][0], "eps": combos[g][1]}
            | {"lr": _lr(path, GROUP_HYPER[g]["lr"])}
            for g, ps in enumerate(_group_params(nets[path]))
        ]
        ours[path] = AdaBelief(groups, **_path_kw(path))
    officials = [
        _quiet_official(ps, **GROUP_HYPER[g], **combos[g][0], eps=combos[g][1])
        for g, ps in enumerate(_group_params(nets["official"]))
    ]
    for step_grads in grads:
        for path in WITH_CAPTURABLE:
            for p, g in zip(nets[path].parameters(), step_grads, strict=True):
                p.grad = g  # ours never writes to p.grad
            ours[path].step()
        for p, g in zip(nets["official"].parameters(), step_grads, strict=True):
            p.grad = g.clone()  # the official L2 branch adds into p.grad in place
        for opt in officials:
            opt.step()

    ref_params = list(nets["official"].parameters())
    ref_state = [o.state[p] for o in officials for g in o.param_groups for p in g["params"]]
    for path in WITH_CAPTURABLE:
        params = list(nets[path].parameters())
        for i, (p, q) in enumerate(zip(params, ref_params, strict=True)):
            combo = combos[i // 2]
            assert _rel(p, q) <= 1e-5, (path, i, combo, _rel(p, q))
            state = ours[path].state[p]
            assert _rel(state["exp_avg"], ref_state[i]["exp_avg"]) <= 1e-5, (path, i, combo)
            assert _rel(state["exp_avg_var"], ref_state[i]["exp_avg_var"]) <= 1e-5, (path, i, combo)
            if combo[0]["amsgrad"]:
                assert _rel(state["max_exp_avg_var"], ref_state[i]["max_exp_avg_var"]) <= 1e-5
            assert state["step"].item() == ref_state[i]["step"] == STEPS
        # the parameters moved: a comparison of unchanged tensors would prove nothing
        moved = [_rel(p, q) for p, q in zip(params, init.parameters(), strict=True)]
        assert min(moved) > 1e-4, moved
    assert bool(getattr(ours["foreach"], "_flat_buckets", None)) is (run % 2 == 0)
    # the fused CPU kernel is called directly, its counters views of one tensor
    assert bool(getattr(ours["fused"], "_step_flats", None)) is _fused.cpu_kernel_available()
    # the three paths agree with each other more tightly than with the reference tolerance; the single
    # tensor and foreach paths run the official ops in the official order, so they agree exactly
    for p_single, p_foreach, p_fused in zip(*(nets[path].parameters() for path in PATHS), strict=True):
        assert torch.equal(p_single, p_foreach)
        assert _rel(p_fused, p_single) <= 1e-6
    # the capturable path computes the same scalars on the device (from an fp32 lr tensor)
    for p_single, p_cap in zip(nets["single"].parameters(), nets["capturable"].parameters(), strict=True):
        assert _rel(p_cap, p_single) <= 1e-6
    # and the reference path performs the official arithmetic: bit for bit
    for p_single, p_official in zip(nets["single"].parameters(), ref_params, strict=True):
        assert torch.equal(p_single, p_official)


def _bucket_run(shapes, steps, gen, skip=None, opts_kw=None):
    init = [torch.randn(s, generator=gen) for s in shapes]
    params = {path: [nn.Parameter(t.clone()) for t in init] for path in ("single", "foreach")}
    kw = dict(weight_decay=1e-2, amsgrad=True) | (opts_kw or {})
    opts = {path: AdaBelief(ps, **kw, **_path_kw(path)) for path, ps in params.items()}
    seen = []
    for t in range(steps):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for path, ps in params.items():
            for i, (p, g) in enumerate(zip(ps, grads, strict=True)):
                p.grad = None if skip and skip(i, t) else g
            opts[path].step()
        seen.append(0 in getattr(opts["foreach"], "_flat_buckets", {}))
    for p, q in zip(params["single"], params["foreach"], strict=True):
        assert torch.equal(p, q)
    return params, opts, seen


SMALL_AND_LARGE = [(3, 4), (7,), (2, 2, 3), (5,)] * 4 + [(600, 600)]  # 16 small tensors and one large


def test_flat_bucket_is_exact_through_membership_changes():
    """The foreach path's CPU bucket of small tensors equals the per-tensor path, also when a parameter
    has no gradient for a while (the bucket is rebuilt without it, and dropped once its step count
    differs from the others')."""
    gen = torch.Generator().manual_seed(0)
    _, _, seen = _bucket_run(SMALL_AND_LARGE, 12, gen, skip=lambda i, t: i == 3 and 3 <= t < 6)
    # bucketed from the start, rebuilt without parameter 3 while it has no gradient; from step 7 on it
    # is three steps behind the others: no shared count, so no bucket (the per-tensor path takes over)
    assert seen == [True] * 6 + [False] * 6


def test_flat_bucket_state_is_views_saved_once_and_reloads(tmp_path):
    gen = torch.Generator().manual_seed(1)
    params, opts, seen = _bucket_run(SMALL_AND_LARGE, 4, gen)
    assert all(seen)
    opt, ps = opts["foreach"], params["foreach"]
    m = opt.state[ps[0]]["exp_avg"]
    small_numel = sum(torch.Size(s).numel() for s in SMALL_AND_LARGE[:-1])
    assert m._base is not None and m._base.numel() == small_numel
    assert opt.state[ps[0]]["step"]._base is not None and opt.state[ps[0]]["step"].item() == 4
    torch.save(opt.state_dict(), tmp_path / "a.pt")
    n = sum(torch.Size(s).numel() for s in SMALL_AND_LARGE)
    assert (tmp_path / "a.pt").stat().st_size < 4 * 3 * n * 1.1  # three moments, each stored once
    # a copy of the parameters with the reloaded state follows the original exactly
    twins = [nn.Parameter(p.detach().clone()) for p in ps]
    reloaded = AdaBelief(twins, weight_decay=1e-2, amsgrad=True, foreach=True)
    reloaded.load_state_dict(torch.load(tmp_path / "a.pt"))
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in ps]
        for p, q, g in zip(ps, twins, grads, strict=True):
            p.grad, q.grad = g, g.clone()
        opt.step()
        reloaded.step()
    assert 0 in reloaded._flat_buckets
    for p, q in zip(ps, twins, strict=True):
        assert torch.equal(p, q)


def test_fused_parallel_loop_matches_single(monkeypatch):
    """The CPU kernel's OpenMP loop over (tensor, chunk) work items, with two threads and ragged chunks."""
    monkeypatch.setattr(_fused, "_CHUNK", 1000)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    shapes = [(3001,), (64, 70), (5,), (2000, 3)]
    params = {path: [nn.Parameter(torch.randn(s, generator=gen)) for s in shapes] for path in PATHS}
    for path in PATHS[1:]:
        for p, q in zip(params[path], params["single"], strict=True):
            p.data.copy_(q)
    opts = {
        path: AdaBelief(params[path], amsgrad=True, weight_decay=1e-2, **_path_kw(path)) for path in PATHS
    }
    for _ in range(8):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for path in PATHS:
            for p, g in zip(params[path], grads, strict=True):
                p.grad = g
            opts[path].step()
    for path in PATHS[1:]:
        for p, q in zip(params[path], params["single"], strict=True):
            assert _rel(p, q) <= 1e-6


def test_parity_detects_a_wrong_update(recorded):
    """The parity comparison can fail: a 0.1% different beta2 is caught."""
    init, grads = recorded
    a, b = copy.deepcopy(init), copy.deepcopy(init)
    ours = AdaBelief(a.parameters(), betas=(0.9, 0.998), foreach=True)
    ref = _quiet_official(b.parameters())
    for step_grads in grads[:50]:
        for p, q, g in zip(a.parameters(), b.parameters(), step_grads, strict=True):
            p.grad, q.grad = g, g.clone()
        ours.step()
        ref.step()
    assert max(_rel(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True)) > 1e-5


def _train(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[list[torch.Tensor]]):
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.to(p.dtype)
        opt.step()


@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_resume_gives_the_same_trajectory(path, recorded):
    init, grads = recorded
    kw = dict(weight_decay=1e-2, amsgrad=True, **_path_kw(path))
    straight = copy.deepcopy(init)
    opt = AdaBelief(straight.parameters(), **kw)
    _train(opt, list(straight.parameters()), grads[:60])

    first = copy.deepcopy(init)
    opt1 = AdaBelief(first.parameters(), **kw)
    _train(opt1, list(first.parameters()), grads[:30])
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "optim": opt1.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    resumed = copy.deepcopy(init)
    resumed.load_state_dict(ckpt["model"])
    opt2 = AdaBelief(resumed.parameters(), **kw)
    opt2.load_state_dict(ckpt["optim"])
    _train(opt2, list(resumed.parameters()), grads[30:60])
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_official_checkpoint_loads_and_continues(path, recorded):
    """An official state_dict (int steps, no per-group flags) loads; training continues as official would."""
    init, grads = recorded
    flags = dict(weight_decouple=False, rectify=True, degenerated_to_sgd=False, weight_decay=5e-3, eps=1e-8)
    a, b = copy.deepcopy(init), copy.deepcopy(init)
    ref = _quiet_official(b.parameters(), **flags)
    for step_grads in grads[:20]:
        for q, g in zip(b.parameters(), step_grads, strict=True):
            q.grad = g.clone()
        ref.step()
    a.load_state_dict(b.state_dict())
    saved = ref.state_dict()
    assert isinstance(saved["state"][0]["step"], int) and "rectify" not in saved["param_groups"][0]
    ours = AdaBelief(a.parameters(), **flags, **_path_kw(path))
    ours.load_state_dict(saved)
    group = ours.param_groups[0]
    assert group["weight_decouple"] is False and group["degenerated_to_sgd"] is False
    assert "buffer" not in group
    step = ours.state[next(iter(a.parameters()))]["step"]
    assert isinstance(step, torch.Tensor) and step.device.type == "cpu" and step.item() == 20
    assert step.dtype == torch.float32 and step.dim() == 0
    for step_grads in grads[20:120]:
        for p, q, g in zip(a.parameters(), b.parameters(), step_grads, strict=True):
            p.grad, q.grad = g, g.clone()
        ours.step()
        ref.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert _rel(p, q) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_half_precision_keeps_fp32_state(dtype, path, recorded):
    init, grads = recorded
    net = copy.deepcopy(init).to(dtype)
    params = list(net.parameters())
    opt = AdaBelief(params, lr=1e-2, weight_decay=1e-2, amsgrad=True, **_path_kw(path))
    _train(opt, params, grads[:20])
    for p in params:
        assert p.dtype == dtype
        st = opt.state[p]
        for key in ("exp_avg", "exp_avg_var", "max_exp_avg_var"):
            assert st[key].dtype == torch.float32, key
    # a state_dict round trip keeps fp32 state, exactly (torch would cast it to the parameter dtype)
    sd = copy.deepcopy(opt.state_dict())
    opt2 = AdaBelief(params, lr=1e-2, weight_decay=1e-2, amsgrad=True, **_path_kw(path))
    opt2.load_state_dict(sd)
    for i, p in enumerate(params):
        for key in ("exp_avg", "exp_avg_var", "max_exp_avg_var"):
            assert opt2.state[p][key].dtype == torch.float32
            assert torch.equal(opt2.state[p][key], sd["state"][i][key])

    if dtype == torch.float16:
        # the official release upcasts fp16 to fp32 for the update and state too: the results agree
        ref_net = copy.deepcopy(init).to(dtype)
        ref = _quiet_official(list(ref_net.parameters()), lr=1e-2, weight_decay=1e-2, amsgrad=True)
        ours_net = copy.deepcopy(init).to(dtype)
        ours = AdaBelief(list(ours_net.parameters()), lr=1e-2, weight_decay=1e-2, amsgrad=True)
        for step_grads in grads[:20]:
            for p, q, g in zip(ours_net.parameters(), ref_net.parameters(), step_grads, strict=True):
                p.grad, q.grad = g.to(dtype), g.to(dtype)
            ours.step()
            ref.step()
        for p, q in zip(ours_net.parameters(), ref_net.parameters(), strict=True):
            assert _rel(p, q) <= 1e-3  # fp16 rounding of the parameter itself


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_paths_agree_on_other_dtypes(dtype, recorded):
    init, grads = recorded
    nets = {path: copy.deepcopy(init).to(dtype) for path in PATHS}
    for path, net in nets.items():
        _train(AdaBelief(net.parameters(), lr=1e-2, **_path_kw(path)), list(net.parameters()), grads[:30])
    tol = 0.0 if dtype == torch.float64 else 1e-2
    for ps in zip(*(net.parameters() for net in nets.values()), strict=True):
        assert _rel(ps[1], ps[0]) <= tol  # single vs foreach: same ops
        assert _rel(ps[2], ps[0]) <= max(tol, 1e-12)


@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_maximize_equals_negated_gradients(path, recorded):
    init, grads = recorded
    a, b = copy.deepcopy(init), copy.deepcopy(init)
    oa = AdaBelief(a.parameters(), maximize=True, weight_decay=1e-2, weight_decouple=False, **_path_kw(path))
    ob = AdaBelief(b.parameters(), weight_decay=1e-2, weight_decouple=False, **_path_kw(path))
    for step_grads in grads[:20]:
        for p, q, g in zip(a.parameters(), b.parameters(), step_grads, strict=True):
            p.grad, q.grad = g, -g
        oa.step()
        ob.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_l2_decay_leaves_grad_untouched(path):
    p = nn.Parameter(torch.randn(10))
    g = torch.randn(10)
    p.grad = g.clone()
    opt = AdaBelief([p], weight_decay=0.1, weight_decouple=False, **_path_kw(path))
    opt.step()
    assert torch.equal(p.grad, g)


def test_sparse_gradients_raise_a_clear_error():
    emb = nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    opt = AdaBelief(emb.parameters())
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()


@pytest.mark.parametrize("path", WITH_CAPTURABLE)
def test_closure(path):
    torch.manual_seed(0)
    lin = nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    opt = AdaBelief(lin.parameters(), lr=0.1, **_path_kw(path))
    calls = []

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(lin(x), y)
        loss.backward()
        calls.append(loss.item())
        return loss

    first = opt.step(closure)
    assert len(calls) == 1 and first.item() == calls[0]
    for _ in range(50):
        last = opt.step(closure)
    assert last.item() < first.item()


def test_no_printing_and_validation(capsys):
    p = [nn.Parameter(torch.randn(2))]
    AdaBelief(p, amsgrad=True, rectify=True, weight_decouple=True, fixed_decay=True)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="foreach and fused"):
        AdaBelief(p, foreach=True, fused=True)
    with pytest.raises(ValueError, match="learning rate"):
        AdaBelief(p, lr=-1.0)
    with pytest.raises(ValueError, match="beta"):
        AdaBelief(p, betas=(0.9, 1.0))


def test_state_layout_and_per_group_flags():
    a, b = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
    opt = AdaBelief([{"params": [a], "rectify": False}, {"params": [b], "amsgrad": True}], fixed_decay=True)
    assert opt.param_groups[0]["rectify"] is False and opt.param_groups[1]["rectify"] is True
    assert opt.param_groups[0]["fixed_decay"] is True
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    opt.step()
    assert set(opt.state[a]) == {"step", "exp_avg", "exp_avg_var"}
    assert set(opt.state[b]) == {"step", "exp_avg", "exp_avg_var", "max_exp_avg_var"}
    step = opt.state[a]["step"]
    assert step.dtype == torch.float32 and step.device.type == "cpu" and step.item() == 1


def test_added_group_with_other_betas_is_independent():
    """The official release would reuse the first group's rectification buffer for a group added later."""
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(4)), nn.Parameter(torch.randn(4))
    c = nn.Parameter(b.detach().clone())
    opt = AdaBelief([a])
    opt.add_param_group({"params": [b], "betas": (0.5, 0.6)})
    alone = AdaBelief([c], betas=(0.5, 0.6))
    for _ in range(10):
        g = torch.randn(4)
        a.grad, b.grad, c.grad = torch.randn(4), g, g.clone()
        opt.step()
        alone.step()
    assert torch.equal(b, c)


def test_default_path_and_fused_without_compiler(monkeypatch):
    assert ab.default_path("cpu") == ("fused" if _fused.cpu_kernel_available() else "foreach")
    assert ab.default_path("cuda") == "foreach"  # until the Triton kernel has passed on a GPU
    # no compiler: fused=True explains, the default falls back to foreach
    monkeypatch.setattr(_fused, "_lib", None)
    monkeypatch.setattr(_fused, "_lib_error", None)
    monkeypatch.setattr(_fused, "_compiler", lambda: None)
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    with pytest.raises(_fused.FusedUnavailableError, match="C\\+\\+ compiler"):
        AdaBelief([p], fused=True).step()
    assert ab.default_path("cpu") == "foreach"
    # the default falls back to foreach: the same update as an explicit foreach=True, bit for bit
    q = nn.Parameter(p.detach().clone())
    q.grad = p.grad.clone()
    before = p.detach().clone()
    AdaBelief([p]).step()
    AdaBelief([q], foreach=True).step()
    assert not torch.equal(p.detach(), before) and torch.equal(p.detach(), q.detach())


def test_cuda_path_choice_while_the_triton_kernel_is_unverified(monkeypatch):
    """The path choice for a CUDA device, checked without a GPU: foreach by default (capturable: the
    capturable foreach ops); fused=True still selects the Triton kernel, with one one-line warning per
    process; CPU defaults unchanged; once the kernel is marked verified the default is the kernel again."""
    import warnings

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(_fused, "triton_available", lambda: True)  # as on a CUDA machine
    monkeypatch.setattr(_fused, "_unverified_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ab.choose_path(cuda, foreach=None, fused=None, capturable=False) == "foreach"
        assert ab.choose_path(cuda, foreach=None, fused=None, capturable=True) == "capturable"
        assert ab.choose_path(cuda, foreach=True, fused=None, capturable=False) == "foreach"
        assert not caught
        assert ab.choose_path(cuda, foreach=None, fused=True, capturable=False) == "fused"
        assert ab.choose_path(cuda, foreach=False, fused=True, capturable=True) == "capturable-fused"
    assert [w.category for w in caught] == [_fused.UnverifiedKernelWarning]  # once, not per call
    w = caught[0]
    text = warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
    assert text.count("\n") == 1 and "unverified" in text and "gpu_check.sh" in text, text
    cpu_default = "fused" if _fused.cpu_kernel_available() else "foreach"
    assert ab.choose_path(cpu, foreach=None, fused=None, capturable=False) == cpu_default
    assert ab.choose_path(cpu, foreach=None, fused=True, capturable=True) == "fused"  # host counters on CPU
    monkeypatch.setattr(_fused, "CUDA_KERNEL_VERIFIED", True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ab.choose_path(cuda, foreach=None, fused=None, capturable=False) == "fused"
        assert ab.choose_path(cuda, foreach=None, fused=None, capturable=True) == "capturable-fused"
    assert not caught


def test_unwritable_kernel_cache_falls_back(monkeypatch, tmp_path):
    """A cache directory that cannot be created: the default path uses foreach, fused=True explains."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(blocker / "sub"))
    monkeypatch.setattr(_fused, "_lib", None)
    monkeypatch.setattr(_fused, "_lib_error", None)
    assert ab.default_path("cpu") == "foreach"
    p = nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    with pytest.raises(_fused.FusedUnavailableError, match="use foreach=True"):
        AdaBelief([p], fused=True).step()


def test_parameters_added_later_take_their_own_step_count():
    """A parameter joining a group later has a smaller step: every path uses its own bias correction."""
    results = {}
    for path in WITH_CAPTURABLE:
        torch.manual_seed(0)
        a, b = nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(5))
        opt = AdaBelief([a, b], **_path_kw(path))
        gen = torch.Generator().manual_seed(1)
        for t in range(12):
            a.grad = torch.randn(5, generator=gen)
            b.grad = torch.randn(5, generator=gen) if t >= 7 else None
            opt.step()
        assert opt.state[a]["step"].item() == 12 and opt.state[b]["step"].item() == 5
        results[path] = (a.detach().clone(), b.detach().clone())
    for path in ("foreach", "fused", "capturable"):
        for x, y in zip(results[path], results["single"], strict=True):
            assert _rel(x, y) <= 1e-6


@pytest.mark.parametrize("rectify", [True, False])
def test_capturable_follows_a_scheduler_through_a_tensor_lr(rectify, recorded):
    """torch's LR schedulers fill a Tensor lr in place; the capturable step reads it on the device.

    The same LambdaLR drives a float lr on the reference path: the trajectories agree, the lr tensor is
    the same object throughout (a captured graph keeps reading it), and the state keeps fp32 counters.
    """
    init, grads = recorded
    nets = {path: copy.deepcopy(init) for path in ("single", "capturable")}
    opts, scheds = {}, {}
    for path, net in nets.items():
        opts[path] = AdaBelief(
            net.parameters(), lr=_lr(path, 1e-2), weight_decay=1e-2, rectify=rectify, **_path_kw(path)
        )
        scheds[path] = torch.optim.lr_scheduler.LambdaLR(opts[path], lambda i: 0.5 ** (i // 10))
    lr_tensor = opts["capturable"].param_groups[0]["lr"]
    for step_grads in grads[:40]:
        for path, net in nets.items():
            for p, g in zip(net.parameters(), step_grads, strict=True):
                p.grad = g
            opts[path].step()
            scheds[path].step()
    assert opts["capturable"].param_groups[0]["lr"] is lr_tensor
    assert lr_tensor.item() == pytest.approx(1e-2 * 0.5**4)
    for p, q in zip(nets["single"].parameters(), nets["capturable"].parameters(), strict=True):
        assert _rel(q, p) <= 1e-6
        assert opts["capturable"].state[q]["step"].item() == 40


def test_device_coefficients_match_the_host_rectification():
    """Device scalars equal the host ones to float64 rounding (torch's pow vs libm's differ by ~1 ulp)."""
    from adacli.optim._math import Hyper, device_coefficients

    steps = [torch.tensor(float(t)) for t in range(1, 40)]
    for degenerated in (True, False):
        hyper = Hyper(
            lr=torch.tensor(3e-3, dtype=torch.float64), beta1=0.9, beta2=0.99, weight_decay=1e-2,
            weight_decouple=True, fixed_decay=False, rectify=True, degenerated_to_sgd=degenerated,
        )  # fmt: skip
        coefs = device_coefficients(steps, hyper, dtype=torch.float64)
        for j, t in enumerate(range(1, 40)):
            kind, size = ab.rectification(t, 0.9, 0.99, degenerated)
            adaptive = -size * 3e-3 if kind == "adaptive" else 0.0
            sgd = -size * 3e-3 if kind == "sgd" else 0.0
            assert coefs[0, j].item() == 1.0 - 3e-3 * 1e-2
            assert coefs[1, j].item() == pytest.approx(adaptive, rel=1e-14, abs=0)
            assert coefs[2, j].item() == pytest.approx(sgd, rel=1e-14, abs=0)
            assert coefs[3, j].item() == pytest.approx(math.sqrt(1 - 0.99**t), rel=1e-14)
        kinds = {ab.rectification(t, 0.9, 0.99, degenerated)[0] for t in range(1, 40)}
        assert kinds == ({"sgd", "adaptive"} if degenerated else {"none", "adaptive"})


def test_capturable_state_and_checkpoint_round_trip():
    """Counters live on the parameters' device (CPU here), survive a state_dict round trip, and a
    checkpoint of the non-capturable optimizer loads into a capturable one (and back)."""
    p = nn.Parameter(torch.randn(5))
    opt = AdaBelief([p], capturable=True, lr=torch.tensor(1e-2))
    assert opt.param_groups[0]["capturable"] is True
    p.grad = torch.randn(5)
    opt.step()
    step = opt.state[p]["step"]
    assert step.device == p.device and step.dtype == torch.float32 and step.item() == 1
    plain = AdaBelief([p])
    plain.load_state_dict(opt.state_dict())
    assert plain.param_groups[0]["capturable"] is True  # the saved group's flag wins, as in torch
    with pytest.raises(ValueError, match="one element"):
        AdaBelief([p], lr=torch.tensor([1e-3, 1e-3]))


# --- CUDA (skipped without a GPU) ------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("path", [*WITH_CAPTURABLE, "capturable-fused"])
def test_cuda_parity_and_no_host_sync(path, recorded):
    init, grads = recorded
    combos = RUNS[5]
    dev_net = copy.deepcopy(init).cuda()
    ref_net = copy.deepcopy(init)
    cap = path.startswith("capturable")
    groups = [
        {"params": ps, **GROUP_HYPER[g], **combos[g][0], "eps": combos[g][1]}
        | ({"lr": torch.tensor(GROUP_HYPER[g]["lr"], device="cuda")} if cap else {})
        for g, ps in enumerate(_group_params(dev_net))
    ]
    ours = AdaBelief(groups, **_path_kw(path))
    refs = [
        _quiet_official(ps, **GROUP_HYPER[g], **combos[g][0], eps=combos[g][1])
        for g, ps in enumerate(_group_params(ref_net))
    ]
    cuda_grads = [[g.cuda() for g in step_grads] for step_grads in grads]
    torch.cuda.synchronize()
    for t, step_grads in enumerate(grads):
        for p, g in zip(dev_net.parameters(), cuda_grads[t], strict=True):
            p.grad = g
        for q, g in zip(ref_net.parameters(), step_grads, strict=True):
            q.grad = g.clone()
        torch.cuda.set_sync_debug_mode("error")
        try:
            ours.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        for r in refs:
            r.step()
    for p, q in zip(dev_net.parameters(), ref_net.parameters(), strict=True):
        assert _rel(p.cpu(), q) <= 1e-5


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("fused", [False, True])
def test_cuda_graph_of_capturable_steps_follows_the_official(fused, recorded):
    """optimizer.step() captured once and replayed 200 times with a scheduler driving a device lr: the
    official optimizer, stepped eagerly under the same schedule, ends at the same weights; the fused
    path's address table is built once (before the capture) and reused by every replay."""
    init, grads = recorded
    combos = RUNS[9]
    net, ref_net = copy.deepcopy(init).cuda(), copy.deepcopy(init)
    groups = [
        {"params": ps, **GROUP_HYPER[g], **combos[g][0], "eps": combos[g][1]}
        | {"lr": torch.tensor(GROUP_HYPER[g]["lr"], device="cuda")}
        for g, ps in enumerate(_group_params(net))
    ]
    opt = AdaBelief(groups, capturable=True, fused=fused, foreach=not fused)
    refs = [
        _quiet_official(ps, **GROUP_HYPER[g], **combos[g][0], eps=combos[g][1])
        for g, ps in enumerate(_group_params(ref_net))
    ]
    params = list(net.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    saved = [p.detach().clone() for p in params]
    opt.step()  # warm-up: Triton's JIT and the address table, then back to the initial state
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
        for st in opt.state.values():
            for v in st.values():
                v.zero_()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()

    def factor(i: int) -> float:
        return 0.5 ** (i // 50)

    scheds = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (opt, *refs)]
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad.copy_(g)
        graph.replay()
        for q, g in zip(ref_net.parameters(), step_grads, strict=True):
            q.grad = g.clone()
        for r in refs:
            r.step()
        for sch in scheds:
            sch.step()
    for p, q in zip(params, ref_net.parameters(), strict=True):
        assert _rel(p.cpu(), q) <= 1e-5
    assert opt.state[params[0]]["step"].item() == STEPS
    if fused:
        assert opt._fused_cache["triton_tables"].builds == 1


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_paths_agree(dtype, recorded):
    init, grads = recorded
    nets = {path: copy.deepcopy(init).cuda().to(dtype) for path in PATHS}
    for path, net in nets.items():
        opt = AdaBelief(net.parameters(), lr=1e-2, amsgrad=True, **_path_kw(path))
        _train(opt, list(net.parameters()), [[g.cuda() for g in gs] for gs in grads[:30]])
        assert all(opt.state[p]["exp_avg"].dtype == torch.float32 for p in net.parameters())
    for ps in zip(*(net.parameters() for net in nets.values()), strict=True):
        assert _rel(ps[1], ps[0]) <= 1e-2 and _rel(ps[2], ps[0]) <= 1e-2


def test_flat_layout_rule():
    """Which tensors the fused kernels may walk as flat memory (the rest go through copies or foreach)."""
    cl = torch.channels_last
    w = torch.randn(8, 4, 3, 3).to(memory_format=cl)
    assert _fused.flat_layout([w, torch.zeros_like(w), torch.zeros_like(w)])  # preserve_format keeps it
    assert _fused.flat_layout([torch.randn(5, 3), torch.randn(5, 3)])
    assert not _fused.flat_layout([w, torch.randn(8, 4, 3, 3)])  # same shape, other layout
    assert not _fused.flat_layout([torch.randn(3, 5).t(), torch.randn(3, 5).t()])  # not dense
    one = torch.randn(8, 4, 1, 1)
    assert _fused.flat_layout([one.to(memory_format=cl), one.contiguous()])  # size-1 strides carry no layout


@pytest.mark.parametrize(
    "device",
    [
        pytest.param(
            "cpu",
            marks=pytest.mark.skipif(not _fused.cpu_kernel_available(), reason="no C++ compiler"),
        ),
        pytest.param(
            "cuda",
            marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")],
        ),
    ],
)
def test_fused_on_a_channels_last_model(device):
    """A channels_last model (recipe model.channels_last) trains on the fused path like on the reference
    (on CUDA its conv weights go to the Triton kernel as flat memory, not to a fallback)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    net = net.to(device).to(memory_format=torch.channels_last)
    nets = {path: copy.deepcopy(net) for path in ("single", "fused")}
    opts = {
        "single": AdaBelief(nets["single"].parameters(), lr=1e-2, weight_decay=1e-2, foreach=False),
        "fused": AdaBelief(nets["fused"].parameters(), lr=1e-2, weight_decay=1e-2, fused=True),
    }
    for _ in range(5):
        x = torch.randn(4, 3, 8, 8, device=device).to(memory_format=torch.channels_last)
        for path, n in nets.items():
            opts[path].zero_grad()
            n(x).square().mean().backward()
            opts[path].step()
    for a, b in zip(nets["single"].parameters(), nets["fused"].parameters(), strict=True):
        assert a.is_contiguous() == b.is_contiguous()  # the layout survives the fused update
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# --- flags changed between steps (as torch's optimizer tests change a param group's settings) -------------

# (flags the groups start with, flags set after steps 4 and 12; restored after step 8)
TOGGLES = {
    "amsgrad on": ({}, {"amsgrad": True}),
    "amsgrad off": ({"amsgrad": True}, {"amsgrad": False}),
    "rectify off": ({"amsgrad": True}, {"rectify": False}),
    "l2 decay": ({"weight_decay": 1e-2}, {"weight_decouple": False}),
    "maximize, no sgd warm-up": ({}, {"maximize": True, "degenerated_to_sgd": False}),
    "betas, eps, lr": ({}, {"betas": (0.8, 0.99), "eps": 1e-8, "lr": 3e-3}),
}
# 16 small tensors (the foreach path's flat bucket) and one large (chunked foreach ops)
TOGGLE_SHAPES = [(3, 4), (7,), (2, 2, 3), (5,)] * 4 + [(300, 300)]


def _toggled_run(path: str, device: str, start: dict, toggle: dict) -> tuple[list, AdaBelief]:
    gen = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(s, generator=gen).to(device)) for s in TOGGLE_SHAPES]
    base = dict(lr=1e-2) | start
    opt = AdaBelief(params, **base | {"lr": _lr(path, base["lr"])}, **_path_kw(path))
    restore = {k: opt.param_groups[0][k] for k in toggle}
    for t in range(16):
        if t in (4, 8, 12):
            new = toggle if t != 8 else restore
            as_set = {"lr": _lr(path, new["lr"])} if "lr" in new and t != 8 else {}  # restored: as it was
            opt.param_groups[0].update(new | as_set)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(device)
        opt.step()
    return params, opt


@pytest.mark.parametrize("path", WITH_CAPTURABLE[1:])
@pytest.mark.parametrize("toggle", list(TOGGLES))
def test_flags_changed_between_steps_follow_the_reference(path, toggle):
    """A param group's flags changed between steps (amsgrad turned on after some steps, then off and on
    again, and the other flags) give every path the reference path's trajectory and state: the foreach
    path's bucket of small tensors takes the new state keys, the fused kernel and the capturable path too.
    Turning amsgrad on starts its maximum from zero at that step, as a fresh state would."""
    start, flags = TOGGLES[toggle]
    ref, ref_opt = _toggled_run("single", "cpu", start, flags)
    ours, opt = _toggled_run(path, "cpu", start, flags)
    if path == "foreach":
        assert 0 in opt._flat_buckets  # the small tensors went through the bucket

    def agree(a: torch.Tensor, b: torch.Tensor) -> bool:  # foreach: the reference ops, bit for bit
        return torch.equal(a, b) if path == "foreach" else _rel(a, b) <= 1e-6

    for i, (p, q) in enumerate(zip(ours, ref, strict=True)):
        state, ref_state = opt.state[p], ref_opt.state[q]
        assert state.keys() == ref_state.keys(), (i, state.keys(), ref_state.keys())
        for key in ("exp_avg", "exp_avg_var", "max_exp_avg_var"):
            if key in state:
                assert agree(state[key], ref_state[key]), (path, i, key)
        assert agree(p, q), (path, i)
    ever_amsgrad = bool(start.get("amsgrad") or flags.get("amsgrad"))
    assert ("max_exp_avg_var" in opt.state[ours[0]]) is ever_amsgrad


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("path", WITH_CAPTURABLE[1:])
def test_cuda_amsgrad_turned_on_between_steps(path):
    """The same on CUDA (the Triton kernel's address table must take the new maximum's addresses)."""
    start, flags = TOGGLES["amsgrad on"]
    ref, _ = _toggled_run("single", "cpu", start, flags)
    ours, _ = _toggled_run(path, "cuda", start, flags)
    for p, q in zip(ours, ref, strict=True):
        assert _rel(p.cpu(), q) <= 1e-5


def test_complex_parameters_are_refused_with_the_reason():
    """The official release steps complex parameters with a complex 'variance' (g - m)²: refused here."""
    p = nn.Parameter(torch.randn(3, dtype=torch.complex64))
    p.grad = torch.randn(3, dtype=torch.complex64)
    for path in WITH_CAPTURABLE:
        opt = AdaBelief([p], lr=_lr(path, 1e-3), **_path_kw(path))
        with pytest.raises(RuntimeError, match=r"complex parameters.*view_as_complex"):
            opt.step()
