"""adacli: compare deep-learning optimizers from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AdaBelief", "__version__"]

if TYPE_CHECKING:
    from adacli.optim.adabelief import AdaBelief


def __getattr__(name: str) -> Any:
    """``adacli.AdaBelief`` on first use (PEP 562): importing the package must not import torch.

    Commands that only read JSON (``adacli gate``, ``adacli report``) then start in a fraction of a second.
    """
    if name == "AdaBelief":
        from adacli.optim.adabelief import AdaBelief

        return AdaBelief
    raise AttributeError(f"module 'adacli' has no attribute {name!r}")
