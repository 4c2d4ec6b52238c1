"""Fixtures of the train stage's tests: a tiny synthetic dataset and the seed-0 test_resnet on it."""

from __future__ import annotations

import pytest

from adacli.recipe import DatasetSpec, ModelSpec
from adacli.train.data import load_data
from adacli.train.trial import initial_model


@pytest.fixture(scope="module")
def data():
    """Synthetic 8 px, 4 classes, 256 train / 64 test images: a few steps take a fraction of a second."""
    spec = DatasetSpec(
        name="synthetic", image_size=8, num_classes=4, channels=1, train_size=256, test_size=64
    )
    return load_data(spec)


@pytest.fixture(scope="module")
def model0(data):
    """The seed-0 initial test_resnet for ``data`` (trials train copies of it)."""
    return initial_model(ModelSpec(name="test_resnet"), data, seed=0)
