"""Optimizer registry: every name a recipe may use, resolved to a class and a full set of hyperparameters.

Why a registry: a comparison is only trustworthy when the results say exactly which class ran with
exactly which hyperparameters, defaults included (``torch.optim.Adam``'s eps is 1e-8, AdaBelief's is
1e-16: "same defaults" is not a thing). So every name is resolved up front to a class plus every
hyperparameter of its constructor, and typos (unknown names or hyperparameters) are errors, not silently
ignored keyword arguments.

Naming scheme (first match wins):

1. ``adabelief``: adacli's own :class:`adacli.optim.AdaBelief` (source ``"adacli"``).
2. A ``torch.optim`` optimizer by its lowercase class name: ``adam``, ``adamw``, ``sgd``, ``rmsprop``,
   ``nadam``, ``radam``, ``adagrad``, ``adadelta``, ``adamax``, ``asgd``, ``rprop``, ``adafactor``,
   (source ``"torch"``). ``lbfgs``, ``sparseadam`` and ``muon`` are rejected with the reason: LBFGS needs a
   closure per step, SparseAdam sparse gradients, Muon 2-D parameters only, and a trial takes one plain
   step per batch over all of a model's parameters. Likewise timm's second-order ``adahessian``.
3. A timm optimizer name through ``timm.optim.create_optimizer_v2`` (source ``"timm"``): written
   ``timm:NAME`` (always timm, e.g. ``timm:adabelief``, ``timm:sgd``, ``timm:lookahead_adam``), or plain
   ``NAME`` when neither adacli nor torch has that name (``lamb``, ``lion``, ``adan``, ``madgrad`` ...).
   timm's plain names may differ from torch's: timm's ``sgd`` is Nesterov SGD with momentum 0.9 and its
   ``adabelief`` has ``rectify=False``; hence the explicit prefix.
4. ``po:NAME``: an optimizer of the optional ``pytorch-optimizer`` package (``pip install
   'adacli[optimizers]'``), through its ``load_optimizer`` (source ``"pytorch_optimizer"``), e.g.
   ``po:adabound``, ``po:yogi``, ``po:msvag``, ``po:fromage``, ``po:radam``: with torch and adacli it covers
   every optimizer of the AdaBelief paper. Always written with the prefix, because several of its names
   (``adabelief``, ``radam``, ``sgd`` ...) mean another implementation with other defaults.
5. ``package.module:Class``: a user's own ``torch.optim.Optimizer`` subclass by import path
   (source ``"import"``).

Weight decay: adacli applies ``weight_decay`` to every parameter, for every optimizer alike, because the
trial passes a plain parameter list. For timm names that is also what ``create_optimizer_v2`` does with a
parameter list (its bias/norm exclusion, ``filter_bias_and_bn``, only applies when it gets a module), so a
timm optimizer and a torch one with the same ``weight_decay`` decay the same tensors.
For timm names the hyperparameters follow timm's factory: its per-name defaults (e.g. ``rectify=False``
for ``adabelief``), ``momentum=0.9`` where timm says the optimizer has momentum, and ``eps``/``betas``
only where timm passes them through (where it would drop them silently, we reject them).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

from adacli.errors import InputError, closest

if TYPE_CHECKING:
    pass

Source = Literal["adacli", "torch", "timm", "pytorch_optimizer", "import"]

TIMM_PREFIX = "timm:"
PO_PREFIX = "po:"
PO_EXTRA_HINT = "pip install 'adacli[optimizers]' (the pytorch-optimizer package)"

# torch.optim classes a trial cannot drive with one plain ``step()`` per batch, and why.
_TORCH_UNSUPPORTED = {
    "lbfgs": "LBFGS needs a closure that re-evaluates the loss inside step(); adacli trials take one "
    "plain step per batch",
    "sparseadam": "SparseAdam only accepts sparse gradients; timm models produce dense ones",
    "muon": "torch.optim.Muon only takes 2-D parameters and every model has 1-D ones (biases, norms); "
    "use timm:muon, which hands those to AdamW",
}

# Constructor arguments that are not hyperparameters.
_NOT_HPARAMS = {"self", "params", "model_or_params"}


@dataclass
class ResolvedOptimizer:
    """An optimizer name resolved to a class and every hyperparameter (defaults filled in).

    ``hparams`` is what results.json records and what :meth:`build` passes; ``name`` is the name as
    written in the recipe.
    """

    name: str
    source: Source
    cls: type
    hparams: dict[str, Any]
    timm_name: str | None = None  # the name passed to timm's factory (source "timm")
    _skip: frozenset[str] = field(default=frozenset(), repr=False)  # defaults recorded, not passed

    @property
    def qualname(self) -> str:
        """The class with its module, e.g. ``torch.optim.adam.Adam`` (what ran, unambiguously)."""
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def build(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]]) -> torch.optim.Optimizer:
        """Construct the optimizer over ``params`` (a plain iterable of tensors or param groups).

        A constructor that rejects a value (``lr: -1``) raises :class:`InputError`, since the value came
        from the recipe.
        """
        kwargs = {k: v for k, v in self.hparams.items() if k not in self._skip}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        try:
            if self.source == "timm":
                from timm.optim import create_optimizer_v2

                assert self.timm_name is not None
                return create_optimizer_v2(
                    list(params), opt=self.timm_name, filter_bias_and_bn=False, **kwargs
                )
            return self.cls(params, **kwargs)
        except (ValueError, TypeError, RuntimeError) as e:
            raise InputError(
                f"optimizer {self.name!r} ({self.qualname}) could not be built: {_one_line(e)}"
            ) from e


def _one_edit(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with one typo: a substitution, insertion, deletion or adjacent swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def suggest(name: str, choices: Sequence[str]) -> str | None:
    """The likeliest intended name: the first choice one typo away (``adma`` -> ``adam``, in priority
    order: adacli, torch, timm), else difflib's closest match."""
    low = name.lower()
    for c in choices:
        if _one_edit(low, c.lower()):
            return c
    return closest(name, choices)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# --- name tables ------------------------------------------------------------------------------------


