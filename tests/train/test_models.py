"""Models: timm by name, sized by the dataset; bad names and kwargs are one-line input errors."""

from __future__ import annotations

import pytest
import torch

from adacli.errors import InputError
from adacli.recipe import ModelSpec
from adacli.train.models import check_model_name, create_model, model_names


def test_cnn_sized_by_dataset():
    m = create_model(ModelSpec(name="test_resnet"), num_classes=7, in_chans=1, image_size=16)
    assert m(torch.randn(2, 1, 16, 16)).shape == (2, 7)


def test_vit_gets_img_size():
    m = create_model(
        ModelSpec(name="test_vit", kwargs={"patch_size": 4}), num_classes=3, in_chans=3, image_size=16
    )
    assert m.patch_embed.img_size == (16, 16)
    assert m(torch.randn(1, 3, 16, 16)).shape == (1, 3)


def test_same_seed_same_weights():
    spec = ModelSpec(name="test_resnet")
    torch.manual_seed(5)
    a = create_model(spec, num_classes=10, in_chans=1, image_size=16)
    torch.manual_seed(5)
    b = create_model(spec, num_classes=10, in_chans=1, image_size=16)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_unknown_model_suggests():
    with pytest.raises(InputError) as e:
        check_model_name("resnet_18")
    assert e.value.suggestion in ("resnet18", "resnet10")
    with pytest.raises(InputError) as e:
        create_model(ModelSpec(name="tset_resnet"), num_classes=2, in_chans=1, image_size=8)
    assert e.value.suggestion == "test_resnet"


def test_bad_kwargs_are_input_errors():
    with pytest.raises(InputError, match="bogus_option"):
        create_model(
            ModelSpec(name="test_resnet", kwargs={"bogus_option": 1}), num_classes=2, in_chans=1, image_size=8
        )


def test_model_names_pattern():
    names = model_names("test_")
    assert "test_resnet" in names and "test_vit" in names and all("test_" in n for n in names)
    assert model_names("*vit_tiny*") and len(model_names()) > 500
