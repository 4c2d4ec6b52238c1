"""Datasets: every loader on files in its real on-disk format (written here), splits, determinism."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from adacli.errors import InputError
from adacli.recipe import DATASETS, DatasetSpec
from adacli.train import data as data_mod
from adacli.train.data import check_dataset_files, dataset_names, dataset_shape, load_data


def _raw01(bundle, split: str) -> torch.Tensor:
    """A split's images back in [0, 1] (undo the normalization; no resize when image_size is native)."""
    xs = torch.cat([x for x, _ in bundle.eval_batches(split, 64, "cpu")])
    return xs * bundle._std + bundle._mean


def _labels(bundle, split: str) -> torch.Tensor:
    return torch.cat([y for _, y in bundle.eval_batches(split, 64, "cpu")])


def _images(n: int, c: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, size, size), dtype=np.uint8)


def test_names_cover_the_recipe():
    assert dataset_names() == list(DATASETS)


def test_digits_splits_and_shape():
    b = load_data(DatasetSpec(name="digits", image_size=16))
    assert (b.num_classes, b.in_chans, b.image_size) == (10, 1, 16)
    assert dataset_shape(DatasetSpec(name="digits", image_size=16)) == (10, 1, 16)
    n_test, n_train, n_val = b.split_size("test"), b.split_size("train"), b.split_size("val")
    assert n_test + n_train + n_val == 1797
    assert abs(n_test - 360) <= 2 and abs(n_val - round(0.1 * (n_train + n_val))) <= 1
    assert b.split_size("train_eval") == n_test  # as large as the test split
    x, y = next(b.train_batches(64, seed=0, device="cpu"))
    assert x.shape == (64, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.3 and 0.5 < float(x.std()) < 1.5  # normalized
    assert set(_labels(b, "test").tolist()) == set(range(10))


def test_train_batches_deterministic_reshuffled_and_fair():
    spec = DatasetSpec(name="synthetic", image_size=8, train_size=100, test_size=20, val_fraction=0.0)
    b = load_data(spec, seed=3)
    assert b.steps_per_epoch(32) == 3  # the partial last batch is dropped: equal-sized steps
    it1, it2 = b.train_batches(32, seed=7, device="cpu"), b.train_batches(32, seed=7, device="cpu")
    first = [next(it1) for _ in range(6)]
    again = [next(it2) for _ in range(6)]
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = next(b.train_batches(32, seed=8, device="cpu"))
    assert not torch.equal(other[0], first[0][0])
    # within an epoch no image repeats; the next epoch is a different order
    epoch1 = torch.cat([x for x, _ in first[:3]]).flatten(1)
    assert torch.unique(epoch1, dim=0).shape[0] == 96
    epoch2 = torch.cat([x for x, _ in first[3:]]).flatten(1)
    assert not torch.equal(epoch1, epoch2)


def test_synthetic_is_deterministic_and_class_conditional():
    spec = DatasetSpec(
        name="synthetic", num_classes=4, channels=2, image_size=12, train_size=400, test_size=200
    )
    a, b = load_data(spec, seed=1), load_data(spec, seed=1)
    assert torch.equal(_raw01(a, "test"), _raw01(b, "test"))
    c = load_data(spec, seed=2)
    assert not torch.equal(_raw01(a, "test"), _raw01(c, "test"))
    assert (a.num_classes, a.in_chans, a.image_size) == (4, 2, 12)
    # a nearest-class-mean classifier learns it: the images carry their class
    xtr, ytr = torch.cat([x for x, _ in a.eval_batches("train", 64, "cpu")]).flatten(1), _labels(a, "train")
    means = torch.stack([xtr[ytr == k].mean(0) for k in range(4)])
    xte, yte = torch.cat([x for x, _ in a.eval_batches("test", 64, "cpu")]).flatten(1), _labels(a, "test")
    acc = (torch.cdist(xte, means).argmin(1) == yte).float().mean()
    assert acc > 0.6
    # difficulty: more noise, a harder problem
    hard = load_data(spec.model_copy(update={"difficulty": 8.0}), seed=1)
    xh = torch.cat([x for x, _ in hard.eval_batches("test", 64, "cpu")]).flatten(1)
    acc_hard = (torch.cdist(xh, means).argmin(1) == _labels(hard, "test")).float().mean()
    assert acc_hard < acc


def test_augmentation_on_device_deterministic():
    spec = DatasetSpec(name="synthetic", image_size=16, train_size=64, test_size=16, val_fraction=0.0)
    plain = load_data(spec)
    aug = load_data(spec.model_copy(update={"augment": True}))
    xp, yp = next(plain.train_batches(64, seed=0, device="cpu"))
    xa, ya = next(aug.train_batches(64, seed=0, device="cpu"))
    xa2, _ = next(aug.train_batches(64, seed=0, device="cpu"))
    assert torch.equal(ya, yp) and torch.equal(xa, xa2) and not torch.equal(xa, xp)
    assert xa.shape == xp.shape
    # evaluation never augments
    assert torch.equal(_raw01(plain, "test"), _raw01(aug, "test"))


def _write_cifar(root: Path, n_per_batch: int, hundred: bool = False) -> dict:
    written = {}
    if hundred:
        base = root / "cifar-100-python"
        names, key = ["train", "test"], "fine_labels"
    else:
        base = root / "cifar-10-batches-py"
        names, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels"
    base.mkdir(parents=True)
    for i, name in enumerate(names):
        imgs = _images(n_per_batch, 3, 32, seed=i)
        labels = list(np.random.default_rng(100 + i).integers(0, 100 if hundred else 10, n_per_batch))
        entry = {"batch_label": name, "data": imgs.reshape(n_per_batch, 3072), key: labels}
        if hundred:
            entry["coarse_labels"] = [lbl // 5 for lbl in labels]
        with open(base / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        written[name] = (imgs, labels)
    return written


def test_cifar10_python_batches(tmp_path):
    w = _write_cifar(tmp_path, 8)
    spec = DatasetSpec(name="cifar10", root=str(tmp_path), val_fraction=0.0)
    check_dataset_files(spec)
    b = load_data(spec)
    assert (b.num_classes, b.in_chans, b.image_size) == (10, 3, 32)
    assert b.split_size("train") == 40 and b.split_size("test") == 8
    test_imgs, test_labels = w["test_batch"]
    assert torch.allclose(_raw01(b, "test") * 255, torch.from_numpy(test_imgs).float(), atol=1e-3)
    assert _labels(b, "test").tolist() == [int(v) for v in test_labels]
    # train holds the five batches in order (val_fraction 0: nothing held out)
    train_imgs = np.concatenate([w[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert torch.allclose(_raw01(b, "train") * 255, torch.from_numpy(train_imgs).float(), atol=1e-3)


def test_cifar100_fine_labels_and_caps(tmp_path):
    w = _write_cifar(tmp_path, 30, hundred=True)
    b = load_data(DatasetSpec(name="cifar100", root=str(tmp_path), val_fraction=0.0, train_size=20))
    assert b.num_classes == 100 and b.split_size("train") == 20 and b.split_size("test") == 30
    assert _labels(b, "test").tolist() == [int(v) for v in w["test"][1]]


def test_missing_files_name_root_and_files(tmp_path):
    spec = DatasetSpec(name="cifar10", root=str(tmp_path / "nothing"))
    for call in (lambda: check_dataset_files(spec), lambda: load_data(spec)):
        with pytest.raises(InputError) as e:
            call()
        msg = str(e.value)
        assert str(tmp_path / "nothing") in msg and "cifar-10-batches-py/data_batch_1" in msg
        assert "download: true" in msg and e.value.exit_code == 2
    for name in ("mnist", "fashion_mnist", "svhn", "cifar100"):
        with pytest.raises(InputError, match="files missing"):
            check_dataset_files(DatasetSpec(name=name, root=str(tmp_path)))
    # download on: no error up front (the files will be fetched)
    check_dataset_files(DatasetSpec(name="cifar10", root=str(tmp_path), download=True))


def test_failed_download_is_input_error(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(InputError) as e:
        load_data(DatasetSpec(name="cifar10", root=str(tmp_path), download=True))
    assert "download failed" in str(e.value) and "Name or service not known" in str(e.value)


def _write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize(
    ("name", "folder", "gz"), [("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)]
)
def test_mnist_idx_files(tmp_path, name, folder, gz):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    ytr, yte = rng.integers(0, 10, 30), rng.integers(0, 10, 10)
    _write_idx(raw / "train-images-idx3-ubyte", xtr, gz)
    _write_idx(raw / "train-labels-idx1-ubyte", ytr, gz)
    _write_idx(raw / "t10k-images-idx3-ubyte", xte, gz)
    _write_idx(raw / "t10k-labels-idx1-ubyte", yte, gz)
    spec = DatasetSpec(name=name, root=str(tmp_path), val_fraction=0.0)
    check_dataset_files(spec)
    b = load_data(spec)
    assert (b.in_chans, b.image_size, b.split_size("train")) == (1, 28, 30)
    assert torch.allclose(_raw01(b, "test")[:, 0] * 255, torch.from_numpy(xte).float(), atol=1e-3)
    assert _labels(b, "test").tolist() == yte.tolist()


def test_bad_idx_file_is_input_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (raw / f).write_bytes(b"not an idx file")
    with pytest.raises(InputError, match="IDX"):
        load_data(DatasetSpec(name="mnist", root=str(tmp_path)))


def test_svhn_mat_files(tmp_path):
    import scipy.io

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        x = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 1..10, 10 meaning digit 0
        y[0, 0] = 10
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        if split == "test":
            xte, yte = x, y
    b = load_data(DatasetSpec(name="svhn", root=str(tmp_path), val_fraction=0.0))
    assert (b.in_chans, b.split_size("train"), b.split_size("test")) == (3, 12, 6)
    labels = _labels(b, "test").tolist()
    assert labels[0] == 0 and labels == [int(v) % 10 for v in yte[:, 0]]
    want = torch.from_numpy(np.transpose(xte, (3, 2, 0, 1)).astype(np.float32))
    assert torch.allclose(_raw01(b, "test") * 255, want, atol=1e-3)


def _write_folder(root: Path, classes=("cat", "dog", "eel"), n=(6, 2), size=10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), n, strict=True):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(count):
                arr = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


def test_imagefolder_pngs(tmp_path):
    from PIL import Image

    _write_folder(tmp_path)
    spec = DatasetSpec(name="imagefolder", root=str(tmp_path), val_fraction=0.0)
    assert dataset_shape(spec) == (3, 3, 10)
    b = load_data(spec)
    assert b.class_names == ["cat", "dog", "eel"] and b.num_classes == 3 and b.in_chans == 3
    assert b.split_size("train") == 18 and b.split_size("test") == 6
    first = np.array(Image.open(tmp_path / "test" / "cat" / "0.png"))
    assert torch.allclose(
        _raw01(b, "test")[0] * 255, torch.from_numpy(first).permute(2, 0, 1).float(), atol=1e-3
    )
    assert _labels(b, "test").tolist() == [0, 0, 1, 1, 2, 2]
    resized = load_data(spec.model_copy(update={"image_size": 6}))
    assert next(resized.train_batches(4, 0, "cpu"))[0].shape == (4, 3, 6, 6)


def test_imagefolder_streams_the_same_batches(tmp_path, monkeypatch):
    _write_folder(tmp_path)
    spec = DatasetSpec(name="imagefolder", root=str(tmp_path), val_fraction=0.0, augment=True)
    memory = load_data(spec)
    monkeypatch.setattr(data_mod, "STREAM_BYTES", 0)
    monkeypatch.setattr(data_mod, "LOADER_WORKERS", 0)
    stream = load_data(spec)
    assert stream.streaming and not memory.streaming
    a, b = memory.train_batches(5, 1, "cpu"), stream.train_batches(5, 1, "cpu")
    for _ in range(4):
        (xa, ya), (xb, yb) = next(a), next(b)
        # same pixels, same crops and flips (normalization statistics differ: streamed folders use
        # ImageNet's instead of a pass over the data)
        pa, pb = xa * memory._std + memory._mean, xb * stream._std + stream._mean
        assert torch.equal(ya, yb) and torch.allclose(pa, pb, atol=1e-4, rtol=0)
    assert sum(len(y) for _, y in stream.eval_batches("test", 4, "cpu")) == 6


def test_imagefolder_layout_errors(tmp_path):
    with pytest.raises(InputError, match="train/ and test/"):
        check_dataset_files(DatasetSpec(name="imagefolder", root=str(tmp_path)))
    _write_folder(tmp_path)
    (tmp_path / "test" / "fox").mkdir()
    with pytest.raises(InputError, match="fox"):
        load_data(DatasetSpec(name="imagefolder", root=str(tmp_path)))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    spec = DatasetSpec(name="synthetic", image_size=16, train_size=96, test_size=32, augment=True)
    b = load_data(spec)
    cpu, gpu = b.train_batches(32, 3, "cpu"), b.train_batches(32, 3, "cuda")
    for _ in range(5):  # crosses an epoch boundary
        (xc, yc), (xg, yg) = next(cpu), next(gpu)
        assert xg.is_cuda and torch.equal(yc, yg.cpu()) and torch.allclose(xc, xg.cpu(), atol=1e-5)
    xe = torch.cat([x.cpu() for x, _ in b.eval_batches("test", 10, "cuda")])
    assert torch.allclose(xe, torch.cat([x for x, _ in b.eval_batches("test", 10, "cpu")]), atol=1e-5)


def test_describe_records_every_split():
    spec = DatasetSpec(
        name="synthetic", image_size=8, num_classes=3, channels=1, train_size=100, test_size=30
    )
    d = load_data(spec).describe()
    assert d["name"] == "synthetic" and d["num_classes"] == 3 and d["in_chans"] == 1 and d["image_size"] == 8
    assert d["test_size"] == 30 and d["train_size"] + d["val_size"] == 100 and d["train_eval_size"] > 0
