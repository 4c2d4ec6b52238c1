"""The optimizer step benchmark: median ``optimizer.step()`` time on the parameter shapes of real timm models.

Why it is built this way: a step's cost depends only on the parameter shapes, so the parameters are random
tensors with the shapes of a timm model (built on the meta device: no weights, no downloads, no memory). All
candidates update the same parameters with the same gradients (each keeps its own state), and they are timed
in interleaved rounds (round r times every candidate in turn) so that a busy machine, thermal drift or a
neighbour's job slows them all alike and the ratios stay honest. Each step is timed on its own (with a device
synchronisation on GPU) and the median over all rounds is reported.
"""

from __future__ import annotations

import contextlib
import io
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from adacli.errors import InputError, closest

__all__ = [
    "DEFAULT_MODELS",
    "LARGE_MODELS",
    "SMALL_MODELS",
    "BenchResult",
    "BenchRow",
    "candidate_names",
    "model_param_shapes",
    "results_table",
    "run_bench",
]

# small models first: with a hundred tiny tensors, per-tensor dispatch (not arithmetic) is what a step costs,
# which is where short CPU trials spend their optimizer time
SMALL_MODELS = ("test_resnet", "test_convnext", "test_vit")
LARGE_MODELS = ("resnet18", "resnet50", "vit_small_patch16_224")
DEFAULT_MODELS = (*SMALL_MODELS, *LARGE_MODELS)

# candidates: label -> (factory(params) -> optimizer, reference-kind); the optional ones are skipped when
# their package is missing or the device does not support them.
FUSED_ADAM = "torch Adam fused"
FOREACH_ADAM = "torch Adam foreach"
TIMM = "timm AdaBelief foreach"
OFFICIAL = "adabelief-pytorch 0.2.1"


@dataclass
class BenchRow:
    """One candidate on one model: the median step time and its ratios to the references."""

    model: str
    device: str
    optimizer: str
    median_ms: float
    steps_timed: int
    vs_torch_fused_adam: float | None = None
    vs_timm: float | None = None
    vs_torch_foreach_adam: float | None = None


@dataclass
class BenchResult:
    """All rows of one run plus how it was run (threads, rounds), for the table and ``--json``."""

    device: str
    threads: int
    rounds: int
    steps_per_round: int
    rows: list[BenchRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data for JSON output."""
        return asdict(self)


def model_param_shapes(name: str) -> list[tuple[int, ...]]:
    """The trainable parameter shapes of timm model ``name`` (built on the meta device, pretrained=False)."""
    import timm

    if name not in timm.list_models():
        suggestion = closest(name, timm.list_models())
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise InputError(f"unknown timm model {name!r}{hint}; see `adacli list models`")
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return [tuple(p.shape) for p in model.parameters() if p.requires_grad]


def _adacli(path: str) -> Callable[[list[Tensor]], torch.optim.Optimizer]:
    from adacli.optim.adabelief import AdaBelief

    def build(params: list[Tensor]) -> torch.optim.Optimizer:
        return AdaBelief(params, foreach=path == "foreach", fused=path == "fused")

    return build


def _candidates(device: torch.device) -> tuple[dict[str, Callable], dict[str, str]]:
    """Every candidate that can run here, and the reasons others are skipped."""
    cands: dict[str, Callable] = {}
    skipped: dict[str, str] = {}
    from adacli.optim import _fused

    try:
        if device.type == "cpu":
            _fused.load_cpu_kernel()
        else:
            import triton  # noqa: F401
        cands["adacli AdaBelief fused"] = _adacli("fused")
    except (_fused.FusedUnavailableError, ImportError) as e:
        skipped["adacli AdaBelief fused"] = str(e).splitlines()[0]
    cands["adacli AdaBelief foreach"] = _adacli("foreach")
    cands["adacli AdaBelief single"] = _adacli("single")
    try:
        import inspect

        from timm.optim import AdaBelief as TimmAdaBelief

        if "foreach" in inspect.signature(TimmAdaBelief).parameters:
            cands[TIMM] = lambda ps: TimmAdaBelief(ps, foreach=True)
        else:
            cands["timm AdaBelief"] = lambda ps: TimmAdaBelief(ps)
    except ImportError as e:
        skipped[TIMM] = f"timm not importable: {e}"
    try:
        from adabelief_pytorch import AdaBelief as OfficialAdaBelief

        def official(ps: list[Tensor]) -> torch.optim.Optimizer:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints on construction
                return OfficialAdaBelief(ps, print_change_log=False)

        cands[OFFICIAL] = official
    except ImportError:
        skipped[OFFICIAL] = "adabelief-pytorch not installed (pip install adacli[test])"
    cands[FOREACH_ADAM] = lambda ps: torch.optim.Adam(ps, foreach=True)
    cands[FUSED_ADAM] = lambda ps: torch.optim.Adam(ps, fused=True)
    return cands, skipped


def candidate_names(device: str = "cpu") -> list[str]:
    """Labels of the candidates that would run on ``device``."""
    return list(_candidates(torch.device(device))[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bench(
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    device: str = "cpu",
    rounds: int = 5,
    steps_per_round: int = 3,
    warmup: int = 6,
    threads: int | None = 2,
    include: Sequence[str] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time every candidate's ``step()`` on each model's parameter shapes; interleaved rounds, medians.

    ``warmup`` steps run first for every candidate (kernel builds, lazy state, and the rectified update:
    AdaBelief takes its cheaper SGD branch for the first 5 steps, so timing starts after them).
    ``threads`` sets ``torch.set_num_threads`` for the run (restored afterwards); ``include`` restricts the
    candidates to those labels.
    """
    from adacli.recipe.options import BenchOptions

    BenchOptions.parse(rounds=rounds, threads=threads)  # finite, in range; InputError naming the option
    dev = _bench_device(device, rounds, steps_per_round)
    shapes = {name: model_param_shapes(name) for name in models}
    cands, skipped = _candidates(dev)
    if include is not None:
        unknown = [c for c in include if c not in cands]
        if unknown:
            raise InputError(f"unknown benchmark candidate(s) {unknown}; available: {list(cands)}")
        cands = {k: v for k, v in cands.items() if k in include}
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    result = BenchResult(
        device=str(dev), threads=torch.get_num_threads(), rounds=rounds, steps_per_round=steps_per_round
    )
    result.skipped = skipped
    rng = random.Random(seed)
    try:
        for model in models:
            gen = torch.Generator().manual_seed(seed)
            params = [torch.randn(s, generator=gen).to(dev) * 0.02 for s in shapes[model]]
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(dev) * 1e-3
            opts = {label: build(params) for label, build in cands.items()}
            times = _time_steps(model, opts, dev, warmup, rounds, steps_per_round, rng, progress)
            result.rows += _rows(model, str(dev), times)
            del opts, params
    finally:
        torch.set_num_threads(old_threads)
    return result


def _bench_device(device: str, rounds: int, steps_per_round: int) -> torch.device:
    """The benchmark's device, after the arguments are checked (InputError, exit 2)."""
    if steps_per_round < 1:
        raise InputError("steps per round must be at least 1")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {device!r}: choose cpu or cuda")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: CUDA is not available on this machine (use --device cpu)")
    return dev


