"""The fused AdaBelief path: one pass over memory per element (read p, g, m, s once; write p, m, s once).

Why these means:

* CPU: a small C++ kernel (OpenMP over cache-sized chunks of every tensor of a (device, dtype) group, one call
  per group, a loop the compiler vectorises). It includes no torch headers and is called through ``ctypes``
  with raw data pointers, so building it takes about a second with the system C++ compiler instead of the
  30-60 s a ``torch.utils.cpp_extension`` build spends parsing torch's headers. The shared object is cached
  under torch's extensions directory, keyed by a hash of the source, flags, compiler and CPU, so the cost is
  paid once per machine. It links against the OpenMP runtime torch already loaded (same soname), so the two
  share one thread pool. Without a compiler, ``fused=True`` raises a clear error and the default path
  (``fused=None``) falls back to foreach.
* CUDA: a Triton kernel (``adacli.optim._triton``): one launch per group over a table of tensor addresses.

The update arithmetic is the official one in fp32 (fp64 for fp64 parameters), operation for operation; the
step-dependent scalars (bias corrections, rectification) are computed on the host in float64 exactly as the
reference path computes them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from adacli.optim._math import (
    LOW_PRECISION,
    Hyper,
    device_coefficients,
    foreach_update,
    foreach_update_capturable,
    step_scalars,
    steps_by_value,
)

__all__ = ["FusedUnavailableError", "cpu_kernel_available", "fused_adabelief", "fused_is_default"]

_TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Elements per work item of the OpenMP loop: small enough to balance two or more threads over a model's
# tensors, large enough that the per-item overhead is noise.
_CHUNK = 1 << 15

_SOURCE = r"""
#include <cmath>
#include <cstdint>
#include <vector>
#include <algorithm>
#include <omp.h>

// Modes of the parameter update (chosen on the host from the step, as the official code does):
// 0 = unrectified Adam-style: p += step_size * m / (sqrt(s_hat) / sqrt_bc2 + eps), s_hat = s or max(s)
// 1 = rectified adaptive:     p += step_size * m / (sqrt(s) + eps)
// 2 = rectified SGD fallback: p += step_size * m
// 3 = no parameter update (moments still advance)
template <typename T, int MODE, bool AMS>
static void adabelief_range(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict s,
                            T* __restrict smax, int64_t n, const double* sc, int64_t flags) {
  const T decay = (T)sc[0], l2 = (T)sc[1], beta1 = (T)sc[2], omb1 = (T)sc[3], beta2 = (T)sc[4];
  const T omb2 = (T)sc[5], eps = (T)sc[6], sqrt_bc2 = (T)sc[7], step_size = (T)sc[8];
  const bool do_decay = flags & 1, do_l2 = flags & 2, maximize = flags & 4;
  const T gsign = maximize ? (T)-1 : (T)1;
  for (int64_t i = 0; i < n; ++i) {
    T pi = p[i];
    T gi = g[i] * gsign;
    if (do_decay) pi = pi * decay;
    if (do_l2) gi = gi + l2 * pi;
    T mi = m[i] * beta1;
    mi = mi + omb1 * gi;
    const T r = gi - mi;
    T si = s[i] * beta2;
    si = si + omb2 * r * r;
    si = si + eps;
    m[i] = mi;
    s[i] = si;
    T sx = si;
    if (AMS) {
      sx = std::max(smax[i], si);
      smax[i] = sx;
    }
    if (MODE == 0) {
      const T denom = std::sqrt(sx) / sqrt_bc2 + eps;
      pi = pi + step_size * (mi / denom);
    } else if (MODE == 1) {
      const T denom = std::sqrt(si) + eps;
      pi = pi + step_size * (mi / denom);
    } else if (MODE == 2) {
      pi = pi + step_size * mi;
    }
    p[i] = pi;
  }
}