@functools.cache
def _torch_classes() -> dict[str, type]:
    """Every ``torch.optim`` Optimizer subclass by lowercase class name (read once: a sweep resolves a
    name per configuration, 20,000 of them in a large one)."""
    out: dict[str, type] = {}
    for attr in dir(torch.optim):
        obj = getattr(torch.optim, attr)
        if (
            isinstance(obj, type)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
        ):
            out[attr.lower()] = obj
    return out


def _timm_names() -> list[str]:
    return list(_timm_name_tuple())


@functools.cache
def _timm_name_tuple() -> tuple[str, ...]:
    from timm.optim import list_optimizers

    return tuple(list_optimizers())


def _po_names() -> list[str]:
    """pytorch-optimizer's names (without ``po:``); empty when the optional package is not installed."""
    try:
        from pytorch_optimizer import get_supported_optimizers
    except ImportError:
        return []
    return sorted(str(n).lower() for n in get_supported_optimizers())


def optimizer_names() -> dict[str, list[str]]:
    """Every resolvable name, by source (timm names without the prefix: ``timm:`` + name resolves;
    pytorch_optimizer names without theirs: ``po:`` + name resolves)."""
    return {
        "adacli": ["adabelief"],
        "torch": sorted(n for n in _torch_classes() if n not in _TORCH_UNSUPPORTED),
        "timm": sorted(_timm_names()),
        "pytorch_optimizer": _po_names(),
        "import": ["package.module:Class"],
    }


def _all_plain_names() -> list[str]:
    names = optimizer_names()
    plain = ["adabelief", *names["torch"], *names["timm"]]
    return list(dict.fromkeys(plain)) + [TIMM_PREFIX + n for n in names["timm"]]


# --- hyperparameters --------------------------------------------------------------------------------


def _signature_defaults(cls: type) -> tuple[dict[str, Any], list[str], bool]:
    """(defaults by name, required names, accepts **kwargs) of ``cls.__init__`` minus ``params`` (fresh
    containers the caller may change; the signature is read once per class)."""
    defaults, required, var_kw = _read_signature(cls)
    return dict(defaults), list(required), var_kw


@functools.lru_cache(maxsize=512)
def _read_signature(cls: type) -> tuple[dict[str, Any], list[str], bool]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}, [], True
    defaults: dict[str, Any] = {}
    required: list[str] = []
    var_kw = False
    for p in sig.parameters.values():
        if p.name in _NOT_HPARAMS or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        if p.default is p.empty:
            required.append(p.name)
        else:
            defaults[p.name] = p.default
    # The first positional argument is the parameters whatever it is called.
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if params and params[0].name not in _NOT_HPARAMS and params[0].name in required:
        required.remove(params[0].name)
    return defaults, required, var_kw


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return not (isinstance(v, float) and not math.isfinite(v))


