"""results.json's ``environment``: what a result depends on besides the recipe."""

from __future__ import annotations

import json

from adacli.run.environment import environment_info


def test_environment_info_cpu():
    info = environment_info("cpu")
    for key in ("python", "torch", "timm", "adacli", "device", "device_name", "torch_threads", "platform"):
        assert key in info
    assert info["device"] == "cpu" and info["torch_threads"] >= 1 and info["timm"]
    json.dumps(info)