template <typename T, int MODE, bool AMS>
static void run(int64_t ntensors, void** P, void** G, void** M, void** S, void** SM, const int64_t* numel,
                const double* sc, int64_t flags, int64_t chunk, int nthreads) {
  std::vector<int64_t> t_of, start_of;
  for (int64_t t = 0; t < ntensors; ++t)
    for (int64_t a = 0; a < numel[t]; a += chunk) { t_of.push_back(t); start_of.push_back(a); }
  const int64_t nwork = (int64_t)t_of.size();
  int64_t total = 0;
  for (int64_t t = 0; t < ntensors; ++t) total += numel[t];
  // a parallel region costs microseconds (far more on a busy machine): small groups run on one thread
  #pragma omp parallel for schedule(static) num_threads(nthreads) if(total >= 4 * chunk && nthreads > 1)
  for (int64_t w = 0; w < nwork; ++w) {
    const int64_t t = t_of[w], a = start_of[w], n = std::min(chunk, numel[t] - a);
    adabelief_range<T, MODE, AMS>((T*)P[t] + a, (const T*)G[t] + a, (T*)M[t] + a, (T*)S[t] + a,
                                  AMS ? (T*)SM[t] + a : nullptr, n, sc, flags);
  }
}

template <typename T>
static int dispatch(int64_t ntensors, void** P, void** G, void** M, void** S, void** SM,
                    const int64_t* numel, const double* sc, int64_t flags, int64_t chunk, int nthreads) {
  const int mode = (int)((flags >> 4) & 3);
  const bool ams = flags & 8;
#define ADACLI_CASE(MODE_)                                                                        \
  case MODE_:                                                                                     \
    if (ams) run<T, MODE_, true>(ntensors, P, G, M, S, SM, numel, sc, flags, chunk, nthreads);    \
    else run<T, MODE_, false>(ntensors, P, G, M, S, SM, numel, sc, flags, chunk, nthreads);       \
    return 0;
  switch (mode) { ADACLI_CASE(0) ADACLI_CASE(1) ADACLI_CASE(2) ADACLI_CASE(3) }
#undef ADACLI_CASE
  return 1;
}

extern "C" int adacli_adabelief_f32(int64_t ntensors, void** P, void** G, void** M, void** S, void** SM,
                                    const int64_t* numel, const double* sc, int64_t flags, int64_t chunk,
                                    int nthreads) {
  return dispatch<float>(ntensors, P, G, M, S, SM, numel, sc, flags, chunk, nthreads);
}

extern "C" int adacli_adabelief_f64(int64_t ntensors, void** P, void** G, void** M, void** S, void** SM,
                                    const int64_t* numel, const double* sc, int64_t flags, int64_t chunk,
                                    int nthreads) {
  return dispatch<double>(ntensors, P, G, M, S, SM, numel, sc, flags, chunk, nthreads);
}
"""

# -O3 vectorises the loop; -fno-math-errno lets sqrt vectorise (no errno writes) without changing results;
# no -ffast-math: division and sqrt stay IEEE, as in torch's kernels.
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-fPIC", "-shared", "-std=c++17"]


class FusedUnavailableError(RuntimeError):
    """The fused path cannot run here (no C++ compiler for the CPU kernel, or no Triton for CUDA)."""


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_error: str | None = None


def _compiler() -> str | None:
    """The C++ compiler to build the CPU kernel with ($CXX, else c++/g++/clang++ on PATH)."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    """What the -march=native build depends on: the CPU model and flags (a shared cache must not mix)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _build_dir() -> Path:
    """Torch's extensions directory (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions/...``)."""
    # the same default as torch.utils.cpp_extension.get_default_build_root(), without importing that module
    # (its import logs a CUDA warning on machines without CUDA)
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "torch_extensions"


def _library_path(cxx: str) -> Path:
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = cxx
    key = hashlib.sha256("\0".join([_SOURCE, *_FLAGS, version, _cpu_signature()]).encode()).hexdigest()[:16]
    return _build_dir() / f"adacli_adabelief_{key}" / "adabelief_fused.so"


