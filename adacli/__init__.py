"""adacli: compare deep-learning optimizers from the command line."""

__version__ = "0.1.0"

from adacli.optim.adabelief import AdaBelief

__all__ = ["AdaBelief", "__version__"]
