"""Optimizers adacli ships, and the registry that resolves any optimizer name a recipe may use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AdaBelief"]

if TYPE_CHECKING:
    from adacli.optim.adabelief import AdaBelief


def __getattr__(name: str) -> Any:
    """``adacli.optim.AdaBelief`` on first use: the registry's name tables need no torch import."""
    if name == "AdaBelief":
        from adacli.optim.adabelief import AdaBelief

        return AdaBelief
    raise AttributeError(f"module 'adacli.optim' has no attribute {name!r}")
