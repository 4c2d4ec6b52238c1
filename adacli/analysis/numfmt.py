"""Numbers as every table shows them: fixed significant digits, no negative zero, marked clipping.

One module so that the terminal, Markdown and HTML tables cannot disagree about how a number looks:

* a value is shown with ``sig`` significant digits (3 by default), but an integer part is never rounded
  away (``1234`` stays ``1234``, ``97.46`` is ``97.5``, ``0.03521`` is ``0.0352``);
* an estimate with an interval takes its decimals from the interval's half-width (2 significant digits of
  the uncertainty, so ``+0.5 [-1.5, +0.6]`` rather than ``+0.4821 [-1.5432, +0.5893]``), and a difference
  that is zero but for rounding noise (``4.7e-15``) prints as ``0.0``, not as ``4.737e-15``;
* a rounded zero never carries a sign (``-0.0`` is ``0.0``);
* an interval end cut at the metric's range (:func:`adacli.analysis.stats.clip_interval`) carries
  ``CLIP_MARK``;
* None / NaN print as ``–``, infinities as ``∞``.

Pure: no adacli imports.
"""

from __future__ import annotations

import math

MISSING = "–"
CLIP_MARK = "†"  # an interval end cut at the metric's range (accuracy 100, times 0)
MAX_DECIMALS = 6


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def decimals_for(x: float | None, sig: int = 3) -> int:
    """Decimals that show ``x`` with ``sig`` significant digits, never fewer than 0 (integers whole)."""
    if _bad(x) or x == 0 or not math.isfinite(x):  # type: ignore[arg-type]
        return 0
    return min(MAX_DECIMALS, max(0, sig - 1 - math.floor(math.log10(abs(x)))))  # type: ignore[arg-type]


def fixed(x: float | None, decimals: int, *, signed: bool = False) -> str:
    """``x`` with exactly ``decimals`` decimals; a rounded zero has no sign; ``signed`` adds ``+``."""
    if _bad(x):
        return MISSING
    if not math.isfinite(x):  # type: ignore[arg-type]
        return "∞" if x > 0 else "-∞"  # type: ignore[operator]
    text = f"{x:.{max(0, decimals)}f}"
    if text.lstrip("-").strip("0.") == "":  # every shown digit is zero: no sign at all
        return text.lstrip("-")
    return f"+{text}" if signed and not text.startswith("-") else text


def sig(x: float | None, digits: int = 3, *, signed: bool = False) -> str:
    """``x`` with ``digits`` significant digits (integer part kept whole); below ``10**-MAX_DECIMALS``:
    ``0`` (a difference of ``4.7e-15`` is rounding noise, not a figure)."""
    if not _bad(x) and math.isfinite(x) and abs(x) < 0.5 * 10.0**-MAX_DECIMALS:  # type: ignore[arg-type]
        return "0"
    return fixed(x, decimals_for(x, digits), signed=signed)


def short(x: float | None, digits: int = 3) -> str:
    """At most ``digits`` significant digits, trailing zeros dropped (a margin: ``0.5``, ``5``, ``0.02``)."""
    if _bad(x) or not math.isfinite(x):  # type: ignore[arg-type]
        return sig(x)
    text = f"{x:.{digits}g}"
    if "e" in text:
        text = fixed(x, decimals_for(x, digits))
    return "0" if float(text) == 0 else text


def interval_decimals(lo: float | None, hi: float | None, digits: int = 2) -> int:
    """Decimals for an estimate and its interval: ``digits`` significant digits of the half-width."""
    if _bad(lo) or _bad(hi) or not math.isfinite(lo) or not math.isfinite(hi):  # type: ignore[arg-type]
        return 1
    half = (hi - lo) / 2.0  # type: ignore[operator]
    if half <= 0:
        return decimals_for(max(abs(lo), abs(hi)), 3) if (lo or hi) else 1  # type: ignore[arg-type]
    return decimals_for(half, digits)


def interval(
    lo: float | None,
    hi: float | None,
    decimals: int,
    *,
    signed: bool = False,
    clipped: tuple[bool, bool] = (False, False),
) -> str:
    """``[lo, hi]`` with ``decimals`` decimals, an end cut at the range marked with ``CLIP_MARK``."""
    left = fixed(lo, decimals, signed=signed) + (CLIP_MARK if clipped[0] else "")
    right = fixed(hi, decimals, signed=signed) + (CLIP_MARK if clipped[1] else "")
    return f"[{left}, {right}]"


def estimate(
    value: float | None,
    lo: float | None,
    hi: float | None,
    *,
    signed: bool = True,
    digits: int = 2,
    clipped: tuple[bool, bool] = (False, False),
) -> str:
    """``+0.5 [-1.5, +0.6]``: an estimate and its interval with decimals from the interval's width."""
    if _bad(lo) or _bad(hi):
        return sig(value, 3, signed=signed)
    d = interval_decimals(lo, hi, digits)
    return f"{fixed(value, d, signed=signed)} {interval(lo, hi, d, signed=signed, clipped=clipped)}"


def ratio(value: float | None, lo: float | None = None, hi: float | None = None, *, digits: int = 2) -> str:
    """``1.7× [1.5, 1.9]``: a ratio (speed-up) with its interval, 2 significant digits of the width."""
    if _bad(value):
        return MISSING
    if _bad(lo) or _bad(hi):
        return f"{sig(value, 3)}×"
    d = max(1, interval_decimals(lo, hi, digits))
    return f"{fixed(value, d)}× {interval(lo, hi, d)}"


def pvalue(p: float | None) -> str:
    """``p < 0.001`` below a thousandth, else 2 significant digits (``0.013``, ``0.25``, ``1.0``)."""
    if _bad(p):
        return MISSING
    if p < 0.001:  # type: ignore[operator]
        return "<0.001"
    return sig(p, 2) if p < 1.0 else "1.0"  # type: ignore[operator]