def _time_steps(
    model: str,
    opts: dict[str, torch.optim.Optimizer],
    dev: torch.device,
    warmup: int,
    rounds: int,
    steps_per_round: int,
    rng: random.Random,
    progress: Callable[[str], None] | None,
) -> dict[str, list[float]]:
    """Seconds of each ``step()`` per candidate: warm-up first, then rounds in a shuffled order (so a
    machine whose load drifts affects every candidate alike), each step between two device syncs."""
    for label, opt in opts.items():
        if progress:
            progress(f"{model}: warming up {label}")
        for _ in range(warmup):
            opt.step()
    _sync(dev)
    times: dict[str, list[float]] = {label: [] for label in opts}
    for r in range(rounds):
        if progress:
            progress(f"{model}: round {r + 1}/{rounds}")
        order = list(opts)
        rng.shuffle(order)
        for label in order:
            opt = opts[label]
            for _ in range(steps_per_round):
                _sync(dev)
                t0 = time.perf_counter()
                opt.step()
                _sync(dev)
                times[label].append(time.perf_counter() - t0)
    return times


def _rows(model: str, device: str, times: dict[str, list[float]]) -> list[BenchRow]:
    """One row per candidate: its median step in ms and its ratios to torch's Adam and timm's AdaBelief."""
    medians = {label: statistics.median(ts) * 1e3 for label, ts in times.items()}
    rows = []
    for label, ms in medians.items():
        row = BenchRow(model, device, label, ms, len(times[label]))
        if FUSED_ADAM in medians:
            row.vs_torch_fused_adam = ms / medians[FUSED_ADAM]
        if FOREACH_ADAM in medians:
            row.vs_torch_foreach_adam = ms / medians[FOREACH_ADAM]
        timm_label = TIMM if TIMM in medians else "timm AdaBelief"
        if timm_label in medians:
            row.vs_timm = ms / medians[timm_label]
        rows.append(row)
    return rows


def results_table(result: BenchResult):  # -> rich.table.Table
    """A rich table of the run: median ms per step and the ratios against torch fused Adam and timm."""
    from rich.table import Table

    table = Table(
        title=f"optimizer.step() on {result.device}, {result.threads} threads, median of "
        f"{result.rounds} rounds x {result.steps_per_round} steps"
    )
    table.add_column("model", no_wrap=True)
    table.add_column("optimizer", no_wrap=True)
    table.add_column("median ms", justify="right", no_wrap=True)
    table.add_column("x fused Adam", justify="right", no_wrap=True)
    table.add_column("x foreach Adam", justify="right", no_wrap=True)
    table.add_column("x timm", justify="right", no_wrap=True)
    table.caption = "ratio = median step time / that of torch Adam(fused=True), Adam(foreach=True), timm"

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    last = None
    for row in result.rows:
        if last is not None and row.model != last:
            table.add_section()
        last = row.model
        table.add_row(
            row.model,
            row.optimizer,
            f"{row.median_ms:.2f}",
            fmt(row.vs_torch_fused_adam),
            fmt(row.vs_torch_foreach_adam),
            fmt(row.vs_timm),
        )
    return table