def _build(cxx: str, path: Path) -> None:
    """Compile the kernel into ``path`` (atomically: concurrent builders each install a complete file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        src = Path(tmp) / "adabelief_fused.cpp"
        src.write_text(_SOURCE)
        out = Path(tmp) / "adabelief_fused.so"
        proc = subprocess.run(
            [cxx, *_FLAGS, str(src), "-o", str(out)], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise FusedUnavailableError(
                f"building the fused AdaBelief CPU kernel with {cxx} failed "
                f"(use foreach=True instead):\n{proc.stderr[-2000:]}"
            )
        os.replace(out, path)


def load_cpu_kernel() -> ctypes.CDLL:
    """Build (once per machine, cached on disk) and load the CPU kernel; raise FusedUnavailableError."""
    global _lib, _lib_error
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        if _lib_error is not None:
            raise FusedUnavailableError(_lib_error)
        cxx = _compiler()
        if cxx is None:
            _lib_error = (
                "the fused AdaBelief CPU kernel needs a C++ compiler (c++, g++ or clang++ on PATH, or $CXX) "
                "to build once; install one (e.g. `apt-get install g++`) or use foreach=True"
            )
            raise FusedUnavailableError(_lib_error)
        path = _library_path(cxx)
        try:
            if not path.exists():
                _build(cxx, path)
            lib = ctypes.CDLL(str(path))
        except FusedUnavailableError as e:
            _lib_error = str(e)
            raise
        except (OSError, subprocess.SubprocessError) as e:  # unwritable cache, timeout, bad library
            _lib_error = f"the fused AdaBelief CPU kernel is unavailable ({e}); use foreach=True"
            raise FusedUnavailableError(_lib_error) from e
        for name in ("adacli_adabelief_f32", "adacli_adabelief_f64"):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int
            fn.argtypes = (
                [ctypes.c_int64]
                + [ctypes.c_void_p] * 5
                + [
                    ctypes.c_void_p,
                    ctypes.c_void_p,
                    ctypes.c_int64,
                    ctypes.c_int64,
                    ctypes.c_int,
                ]
            )
        _lib = lib
        return lib


def cpu_kernel_available() -> bool:
    """Whether the CPU kernel is built or can be built here (builds it on first call)."""
    return cpu_kernel_problem() is None


def cpu_kernel_problem() -> str | None:
    """Why the CPU kernel cannot run here (no compiler, a failed build), or None when it can."""
    try:
        load_cpu_kernel()
    except FusedUnavailableError as e:
        return str(e) or "the CPU kernel is not available"
    return None


#: Whether the Triton kernel has passed ``benchmarks/gpu_check.sh`` on a real GPU. Until then (the kernel
#: with its address table and capturable variant has only run under Triton's interpreter on the CPU and
#: been compiled for sm_90 without a device) CUDA defaults to torch's foreach kernels, and ``fused=True`` on
#: CUDA runs it with a warning. Set it to True in the commit that records a passing run (docs/gpu.md).
CUDA_KERNEL_VERIFIED = False

_unverified_warned = False


class UnverifiedKernelWarning(UserWarning):
    """The fused CUDA (Triton) kernel was selected before it has been verified on a GPU."""


def fused_is_default(device: torch.device) -> bool:
    """Whether ``foreach=None, fused=None`` takes the fused path on ``device``.

    CPU: yes when the kernel can be built (measured 4-8x faster than the foreach path on resnet18/50 and
    ViT-S shapes, see docs/adabelief.md; the one-off build takes about a second). CUDA: only once the
    Triton kernel is verified on a GPU (:data:`CUDA_KERNEL_VERIFIED`) and Triton imports; until then
    torch's foreach kernels, which have run on GPUs.
    """
    if device.type == "cpu":
        return cpu_kernel_available()
    if device.type == "cuda":
        return CUDA_KERNEL_VERIFIED and triton_available()
    return False


def warn_unverified_cuda_kernel() -> None:
    """One warning per process when the unverified Triton kernel is chosen (``fused=True`` on CUDA).

    Issued with ``warn_explicit`` at line 0 of this module, so it prints as one line (no source line)
    and Python's warning filters still apply to it (category :class:`UnverifiedKernelWarning`).
    """
    global _unverified_warned
    if CUDA_KERNEL_VERIFIED or _unverified_warned:
        return
    _unverified_warned = True
    warnings.warn_explicit(
        "AdaBelief fused=True on CUDA runs the Triton kernel, which has not yet passed "
        "benchmarks/gpu_check.sh on a GPU (unverified); the default (fused=None) uses torch's foreach "
        "kernels",
        UnverifiedKernelWarning,
        filename=__file__,
        lineno=0,
        module=__name__,
    )


@functools.cache
def triton_available() -> bool:
    """Whether the Triton kernel can be used (Triton ships with torch's CUDA wheels on Linux)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def kernel_scalars(step: float, hyper: Hyper) -> tuple[list[float], int]:
    """The per-step scalars and flag bits a fused kernel takes (host arithmetic as in the reference)."""
    decay, l2, flags = 1.0, 0.0, 0
    if hyper.weight_decouple:
        if hyper.weight_decay != 0:
            decay = hyper.decay_factor(hyper.lr)  # type: ignore[arg-type]
            flags |= 1
    elif hyper.weight_decay != 0:
        l2 = hyper.weight_decay
        flags |= 2
    if hyper.maximize:
        flags |= 4
    if hyper.amsgrad:
        flags |= 8
    if hyper.rectify and hyper.degenerated_to_sgd:
        flags |= 64  # capturable kernel: add the SGD-fallback term (its size is decided on the device)
    step_scal = step_scalars(step, hyper)
    mode = {"unrectified": 0, "adaptive": 1, "sgd": 2, "none": 3}[step_scal.kind]
    flags |= mode << 4
    beta1, beta2 = hyper.beta1, hyper.beta2
    scalars = [decay, l2, beta1, 1 - beta1, beta2, 1 - beta2, hyper.eps, step_scal.sqrt_bc2, step_scal.value]
    return scalars, flags


def fused_adabelief(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
    *,
    capturable: bool = False,
    cache: dict | None = None,
) -> None:
    """The fused path: one kernel call per (device, dtype, step) group of tensors (``hyper``: host lr).

    ``capturable`` (CUDA): one call per (device, dtype) group, the step scalars computed on the device.
    ``cache``: a dict the optimizer owns, where the Triton path keeps its address tables
    (``_triton.TableCache``), so that a table a captured graph reads lives as long as the optimizer.
    """
    if not params:
        return
    if capturable:
        _fused_capturable(params, grads, exp_avgs, exp_avg_vars, max_exp_avg_vars, state_steps, hyper, cache)
        return
    lists: list[list[Tensor]] = [params, grads, exp_avgs, exp_avg_vars]
    if hyper.amsgrad:
        lists.append(max_exp_avg_vars)
    lists.append(state_steps)
    grouped = Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
    for device_lists, _ in grouped.values():
        d_lists = (*device_lists[:4], device_lists[4] if hyper.amsgrad else [])
        d_steps = device_lists[-1]
        torch._foreach_add_(d_steps, torch.tensor(1.0), alpha=1.0)
        for step, idx in steps_by_value(d_steps).items():
            if len(idx) == len(d_steps):
                sub = d_lists
            else:
                sub = tuple([lst[j] for j in idx] if lst else [] for lst in d_lists)
            _fused_step(sub, step, hyper, cache)  # type: ignore[arg-type]


def _fused_step(sub: tuple[list[Tensor], ...], step: float, hyper: Hyper, cache: dict | None) -> None:
    """One kernel call for same-device, same-dtype tensors that share a step count."""
    scalars, flags = kernel_scalars(step, hyper)
    device = sub[0][0].device
    if device.type == "cpu":
        run_cpu(*sub, scalars=scalars, flags=flags)
    elif device.type == "cuda":

        def fallback(*part: list[Tensor], coefs: Tensor | None) -> None:
            foreach_update(*part, step=step, hyper=hyper)  # type: ignore[misc]

        _run_cuda(sub, scalars=scalars, flags=flags, cache=cache, fallback=fallback)
    else:
        raise FusedUnavailableError(
            f"the fused AdaBelief path supports CPU and CUDA tensors, not {device.type}; use foreach=True"
        )


def _dense(t: Tensor) -> bool:
    return (
        t.is_contiguous()
        or t.is_contiguous(memory_format=torch.channels_last)
        or t.is_contiguous(memory_format=torch.channels_last_3d)
    )


def flat_layout(tensors: list[Tensor]) -> bool:
    """Whether the kernel may treat one parameter's tensors (param, grad, states) as flat arrays.

    The kernel walks ``numel`` elements from each ``data_ptr``: right when every tensor is dense
    (contiguous, or channels_last as conv weights are in a ``channels_last`` model) and all share one
    layout, so the same memory offset is the same element in each. Strides of size-1 dimensions carry no
    layout and are ignored. Anything else takes the foreach ops.
    """
    if all(t.is_contiguous() for t in tensors):  # the common case, 10x cheaper: this runs every step
        return True
    first = tensors[0]
    if not _dense(first):
        return False
    layout = [st for st, n in zip(first.stride(), first.shape, strict=True) if n != 1]
    return all(
        t.shape == first.shape
        and _dense(t)
        and [st for st, n in zip(t.stride(), t.shape, strict=True) if n != 1] == layout
        for t in tensors[1:]
    )


def _fused_capturable(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    state_steps: list[Tensor],
    hyper: Hyper,
    cache: dict | None,
) -> None:
    """Capturable fused step: device step counters and scalars, one Triton launch per (device, dtype)."""

    def fallback(*part: list[Tensor], coefs: Tensor | None) -> None:
        foreach_update_capturable(*part, coefs=coefs, hyper=hyper)  # type: ignore[arg-type, misc]

    lists: list[list[Tensor]] = [params, grads, exp_avgs, exp_avg_vars]
    if hyper.amsgrad:
        lists.append(max_exp_avg_vars)
    lists.append(state_steps)
    grouped = Optimizer._group_tensors_by_device_and_dtype(lists)  # type: ignore[arg-type]
    # the host scalars that do not depend on the step or lr (those come from the device coefficients)
    scalars, flags = kernel_scalars(1.0, replace(hyper, lr=0.0))
    for device_lists, _ in grouped.values():
        sub = (*device_lists[:4], device_lists[4] if hyper.amsgrad else [])
        steps = device_lists[-1]
        device = sub[0][0].device
        if device.type != "cuda" or any(st.device != device for st in steps):
            raise FusedUnavailableError(
                "capturable fused AdaBelief needs CUDA tensors with step counters on the same device"
            )
        torch._foreach_add_(steps, 1.0)
        work_dtype = torch.float32 if sub[0][0].dtype in LOW_PRECISION else sub[0][0].dtype
        coefs = device_coefficients(steps, hyper, dtype=work_dtype)
        _run_cuda(sub, scalars=scalars, flags=flags, cache=cache, coefs=coefs, fallback=fallback)


def _run_cuda(
    sub: tuple[list[Tensor], ...],
    *,
    scalars: list[float],
    flags: int,
    cache: dict | None,
    fallback: Callable[..., None],
    coefs: Tensor | None = None,
) -> None:
    """The Triton kernel for every parameter it can take in one launch; the foreach ops for the rest.

    The rest: fp64 (the kernel computes in fp32) and tensors that are not flat arrays of one shared
    layout (see ``_triton.flat_layout``), e.g. a parameter whose gradient came back in another memory
    format. Both give the same update; the kernel is just faster.
    """
    from adacli.optim._triton import TableCache, run_triton

    if sub[0][0].dtype in _TRITON_DTYPES:
        columns = list(zip(*[lst for lst in sub if lst], strict=True))
        ok = [flat_layout(list(col)) for col in columns]
    else:
        ok = [False] * len(sub[0])
    for wanted, run in ((True, "triton"), (False, "foreach")):
        idx = [j for j, o in enumerate(ok) if o is wanted]
        if not idx:
            continue
        part = sub if len(idx) == len(ok) else tuple([lst[j] for j in idx] if lst else [] for lst in sub)
        part_coefs = coefs
        if coefs is not None and len(idx) != len(ok):  # views and one stack: no index copied to the GPU
            part_coefs = torch.stack([coefs[:, j] for j in idx], dim=1)
        if run == "triton":
            tables = None
            if cache is not None:
                tables = cache.setdefault("triton_tables", TableCache())  # type: ignore[attr-defined]
            run_triton(*part, scalars=scalars, flags=flags, coefs=part_coefs, cache=tables)
        else:
            fallback(*part, coefs=part_coefs)


def run_cpu(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_vars: list[Tensor],
    max_exp_avg_vars: list[Tensor],
    *,
    scalars: list[float],
    flags: int,
) -> None:
    """Call the CPU kernel on contiguous fp32/fp64 tensors (half parameters go through fp32 copies)."""
    lib = load_cpu_kernel()
    dtype = params[0].dtype
    low = dtype in LOW_PRECISION
    work = [p.float() for p in params] if low else params
    if low or grads[0].dtype != work[0].dtype:
        grads = [g.to(work[0].dtype) for g in grads]
    if work[0].dtype == torch.float32:
        fn = lib.adacli_adabelief_f32
    elif work[0].dtype == torch.float64:
        fn = lib.adacli_adabelief_f64
    else:
        raise FusedUnavailableError(f"the fused AdaBelief CPU kernel does not support {dtype} parameters")
    # the kernel walks flat memory: a parameter whose tensors are not flat arrays of one layout (see
    # flat_layout) goes through contiguous copies written back after
    tensors = [list(work), list(grads), list(exp_avgs), list(exp_avg_vars), list(max_exp_avg_vars)]
    copies: list[tuple[Tensor, Tensor]] = []
    if all(map(Tensor.is_contiguous, itertools.chain.from_iterable(tensors))):  # the usual case
        flat = [True] * len(work)
    else:
        flat = [flat_layout([lst[j] for lst in tensors if lst]) for j in range(len(work))]
    for lst_i, lst in enumerate(tensors):
        for j, t in enumerate(lst):
            if not flat[j] and not t.is_contiguous():
                c = t.contiguous()
                if lst_i != 1:
                    copies.append((t, c))
                lst[j] = c
    n = len(work)
    ptr_arr = ctypes.c_void_p * n
    data_ptr = Tensor.data_ptr
    ptrs = [ptr_arr(*map(data_ptr, lst)) for lst in tensors[:4]]
    smax = ptr_arr(*map(data_ptr, tensors[4])) if tensors[4] else None
    numels = (ctypes.c_int64 * n)(*map(Tensor.numel, tensors[0]))
    sc = (ctypes.c_double * len(scalars))(*scalars)
    rc = fn(n, *ptrs, smax, numels, sc, flags, _CHUNK, torch.get_num_threads())
    if rc != 0:
        raise RuntimeError(f"fused AdaBelief CPU kernel failed (code {rc})")
    for dst, src in copies:
        dst.copy_(src)
    if low:
        torch._foreach_copy_(params, work)
