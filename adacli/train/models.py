"""Models: any timm model by name, sized by the dataset.

The recipe names the architecture; the dataset decides ``num_classes``, ``in_chans`` and the image size,
so one recipe line works for digits (1 channel, 8x8) and CIFAR (3 channels, 32x32) alike. Models that
take an ``img_size`` (ViTs, Swin, ...) get the dataset's, so their patch grid and position embeddings fit.

Weights come from the global torch RNG: the caller seeds it (``torch.manual_seed(seed)``) right before
:func:`create_model`, which is how every optimizer of a seed starts from the same weights.
``channels_last`` and ``compile`` from the model spec are applied by the trial (the inputs must match the
memory format, and compilation belongs to the run), not here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch.nn as nn

from adacli.errors import InputError, closest
from adacli.recipe import ModelSpec


@lru_cache(maxsize=1)
def _all_models() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def model_names(pattern: str | None = None) -> list[str]:
    """timm model names, optionally filtered by a pattern (``*vit*``; a plain word matches anywhere)."""
    import timm

    if not pattern:
        return list(_all_models())
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return list(timm.list_models(pattern))


def check_model_name(name: str) -> None:
    """InputError with the closest timm name when ``name`` is not a timm model (cheap: no construction)."""
    import timm

    if timm.is_model(name):
        return
    raise InputError(
        f"unknown timm model {name!r} (see `adacli list models`)", suggestion=closest(name, _all_models())
    )


def create_model(spec: ModelSpec, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """``timm.create_model(spec.name, pretrained=False, num_classes, in_chans, img_size?, **spec.kwargs)``.

    ``img_size`` is passed when the model accepts it (tried first, dropped if the constructor rejects
    it); ``spec.kwargs`` override everything else. Bad names or kwargs raise InputError.
    """
    import timm

    check_model_name(spec.name)
    kwargs: dict[str, Any] = {"pretrained": False, "num_classes": num_classes, "in_chans": in_chans}
    kwargs.update(spec.kwargs)
    try_img_size = "img_size" not in spec.kwargs
    if try_img_size:
        try:
            return timm.create_model(spec.name, img_size=image_size, **kwargs)
        except TypeError as e:
            if "img_size" not in str(e):
                raise _bad_kwargs(spec, e) from e
        except Exception as e:  # whatever timm or torch raises (KeyError, OSError, ...): bad input
            raise _bad_kwargs(spec, e, image_size=image_size) from e
    try:
        return timm.create_model(spec.name, **kwargs)
    except Exception as e:
        raise _bad_kwargs(spec, e, image_size=image_size) from e


def _bad_kwargs(spec: ModelSpec, e: BaseException, image_size: int | None = None) -> InputError:
    text = " ".join(str(e).split())[:300]
    msg = f"{type(e).__name__}: {text}" if text else type(e).__name__
    size = f" at image_size {image_size}" if image_size else ""
    return InputError(
        f"timm model {spec.name!r} cannot be built{size} with kwargs {spec.kwargs}: {msg}",
        field="model.kwargs",
    )
