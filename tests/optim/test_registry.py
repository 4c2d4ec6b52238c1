"""Optimizer registry: names resolve to the right class with every default filled in; typos are errors."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from adacli.errors import InputError
from adacli.optim.registry import optimizer_names, resolve_optimizer
from adacli.recipe import OptimizerSpec, assign_labels


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]


def test_adabelief_is_ours_with_defaults():
    r = resolve_optimizer("adabelief")
    assert r.source == "adacli"
    assert r.qualname == "adacli.optim.adabelief.AdaBelief"
    assert r.hparams["eps"] == 1e-16 and r.hparams["lr"] == 1e-3
    assert r.hparams["rectify"] is True and r.hparams["weight_decouple"] is True
    opt = r.build(_params())
    assert type(opt).__name__ == "AdaBelief"


def test_torch_name_fills_defaults_and_coerces_yaml_lists():
    r = resolve_optimizer("Adam", {"lr": 0.01, "betas": [0.8, 0.99]})
    assert r.source == "torch" and r.cls is torch.optim.Adam
    assert r.hparams["eps"] == 1e-8 and r.hparams["amsgrad"] is False and r.hparams["lr"] == 0.01
    assert r.hparams["betas"] == (0.8, 0.99)
    json.dumps(r.hparams)  # results.json must be able to store them
    opt = r.build(_params())
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.8, 0.99)


def test_sgd_plain_is_torch_timm_prefix_is_timm():
    plain = resolve_optimizer("sgd", {"lr": 0.1, "momentum": 0.9})
    assert plain.source == "torch" and plain.hparams["nesterov"] is False
    t = resolve_optimizer("timm:sgd", {"lr": 0.1})
    assert t.source == "timm" and t.hparams["nesterov"] is True and t.hparams["momentum"] == 0.9
    opt = t.build(_params())
    assert opt.defaults["nesterov"] is True and opt.defaults["momentum"] == 0.9


def test_timm_adabelief_and_timm_only_names():
    r = resolve_optimizer("timm:adabelief")
    assert r.source == "timm" and r.qualname == "timm.optim.adabelief.AdaBelief"
    assert r.hparams["rectify"] is False  # timm's per-name default, recorded
    lamb = resolve_optimizer("lamb", {"weight_decay": 0.01})
    assert lamb.source == "timm" and lamb.hparams["weight_decay"] == 0.01
    params = _params()
    opt = lamb.build(params)
    # weight decay applies to every parameter (plain list: timm does not split bias/norm out)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.01
    la = resolve_optimizer("timm:lookahead_adam").build(_params())
    assert type(la).__name__ == "Lookahead"


def test_timm_rejects_what_its_factory_would_drop():
    with pytest.raises(InputError, match="eps"):
        resolve_optimizer("timm:lion", {"eps": 1e-8})


def test_built_optimizers_step():
    for name in ["adabelief", "adamw", "rmsprop", "timm:adabelief", "lion"]:
        p = torch.nn.Parameter(torch.ones(3))
        opt = resolve_optimizer(name).build([p])
        p.grad = torch.ones(3)
        opt.step()
        assert not torch.equal(p.detach(), torch.ones(3)), name


def test_unknown_name_suggests():
    with pytest.raises(InputError) as e:
        resolve_optimizer("adabelif")
    assert e.value.suggestion == "adabelief"
    with pytest.raises(InputError) as e:
        resolve_optimizer("timm:adabelif")
    assert e.value.suggestion == "timm:adabelief"
    for typo, meant in [("adma", "adam"), ("sdg", "sgd"), ("rmsprob", "rmsprop"), ("lamd", "lamb")]:
        with pytest.raises(InputError) as e:
            resolve_optimizer(typo)
        assert e.value.suggestion == meant, typo


def test_unknown_hparam_lists_allowed():
    with pytest.raises(InputError) as e:
        resolve_optimizer("adam", {"weight_decy": 0.1})
    assert "weight_decay" in e.value.allowed and e.value.suggestion == "weight_decay"
    assert "weight_decy" in str(e.value)


def test_bad_value_at_build_is_input_error():
    with pytest.raises(InputError, match="learning rate"):
        resolve_optimizer("adam", {"lr": -1.0}).build(_params())


def test_unsupported_torch_optimizers_say_why():
    with pytest.raises(InputError, match="closure"):
        resolve_optimizer("lbfgs")
    with pytest.raises(InputError, match="2-D"):
        resolve_optimizer("muon")
    with pytest.raises(InputError, match="second-order"):
        resolve_optimizer("adahessian")
    assert "lbfgs" not in optimizer_names()["torch"]


def test_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_opt_pkg.py").write_text(
        textwrap.dedent("""
        import torch

        class MyOpt(torch.optim.SGD):
            def __init__(self, params, lr=0.5, bonus=2):
                super().__init__(params, lr=lr)
                self.bonus = bonus
    """)
    )
    (tmp_path / "broken_opt_pkg.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = resolve_optimizer("my_opt_pkg:MyOpt", {"bonus": 3})
    assert r.source == "import" and r.qualname == "my_opt_pkg.MyOpt"
    assert r.hparams == {"lr": 0.5, "bonus": 3}
    assert r.build(_params()).bonus == 3
    with pytest.raises(InputError, match="does not import"):
        resolve_optimizer("broken_opt_pkg:X")
    with pytest.raises(InputError, match="does not import"):
        resolve_optimizer("no_such_pkg_xyz.mod:Opt")
    with pytest.raises(InputError) as e:
        resolve_optimizer("my_opt_pkg:MyOpp")
    assert e.value.suggestion == "MyOpt"
    with pytest.raises(InputError, match=r"not a torch\.optim\.Optimizer"):
        resolve_optimizer("json:dumps")
    sys.modules.pop("my_opt_pkg", None)


def test_names_by_source():
    names = optimizer_names()
    assert names["adacli"] == ["adabelief"]
    assert {"adam", "adamw", "sgd", "rmsprop"} <= set(names["torch"])
    assert {"lamb", "lion", "adabelief"} <= set(names["timm"])


def _spec(**kw) -> OptimizerSpec:
    return OptimizerSpec(**kw)


def test_assign_labels():
    specs = [
        _spec(name="adam", lr=1e-3),
        _spec(name="adam", lr=1e-2),
        _spec(name="sgd", lr=0.1, momentum=0.9, label="sgd-m"),
        _spec(name="sgd", lr=0.1),
        _spec(name="adabelief"),
    ]
    assert assign_labels(specs) == ["adam(lr=0.001)", "adam(lr=0.01)", "sgd-m", "sgd", "adabelief"]
    # identical entries still get unique labels; a derived label never takes an explicit one
    same = [_spec(name="adam"), _spec(name="adam"), _spec(name="sgd", label="adam")]
    labels = assign_labels(same)
    assert len(set(labels)) == 3 and labels[2] == "adam"
    with pytest.raises(InputError, match="unique"):
        assign_labels([_spec(name="adam", label="x"), _spec(name="sgd", label="x")])


def test_import_path_from_the_current_directory(tmp_path, monkeypatch):
    """The console script's sys.path lacks the working directory; a user's module there still imports."""
    (tmp_path / "cwd_opt_mod.py").write_text("import torch\n\nclass CwdSGD(torch.optim.SGD):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    r = resolve_optimizer("cwd_opt_mod:CwdSGD", {"lr": 0.1})
    assert r.qualname == "cwd_opt_mod.CwdSGD" and r.hparams["lr"] == 0.1
    sys.modules.pop("cwd_opt_mod", None)


# --- pytorch-optimizer (po:NAME): the AdaBelief paper's optimizer set --------------------------------

PAPER_PO = ["po:radam", "po:adabound", "po:yogi", "po:msvag", "po:fromage"]


@pytest.mark.parametrize("name", PAPER_PO)
def test_paper_optimizers_resolve_build_and_step(name):
    r = resolve_optimizer(name, {"lr": 1e-3})
    assert r.source == "pytorch_optimizer"
    assert r.cls.__module__.startswith("pytorch_optimizer")
    assert r.hparams["lr"] == 1e-3 and len(r.hparams) > 1  # defaults recorded, not only what was given
    p = torch.nn.Parameter(torch.ones(3))
    opt = r.build([p])
    for _ in range(8):  # RAdam holds still while its variance estimate is short (the first ~5 steps)
        p.grad = torch.ones(3)
        opt.step()
    assert not torch.equal(p.detach(), torch.ones(3))


def test_po_rejects_unknown_hyperparameter_and_name():
    # its classes swallow **kwargs: the registry must still reject a typo
    with pytest.raises(InputError, match="unknown hyperparameter 'final_lrr'") as e:
        resolve_optimizer("po:adabound", {"final_lrr": 0.1})
    assert e.value.suggestion == "final_lr"
    with pytest.raises(InputError, match="unknown pytorch-optimizer optimizer") as e:
        resolve_optimizer("po:adabund")
    assert e.value.suggestion == "po:adabound"


def test_po_listed_and_missing_extra_is_a_clear_input_error(monkeypatch):
    assert {"adabound", "yogi", "msvag", "fromage", "radam"} <= set(optimizer_names()["pytorch_optimizer"])
    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)  # as if the extra were not installed
    with pytest.raises(InputError, match=r"adacli\[optimizers\]"):
        resolve_optimizer("po:yogi")
    assert optimizer_names()["pytorch_optimizer"] == []


def test_list_optimizers_shows_the_po_names():
    from typer.testing import CliRunner

    from adacli.cli import app

    r = CliRunner().invoke(app, ["list", "optimizers"])
    assert r.exit_code == 0
    for name in ("po:adabound", "po:yogi", "po:msvag", "po:fromage", "po:radam"):
        assert name in r.output
    assert "pytorch_optimizer.optimizer.adabound.AdaBound" in r.output


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("import_exits:Opt", "import_exits raised SystemExit(0); it printed: 'loading my optimizer'"),
        ("import_parses_argv:Opt", "importing import_parses_argv raised SystemExit(2); it printed: 'usage:"),
        ("import_interrupts:Opt", "importing import_interrupts raised KeyboardInterrupt"),
    ],
)
def test_user_module_that_exits_or_interrupts_at_import_is_one_input_error(name, words, capsys):
    """sys.exit(0) at import ended adacli with exit 0, no output and no folder; argparse at import printed
    its usage as if it were adacli's. Now: one InputError quoting what the module printed."""
    with pytest.raises(InputError) as e:
        resolve_optimizer(name, {"lr": 0.1})
    assert words in str(e.value) and e.value.exit_code == 2, str(e.value)
    assert capsys.readouterr().out == ""  # nothing the module printed reached stdout


def test_user_module_output_at_import_goes_to_stderr(capsys):
    sys.modules.pop("import_chatty", None)
    r = resolve_optimizer("import_chatty:Opt", {"lr": 0.1})
    assert r.source == "import"
    captured = capsys.readouterr()
    assert captured.out == "" and "chatty module loaded" in captured.err


@pytest.mark.parametrize(
    ("name", "words"),
    [("torch.optim:LBFGS", "requires a closure"), ("torch.optim:SparseAdam", "sparse gradients")],
)
def test_closure_and_sparse_optimizers_by_import_path_are_refused_with_the_reason(name, words):
    """Named by import path they passed the preflight and failed in the first trial (exit 1)."""
    with pytest.raises(InputError) as e:
        resolve_optimizer(name)
    assert "cannot run in a trial" in str(e.value) and words in str(e.value)