def _record(v: Any) -> Any:
    """A default as results.json can store it: tuples stay tuples (JSON lists); others as repr."""
    if isinstance(v, tuple) and _jsonable(list(v)):
        return v
    return v if _jsonable(v) else repr(v)


def _coerce(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """YAML has no tuples: a list given where the default is a tuple (``betas``) becomes a tuple."""
    out = {}
    for k, v in given.items():
        if isinstance(v, list) and isinstance(defaults.get(k), tuple):
            v = tuple(v)
        out[k] = v
    return out


def _fill(
    name: str,
    cls: type,
    given: dict[str, Any],
    *,
    extra_defaults: dict[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> tuple[dict[str, Any], frozenset[str]]:
    """Every hyperparameter of ``cls`` (given values over defaults); unknown keys -> InputError."""
    extra = tuple((extra_defaults or {}).items())
    try:
        table = _defaults_table(cls, extra, tuple(drop))
    except TypeError:  # an unhashable extra default: no cache
        table = _defaults_table.__wrapped__(cls, extra, tuple(drop))
    defaults, required, var_kw, recorded, skip_all = table
    unknown = [k for k in given if k not in defaults and k not in required]
    if unknown or any(k not in given for k in required):
        allowed = sorted(defaults) + sorted(set(required) - set(defaults))
        if unknown and not var_kw:
            k = unknown[0]
            raise InputError(
                f"unknown hyperparameter {k!r} for optimizer {name!r} ({cls.__module__}.{cls.__qualname__})",
                allowed=allowed,
                suggestion=suggest(k, allowed),
            )
        missing = [k for k in required if k not in given]
        if missing:
            msg = f"optimizer {name!r} needs hyperparameter(s) {', '.join(missing)}"
            raise InputError(msg, allowed=allowed)
    hparams = dict(recorded)
    hparams.update(_coerce(given, defaults))
    return hparams, skip_all - set(given)


@functools.lru_cache(maxsize=512)
def _defaults_table(
    cls: type, extra: tuple[tuple[str, Any], ...], drop: tuple[str, ...]
) -> tuple[dict[str, Any], list[str], bool, dict[str, Any], frozenset[str]]:
    """(defaults, required, accepts **kwargs, defaults as recorded, keys recorded as repr) of ``cls``
    with timm's extra defaults and dropped keys; computed once per class (a sweep resolves a name per
    configuration: serialising every default each time was most of a 20,000-point validate)."""
    defaults, required, var_kw = _signature_defaults(cls)
    for k in drop:
        defaults.pop(k, None)
    defaults.update(dict(extra))
    recorded: dict[str, Any] = {}
    skip = set()
    for k, v in defaults.items():
        rec = _record(v)
        if rec is not v and not isinstance(v, tuple):
            skip.add(k)  # recorded as repr, let the class use its own default
        recorded[k] = rec
    return defaults, required, var_kw, recorded, frozenset(skip)


# --- resolution -------------------------------------------------------------------------------------


def _import_from_cwd() -> None:
    """Let ``my_optim:MyOpt`` import from the current directory, as ``python -m`` would.

    The ``adacli`` console script's ``sys.path`` starts with its own bin folder, not the directory the
    user runs it from, so a user's optimizer module next to their recipe would not import, while the
    same recipe works under ``python -m adacli``. Worker processes inherit ``sys.path`` (spawn).
    """
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def import_user_module(module_name: str, name: str) -> Any:
    """Import a user's module for ``name`` (``my_pkg.optim:MyOpt``) so that nothing it does at import can
    end or confuse adacli: any exception, ``SystemExit`` (``sys.exit()``, or an ``argparse`` that reads
    adacli's command line) and a ``KeyboardInterrupt`` it raises itself become one InputError, "importing
    my_pkg.optim raised SystemExit(0)" (exit 2), quoting what it printed; what a module that imports fine
    prints goes to stderr, so it is neither lost nor mixed into adacli's output (``--json``). A real
    Ctrl-C during the import stays an interrupt."""
    import signal
    import threading

    _import_from_cwd()
    out, got_sigint = io.StringIO(), []
    previous = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread() and previous is not None

    def on_sigint(signum: int, frame: Any) -> None:
        got_sigint.append(signum)
        raise KeyboardInterrupt

    try:
        if main:
            signal.signal(signal.SIGINT, on_sigint)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            module = importlib.import_module(module_name)
    except BaseException as e:  # user code: everything it raises itself is reported
        real_signal = got_sigint or hasattr(e, "signum")  # Ctrl-C, or adacli's SIGTERM interrupt
        if real_signal or not isinstance(e, (Exception, SystemExit, KeyboardInterrupt)):
            raise
        printed = " ".join(out.getvalue().split())
        said = f"; it printed: {printed[:200]!r}" if printed else ""
        if isinstance(e, Exception):  # an ordinary import failure: its message says it all
            msg = f"optimizer {name!r}: module {module_name!r} does not import: {_one_line(e)}{said}"
            raise InputError(msg) from e
        what = f"{type(e).__name__}({e.code!r})" if isinstance(e, SystemExit) else type(e).__name__
        hint = ' (a module\'s script code belongs under `if __name__ == "__main__":`)' if printed else ""
        raise InputError(f"optimizer {name!r}: importing {module_name} raised {what}{said}{hint}") from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    if out.getvalue():
        sys.stderr.write(out.getvalue())
    return module


def step_problem(cls: type) -> str | None:
    """Why a trial cannot drive ``cls`` with one plain ``step()`` per batch, or None.

    A trial calls ``optimizer.step()`` once per batch after one backward pass: an optimizer whose
    ``step`` requires a closure (LBFGS and its relatives re-evaluate the loss several times per step)
    or that only takes sparse gradients (SparseAdam; timm models produce dense ones) would fail in the
    first trial, so it is refused before anything trains, with the reason.
    """
    if issubclass(cls, torch.optim.SparseAdam):
        return "it only accepts sparse gradients (SparseAdam) and timm models produce dense ones"
    try:
        closure = inspect.signature(cls.step).parameters.get("closure")
    except (TypeError, ValueError):
        return None
    if closure is not None and closure.default is inspect.Parameter.empty:
        return (
            "its step() requires a closure that re-evaluates the loss (as LBFGS does); adacli trials take "
            "one plain step() per batch"
        )
    return None


def _resolve_import(name: str, given: dict[str, Any]) -> ResolvedOptimizer:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise InputError(f"import path {name!r} must look like package.module:Class")
    module = import_user_module(module_name, name)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            choices = [
                n
                for n in dir(module)
                if isinstance(getattr(module, n), type)
                and issubclass(getattr(module, n), torch.optim.Optimizer)
                and getattr(module, n) is not torch.optim.Optimizer
            ]
            raise InputError(
                f"optimizer {name!r}: module {module_name!r} has no attribute {attr!r}",
                allowed=choices,
                suggestion=closest(attr, choices),
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer)):
        raise InputError(f"optimizer {name!r}: {obj!r} is not a torch.optim.Optimizer subclass")
    problem = step_problem(obj)
    if problem is not None:
        raise InputError(f"optimizer {name!r} cannot run in a trial: {problem}")
    hparams, skip = _fill(name, obj, given)
    return ResolvedOptimizer(name=name, source="import", cls=obj, hparams=hparams, _skip=skip)


def _resolve_timm(name: str, timm_name: str, given: dict[str, Any]) -> ResolvedOptimizer:
    from timm.optim._optim_factory import default_registry

    parts = timm_name.lower().split("_")
    base = parts[-1]
    lookahead = len(parts) > 1 and parts[0] == "lookahead"
    if len(parts) > 2 or (len(parts) == 2 and not lookahead) or base not in _timm_names():
        names = _timm_names()
        raise InputError(
            f"unknown timm optimizer {timm_name!r}",
            allowed=[TIMM_PREFIX + n for n in names],
            suggestion=(TIMM_PREFIX + s) if (s := suggest(base, names)) else None,
        )
    info = default_registry.get_optimizer_info(base)
    if info.second_order:
        raise InputError(
            f"timm optimizer {timm_name!r} is second-order: it needs backward(create_graph=True), and adacli "
            "trials take plain first-order steps"
        )
    try:
        cls = default_registry.get_optimizer_class(info, bind_defaults=False)
    except Exception as e:  # e.g. bitsandbytes / apex optimizers need CUDA and extra packages
        raise InputError(f"timm optimizer {timm_name!r} is not available here: {_one_line(e)}") from e
    # Mirror timm's factory: its per-name defaults, momentum 0.9 where it has momentum, and only the
    # eps/betas/momentum it would actually pass on (anything it would drop silently is rejected).
    extra: dict[str, Any] = {"weight_decay": 0.0}
    extra.update(dict(info.defaults or {}))
    drop = []
    if info.has_momentum:
        extra.setdefault("momentum", 0.9)
    else:
        drop.append("momentum")
    if not info.has_eps:
        drop.append("eps")
    if not info.has_betas:
        drop.append("betas")
    hparams, skip = _fill(name, cls, given, extra_defaults=extra, drop=drop)
    if lookahead:
        hparams.update({"lookahead_alpha": 0.5, "lookahead_k": 6})  # Lookahead's fixed defaults in timm
        skip = skip | {"lookahead_alpha", "lookahead_k"}
    return ResolvedOptimizer(
        name=name, source="timm", cls=cls, hparams=hparams, timm_name=timm_name.lower(), _skip=skip
    )


def _resolve_po(name: str, po_name: str, given: dict[str, Any]) -> ResolvedOptimizer:
    """``po:NAME``: pytorch-optimizer's class for NAME, hyperparameters checked against its signature.

    Its classes take ``**kwargs`` and ignore what they do not know, so unknown keys are checked here
    against the named parameters (a silently dropped ``weight_decy`` is the trap the registry exists for).
    """
    try:
        from pytorch_optimizer import load_optimizer
    except ImportError:
        raise InputError(f"optimizer {name!r} needs the optional extra: {PO_EXTRA_HINT}") from None
    names = _po_names()
    key = po_name.strip().lower()
    if key not in names:
        raise InputError(
            f"unknown pytorch-optimizer optimizer {po_name!r}",
            allowed=[PO_PREFIX + n for n in names],
            suggestion=(PO_PREFIX + s) if (s := suggest(key, names)) else None,
        )
    try:
        cls = load_optimizer(key)
    except Exception as e:  # some need extra packages (bitsandbytes, torchao) or a GPU
        raise InputError(f"optimizer {name!r} is not available here: {_one_line(e)}") from e
    problem = step_problem(cls)
    if problem is not None:
        raise InputError(f"optimizer {name!r} cannot run in a trial: {problem}")
    defaults, required, _ = _signature_defaults(cls)
    allowed = sorted(defaults) + sorted(set(required) - set(defaults))
    unknown = [k for k in given if k not in allowed]
    if unknown:
        raise InputError(
            f"unknown hyperparameter {unknown[0]!r} for optimizer {name!r} "
            f"({cls.__module__}.{cls.__qualname__})",
            allowed=allowed,
            suggestion=suggest(unknown[0], allowed),
        )
    hp, skip = _fill(name, cls, given)
    return ResolvedOptimizer(name=name, source="pytorch_optimizer", cls=cls, hparams=hp, _skip=skip)


def resolve_optimizer(name: str, hparams: dict[str, Any] | None = None) -> ResolvedOptimizer:
    """Resolve a recipe's optimizer name and hyperparameters; InputError on unknown names or keys."""
    given = dict(hparams or {})
    if not isinstance(name, str) or not name.strip():
        raise InputError("optimizer name must be a non-empty string")
    name = name.strip()
    lower = name.lower()

    if lower == "adabelief":
        from adacli.optim.adabelief import AdaBelief

        hp, skip = _fill(name, AdaBelief, given)
        return ResolvedOptimizer(name=name, source="adacli", cls=AdaBelief, hparams=hp, _skip=skip)

    if lower.startswith(TIMM_PREFIX):
        return _resolve_timm(name, name[len(TIMM_PREFIX) :], given)

    if lower.startswith(PO_PREFIX):
        return _resolve_po(name, name[len(PO_PREFIX) :], given)

    if ":" in name:
        return _resolve_import(name, given)

    torch_classes = _torch_classes()
    if lower in _TORCH_UNSUPPORTED:
        raise InputError(f"optimizer {name!r} is not supported: {_TORCH_UNSUPPORTED[lower]}")
    if lower in torch_classes:
        cls = torch_classes[lower]
        hp, skip = _fill(name, cls, given)
        return ResolvedOptimizer(name=name, source="torch", cls=cls, hparams=hp, _skip=skip)

    timm_names = _timm_names()
    if lower in timm_names or lower.startswith("lookahead_"):
        return _resolve_timm(name, lower, given)

    allowed = _all_plain_names()
    raise InputError(
        f"unknown optimizer {name!r} (use package.module:Class for your own)",
        allowed=[n for n in allowed if not n.startswith(TIMM_PREFIX)]
        + ["timm:NAME", "po:NAME", "package.module:Class"],
        suggestion=suggest(name, allowed),
    )


# --- labels -----------------------------------------------------------------------------------------
