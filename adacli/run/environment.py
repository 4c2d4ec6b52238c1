"""What a result depends on besides the recipe: versions, device, threads, platform (results.json's
``environment``), gathered once at the start of a run."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from adacli import __version__


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment_info(device: Any) -> dict[str, Any]:
    """What a result depends on besides the recipe: versions, device, threads, platform.

    ``device`` is a torch.device or a string such as ``"cpu"`` or ``"cuda:0"``.
    """
    import importlib.metadata as md

    import torch

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(dev)
    elif dev.type == "mps":
        name = f"Apple MPS ({platform.machine()})"
    else:
        name = _cpu_name()
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": version("timm"),
        "adacli": __version__,  # the code that ran, installed or not
        "numpy": version("numpy"),
        "device": str(dev),
        "device_name": name,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "argv": sys.argv[1:],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return info


__all__ = ["environment_info"]
