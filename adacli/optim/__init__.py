"""Optimizers adacli ships, and the registry that resolves any optimizer name a recipe may use."""

from adacli.optim.adabelief import AdaBelief

__all__ = ["AdaBelief"]
