"""Datasets as batches on the device: splits, deterministic shuffling and on-device augmentation.

Why not a plain ``DataLoader`` everywhere: for the small image sets an optimizer comparison runs on
(digits, MNIST, CIFAR), the loader's per-batch Python and collation cost is comparable to a small model's
step, and it would be charged to whichever optimizer happens to run. So small datasets are stored once as
``uint8`` tensors on the device (CIFAR-10 is 150 MB) and batches are index gathers; conversion to float,
augmentation (random crop with padding + horizontal flip), resizing and normalization happen per batch on
the device. Large image folders stream through a ``DataLoader`` whose workers only decode and resize
(deterministically); the random parts still happen in the main process from the trial's seed.

Determinism and fairness: ``train_batches(batch_size, seed, device)`` draws every epoch's permutation and
every augmentation parameter from a CPU generator seeded by ``seed``, so the same seed gives the same
batches in the same order on any device, for every optimizer.

Splits (fixed, independent of the trial seed, so runs with different seeds compare the same data):
``test`` is the dataset's test split; ``val`` is ``val_fraction`` of the training set held out (for sweeps);
``train`` is the rest; ``train_eval`` is a fixed subset of ``train`` of ``min(test size, train size,
TRAIN_EVAL_MAX)`` images (2048: on CIFAR the gap's training side is 2,048 images, not 10,000, and an
evaluation costs 1.2 test passes instead of 2), evaluated without augmentation (the train side of the
generalization gap); the same images for every seed and run.

On-disk formats follow torchvision's layout exactly, so a folder torchvision downloaded works here and
``download: true`` uses torchvision's downloader; reading uses small readers of our own (no hard-coded
checksum checks, so files a user converted or a test wrote load too):

- cifar10: ``ROOT/cifar-10-batches-py/data_batch_1..5, test_batch`` (python pickles)
- cifar100: ``ROOT/cifar-100-python/train, test`` (python pickles, fine labels)
- mnist / fashion_mnist: ``ROOT/MNIST/raw`` / ``ROOT/FashionMNIST/raw``: ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (``.gz`` accepted)
- svhn: ``ROOT/train_32x32.mat``, ``ROOT/test_32x32.mat`` (MATLAB; label 10 means digit 0)
- imagefolder: ``ROOT/train/<class>/<image>``, ``ROOT/test/<class>/<image>``
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from adacli.errors import InputError
from adacli.recipe import DATASETS, DatasetSpec

Split = Literal["train", "train_eval", "val", "test"]

DEFAULT_ROOT = "data"  # relative to the working directory, like torchvision's examples
SPLIT_SEED = 20240917  # fixed: the splits must not change with the trial seed
TRAIN_EVAL_MAX = 2048  # the train-eval subset's size at most (see the module docstring)
STREAM_BYTES = 1 << 30  # an image folder larger than this (as uint8 at image_size) streams from disk
LOADER_WORKERS = min(8, os.cpu_count() or 1)  # decoding processes for streamed image folders
_GRAY_MODES = ("L", "1", "I;16", "I", "F")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")

DATASET_INFO: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes); offline",
    "synthetic": "procedural class-conditional images, deterministic by seed; size/classes/difficulty set",
    "cifar10": "CIFAR-10, 32x32 RGB, 10 classes; ROOT/cifar-10-batches-py (download: true fetches it)",
    "cifar100": "CIFAR-100, 32x32 RGB, 100 fine classes; ROOT/cifar-100-python (download: true)",
    "mnist": "MNIST, 28x28 grayscale, 10 classes; ROOT/MNIST/raw idx files (download: true)",
    "fashion_mnist": "Fashion-MNIST, 28x28 grayscale, 10 classes; ROOT/FashionMNIST/raw (download: true)",
    "svhn": "SVHN, 32x32 RGB house numbers, 10 classes; ROOT/{train,test}_32x32.mat (download: true)",
    "imagefolder": "your images: ROOT/train/<class>/*.png|jpg, ROOT/test/<class>/*; large ones stream",
}

# Where a horizontal flip keeps the class (augment on digits/MNIST crops only: a mirrored 7 is no 7).
FLIP_OK = {"cifar10", "cifar100", "fashion_mnist", "imagefolder", "synthetic"}


def dataset_names() -> list[str]:
    """Every dataset name a recipe may use."""
    return list(DATASETS)


# --- raw data -----------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """A dataset as loaded: uint8 images (N, C, H, W) on the CPU, int64 labels, or files to stream."""

    x_train: Tensor | None
    y_train: Tensor
    x_test: Tensor | None
    y_test: Tensor
    num_classes: int
    in_chans: int
    native_size: int
    files_train: list[str] | None = None  # streaming image folder
    files_test: list[str] | None = None
    class_names: list[str] | None = None


def _missing(name: str, root: Path, expected: Sequence[str], why: str = "") -> InputError:
    shown = ", ".join(expected)
    hint = why or "set download: true in the recipe's dataset to fetch it, or put the files there"
    return InputError(
        f"dataset {name!r}: files missing under {str(root)!r} (expected {shown}); {hint}",
        field="dataset.root",
    )


def _download(name: str, root: Path, expected: Sequence[str]) -> None:
    """Fetch a torchvision dataset into ``root`` with torchvision's own downloader (checksummed)."""
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        if name == "cifar10":
            tvd.CIFAR10(str(root), train=True, download=True)
            tvd.CIFAR10(str(root), train=False, download=True)
        elif name == "cifar100":
            tvd.CIFAR100(str(root), train=True, download=True)
            tvd.CIFAR100(str(root), train=False, download=True)
        elif name == "mnist":
            tvd.MNIST(str(root), train=True, download=True)
        elif name == "fashion_mnist":
            tvd.FashionMNIST(str(root), train=True, download=True)
        elif name == "svhn":
            tvd.SVHN(str(root), split="train", download=True)
            tvd.SVHN(str(root), split="test", download=True)
    except Exception as e:  # no network, proxy, disk full, checksum mismatch: all bad input for the user
        msg = " ".join(str(e).split())[:200] or type(e).__name__
        raise _missing(
            name, root, expected, why=f"download failed ({msg}); put the files there by hand"
        ) from e


def expected_files(name: str, root: Path) -> list[Path]:
    """The files a downloadable dataset needs under ``root`` (torchvision's layout)."""
    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        return [base / f"data_batch_{i}" for i in range(1, 6)] + [base / "test_batch"]
    if name == "cifar100":
        base = root / "cifar-100-python"
        return [base / "train", base / "test"]
    if name in ("mnist", "fashion_mnist"):
        base = root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        return [
            base / f
            for f in (
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            )
        ]
    if name == "svhn":
        return [root / "train_32x32.mat", root / "test_32x32.mat"]
    return []


def _exists(path: Path) -> bool:
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def check_dataset_files(spec: DatasetSpec) -> None:
    """Raise InputError when a dataset's files are not there and will not be downloaded.

    Called by ``check_environment`` before any training; cheap (existence checks only).
    """
    name = spec.name
    if name in ("digits", "synthetic"):
        return
    root = Path(spec.root or DEFAULT_ROOT).expanduser()
    if name == "imagefolder":
        _imagefolder_classes(spec)
        return
    files = expected_files(name, root)
    missing = [f for f in files if not _exists(f)]
    if missing and not spec.download:
        raise _missing(name, root, [str(f.relative_to(root)) for f in files])


_SHAPES = {  # name -> (num_classes, in_chans, native image size)
    "digits": (10, 1, 8),
    "cifar10": (10, 3, 32),
    "cifar100": (100, 3, 32),
    "mnist": (10, 1, 28),
    "fashion_mnist": (10, 1, 28),
    "svhn": (10, 3, 32),
}


#: dataset keys that set a synthetic dataset's shape; for a real one they must agree with the data
SYNTHETIC_ONLY = ("num_classes", "channels", "difficulty")


def shape_contradiction(spec: DatasetSpec) -> tuple[str, str] | None:
    """``(key, message)`` when a dataset key contradicts the data it names, else None.

    ``num_classes``, ``channels`` and ``difficulty`` make a synthetic dataset; for digits, CIFAR and the
    others the data decides, so a different value would be silently ignored while the recipe (and every
    result) claims it: refused, naming both. A value equal to the data's is accepted.
    """
    if spec.name in ("synthetic", "imagefolder") or spec.name not in _SHAPES:
        return None
    classes, chans, _ = _SHAPES[spec.name]
    if spec.num_classes is not None and spec.num_classes != classes:
        return "num_classes", f"{spec.num_classes}, but dataset {spec.name} has {classes} classes"
    if spec.channels is not None and spec.channels != chans:
        return "channels", f"{spec.channels}, but dataset {spec.name} has {chans} channel(s)"
    if spec.difficulty is not None:
        return "difficulty", f"only a synthetic dataset has a difficulty; {spec.name} is real data"
    return None


def synthetic_bytes(spec: DatasetSpec, batch_size: int) -> int:
    """Memory a synthetic dataset needs: its uint8 images, the float sample its normalisation takes, and
    one float training batch (0 for other datasets, whose size is what is on disk)."""
    if spec.name != "synthetic":
        return 0
    _, chans, size = dataset_shape(spec)
    n_train, n_test = spec.train_size or 2048, spec.test_size or 512
    pixels = chans * size * size
    return pixels * (n_train + n_test) + 4 * pixels * (min(n_train, 10_000) + min(batch_size, n_train))


def dataset_shape(spec: DatasetSpec) -> tuple[int, int, int]:
    """(num_classes, in_chans, image_size) without loading the data: what sizes the model.

    Lets ``check_environment`` build the model (on the meta device) before any data is read.
    """
    if spec.name == "synthetic":
        return spec.num_classes or 10, spec.channels or 3, spec.image_size or 32
    if spec.name == "imagefolder":
        from PIL import Image

        root, classes = _imagefolder_classes(spec)
        files, _ = _list_images(root / "train", classes)
        if not files:
            raise InputError(f"imagefolder {str(root)!r}: no images in train/<class>/", field="dataset.root")
        try:
            with Image.open(files[0]) as im:
                gray = im.mode in _GRAY_MODES
                size = spec.image_size or min(im.size)
        except Exception as e:
            raise InputError(f"cannot read image {files[0]!r}: {e}", field="dataset.root") from e
        return len(classes), 1 if gray else 3, size
    classes, chans, size = _SHAPES[spec.name]
    return classes, chans, spec.image_size or size


def _ensure_files(name: str, spec: DatasetSpec) -> Path:
    root = Path(spec.root or DEFAULT_ROOT).expanduser()
    files = expected_files(name, root)
    rel = [str(f.relative_to(root)) for f in files]
    if any(not _exists(f) for f in files):
        if not spec.download:
            raise _missing(name, root, rel)
        _download(name, root, rel)
        if any(not _exists(f) for f in files):
            raise _missing(name, root, rel, why="download finished but the files are not there")
    return root


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:
        raise InputError(
            f"cannot read {str(path)!r} as a CIFAR python batch: {e}", field="dataset.root"
        ) from e


def _load_cifar(name: str, spec: DatasetSpec) -> _Raw:
    root = _ensure_files(name, spec)
    files = expected_files(name, root)
    key = "labels" if name == "cifar10" else "fine_labels"
    parts = [_unpickle(f) for f in files]
    train, test = parts[:-1], parts[-1]

    def stack(batches: list[dict]) -> tuple[Tensor, Tensor]:
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
        labels = np.concatenate([np.asarray(b[key], dtype=np.int64) for b in batches])
        return torch.from_numpy(data), torch.from_numpy(labels)

    x_train, y_train = stack(train)
    x_test, y_test = stack([test])
    return _Raw(x_train, y_train, x_test, y_test, 10 if name == "cifar10" else 100, 3, 32)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format): magic 0x0000 <type 0x08> <ndim>, big-endian dims, then uint8 data."""
    opener = open
    if not path.is_file():
        path, opener = path.with_name(path.name + ".gz"), gzip.open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError(f"bad magic {data[:4].hex()} (expected 0000 08 nn: unsigned bytes)")
        dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if arr.size != math.prod(dims):
            raise ValueError(f"{arr.size} bytes of data for shape {dims}")
        return arr.reshape(dims)
    except (OSError, ValueError, struct.error) as e:
        raise InputError(f"cannot read {str(path)!r} as an IDX file: {e}", field="dataset.root") from e


def _load_mnist(name: str, spec: DatasetSpec) -> _Raw:
    root = _ensure_files(name, spec)
    f = expected_files(name, root)
    x_train, y_train, x_test, y_test = (_read_idx(p) for p in f)
    to_x = lambda a: torch.from_numpy(a.copy()).unsqueeze(1)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    size = int(x_train.shape[-1])
    return _Raw(to_x(x_train), to_y(y_train), to_x(x_test), to_y(y_test), 10, 1, size)


def _load_svhn(spec: DatasetSpec) -> _Raw:
    import scipy.io

    root = _ensure_files("svhn", spec)
    out = []
    for path in expected_files("svhn", root):
        try:
            mat = scipy.io.loadmat(str(path))
            x = np.transpose(np.asarray(mat["X"], dtype=np.uint8), (3, 2, 0, 1))  # (32,32,3,N) -> NCHW
            y = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10  # label 10 is digit 0 (torchvision)
        except Exception as e:
            raise InputError(f"cannot read {str(path)!r} as SVHN .mat: {e}", field="dataset.root") from e
        out += [torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)]
    return _Raw(out[0], out[1], out[2], out[3], 10, 3, 32)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (what ``sklearn.datasets.load_digits`` returns): images 0..16, targets.

    Read straight from the CSV sklearn ships, located without importing sklearn: importing it (with scipy)
    costs about 1.5 s, a noticeable share of a one-minute quickstart. Falls back to ``load_digits``.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = Path(loc) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            data = np.loadtxt(path, delimiter=",", dtype=np.float64)
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target.astype(np.int64)


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed stratified split: per class, a seeded shuffle, the first ``round(fraction * n_c)`` to test."""
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = round(test_fraction * idx.size)
        te.append(idx[:k])
        tr.append(idx[k:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(te))


def _load_digits() -> _Raw:
    images, target = _digits_arrays()
    images = np.round(images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # 0..16 -> 0..255
    tr, te = _stratified_split(target, 0.2, seed=0)  # digits has no official split: a fixed 80/20 one
    t = torch.from_numpy
    return _Raw(t(images[tr]), t(target[tr]), t(images[te]), t(target[te]), 10, 1, 8)


def _crop_gather(x: Tensor, dy: Tensor, dx: Tensor, size: int) -> Tensor:
    """Per-sample crops ``x[b, :, dy[b]:dy[b]+size, dx[b]:dx[b]+size]`` as one gather (no Python loop)."""
    b = x.shape[0]
    ar = torch.arange(size, device=x.device)
    rows = (dy.to(x.device)[:, None] + ar)[:, :, None]  # B, S, 1
    cols = (dx.to(x.device)[:, None] + ar)[:, None, :]  # B, 1, S
    bi = torch.arange(b, device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[bi, rows, cols].permute(0, 3, 1, 2).contiguous()


def _synthetic(spec: DatasetSpec, seed: int) -> _Raw:
    """Class-conditional images: a smooth random prototype per class, drawn shifted, rescaled and noisy.

    ``difficulty`` is the noise standard deviation relative to the prototype's (1.0: as much noise as
    signal per pixel; a CNN still learns it because the noise is independent per pixel and the signal is
    spatially smooth). Deterministic by ``seed``.
    """
    classes = spec.num_classes or 10
    chans = spec.channels or 3
    size = spec.image_size or 32
    n_train = spec.train_size or 2048
    n_test = spec.test_size or 512
    difficulty = 1.0 if spec.difficulty is None else spec.difficulty
    g = torch.Generator().manual_seed(seed)
    k = max(2, size // 4)
    proto = F.interpolate(torch.randn(classes, chans, k, k, generator=g), size=(size, size), mode="bicubic")
    proto = (proto - proto.mean(dim=(1, 2, 3), keepdim=True)) / proto.std(dim=(1, 2, 3), keepdim=True)
    pad = max(1, size // 8)
    padded = F.pad(proto, (pad, pad, pad, pad), mode="reflect" if pad < size else "replicate")

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
        xs = []
        for start in range(0, n, 4096):  # chunks keep the float intermediate small
            yy = y[start : start + 4096]
            m = yy.numel()
            dy = torch.randint(0, 2 * pad + 1, (m,), generator=g)
            dx = torch.randint(0, 2 * pad + 1, (m,), generator=g)
            img = _crop_gather(padded[yy], dy, dx, size)
            contrast = 1.0 + 0.2 * torch.randn(m, 1, 1, 1, generator=g)
            img = contrast * img + difficulty * torch.randn(img.shape, generator=g)
            xs.append(((img * 0.2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8))
        return torch.cat(xs), y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return _Raw(x_train, y_train, x_test, y_test, classes, chans, size)


def _imagefolder_classes(spec: DatasetSpec) -> tuple[Path, list[str]]:
    root = Path(spec.root or DEFAULT_ROOT).expanduser()
    expected = ["train/<class>/<image>", "test/<class>/<image>"]
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise _missing(
            "imagefolder", root, expected, why="an image folder needs train/ and test/ class folders"
        )
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if len(classes) < 2:
        raise InputError(
            f"imagefolder {str(root)!r}: train/ needs at least 2 class folders", field="dataset.root"
        )
    extra = sorted(p.name for p in (root / "test").iterdir() if p.is_dir() and p.name not in classes)
    if extra:
        raise InputError(
            f"imagefolder {str(root)!r}: test/ has class folders that train/ lacks: {', '.join(extra)}",
            field="dataset.root",
        )
    return root, classes


def _list_images(folder: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    files, labels = [], []
    for i, c in enumerate(classes):
        d = folder / c
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                files.append(str(p))
                labels.append(i)
    return files, labels


def _decode(path: str, size: int, gray: bool) -> Tensor:
    """One image file -> uint8 (C, size, size): shorter side resized to ``size``, then center-cropped."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L" if gray else "RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            if (nw, nh) != (w, h):
                im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.uint8)
    except Exception as e:
        raise InputError(f"cannot read image {path!r}: {e}", field="dataset.root") from e
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class _IndexLists:
    """A DataLoader batch sampler over an iterator of index tensors (possibly infinite, used once)."""

    def __init__(self, index_batches: Iterable[Tensor]) -> None:
        self._it = iter(index_batches)

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self._it:
            yield idx.tolist()


class _FileDataset(torch.utils.data.Dataset):
    """Decodes one image per item (deterministic: no randomness in workers)."""

    def __init__(self, files: list[str], labels: Tensor, size: int, gray: bool) -> None:
        self.files, self.labels, self.size, self.gray = files, labels, size, gray

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return _decode(self.files[i], self.size, self.gray), self.labels[i]


def _load_imagefolder(spec: DatasetSpec) -> _Raw:
    from PIL import Image

    root, classes = _imagefolder_classes(spec)
    ftr, ltr = _list_images(root / "train", classes)
    fte, lte = _list_images(root / "test", classes)
    if not ftr or not fte:
        raise InputError(
            f"imagefolder {str(root)!r}: no images in {'train' if not ftr else 'test'}/<class>/ "
            f"(extensions: {', '.join(IMAGE_EXTENSIONS)})",
            field="dataset.root",
        )
    with Image.open(ftr[0]) as im:
        gray = im.mode in _GRAY_MODES
        size = spec.image_size or min(im.size)
    chans = 1 if gray else 3
    raw = _Raw(
        None, torch.tensor(ltr), None, torch.tensor(lte), len(classes), chans, size, class_names=classes
    )
    if (len(ftr) + len(fte)) * chans * size * size > STREAM_BYTES:
        raw.files_train, raw.files_test = ftr, fte
    else:
        raw.x_train = torch.stack([_decode(f, size, gray) for f in ftr])
        raw.x_test = torch.stack([_decode(f, size, gray) for f in fte])
    return raw


# --- the bundle ---------------------------------------------------------------------------------------


class _Store:
    """One split's images: uint8 tensors (cached per device) or image files streamed by a DataLoader."""

    def __init__(
        self, x: Tensor | None, y: Tensor, files: list[str] | None = None, size: int = 0, gray: bool = False
    ) -> None:
        self.x, self.y, self.files, self.size, self.gray = x, y, files, size, gray
        self._dev: dict[str, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return int(self.y.numel())

    def subset(self, idx: Tensor) -> _Store:
        if self.files is not None:
            return _Store(None, self.y[idx], [self.files[i] for i in idx.tolist()], self.size, self.gray)
        assert self.x is not None
        return _Store(self.x[idx].contiguous(), self.y[idx].contiguous())

    def on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        key = str(device)
        if key not in self._dev:
            assert self.x is not None
            with torch.inference_mode(False):  # a cache made during an evaluation must serve training too
                self._dev[key] = (self.x.to(device), self.y.to(device))
        return self._dev[key]

    def batches(
        self, index_batches: Iterable[Tensor], device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """uint8 image batches and labels on ``device``, in the order of ``index_batches``."""
        if self.files is None:
            x, y = self.on(device)
            for idx in index_batches:
                idx = idx.to(device, non_blocking=True)
                yield x[idx], y[idx]
            return
        ds = _FileDataset(self.files, self.y, self.size, self.gray)
        workers = LOADER_WORKERS
        loader = torch.utils.data.DataLoader(
            ds,
            batch_sampler=_IndexLists(index_batches),  # lazily: the training stream is infinite
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


class DataBundle:
    """A dataset ready for trials: splits, batch iterators and what the model needs to know.

    ``num_classes``, ``in_chans`` and ``image_size`` size the model; ``train_batches`` is the fair,
    seeded, infinite stream of training batches; ``eval_batches`` walks an evaluation split in order.
    """

    def __init__(
        self,
        name: str,
        *,
        num_classes: int,
        in_chans: int,
        image_size: int,
        native_size: int,
        train: _Store,
        train_eval: _Store,
        val: _Store,
        test: _Store,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool,
        flip: bool = True,
        class_names: list[str] | None = None,
    ) -> None:
        self.name = name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.image_size = image_size
        self.native_size = native_size
        self.augment = augment
        self.flip = flip
        self.class_names = class_names
        self._splits: dict[str, _Store] = {"train": train, "train_eval": train_eval, "val": val, "test": test}
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._norm: dict[str, tuple[Tensor, Tensor]] = {}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._splits.items())
        return (
            f"DataBundle({self.name!r}, classes={self.num_classes}, in_chans={self.in_chans}, "
            f"image_size={self.image_size}, {sizes}, augment={self.augment})"
        )

    @property
    def streaming(self) -> bool:
        """True when images stream from disk through a DataLoader (large image folders)."""
        return self._splits["train"].files is not None

    def split_size(self, split: str) -> int:
        return len(self._store(split))

    def describe(self) -> dict[str, object]:
        """What results.json records about the data a run trained and evaluated on."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "image_size": self.image_size,
            **{f"{split}_size": len(store) for split, store in self._splits.items()},
        }

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per pass over ``train`` (the last partial batch is dropped: equal-sized steps)."""
        return max(1, self.split_size("train") // batch_size)

    def _store(self, split: str) -> _Store:
        if split not in self._splits:
            raise InputError(f"unknown split {split!r}", allowed=list(self._splits))
        return self._splits[split]

    def _aug_params(self, m: int, gen: torch.Generator, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """Crop offsets and flip flags for ``m`` images, drawn on the CPU (the same on every device)."""
        pad = max(1, size // 8)  # 4 px at 32x32, as in the usual CIFAR recipe
        dy = torch.randint(0, 2 * pad + 1, (m,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (m,), generator=gen)
        flip = torch.rand(m, generator=gen) < 0.5
        return dy, dx, flip

    def _prepare(self, x: Tensor, aug: tuple[Tensor, Tensor, Tensor] | None) -> Tensor:
        """uint8 batch -> float, augmented (``aug``: offsets/flips on x's device), resized, normalized."""
        key = str(x.device)
        if key not in self._norm:
            with torch.inference_mode(False):  # a cache made during an evaluation must serve training too
                self._norm[key] = (self._mean.to(x.device), self._std.to(x.device))
        mean, std = self._norm[key]
        x = x.float().div_(255.0)
        if aug is not None:
            dy, dx, flip = aug
            h = x.shape[-2]
            pad = max(1, h // 8)
            x = _crop_gather(F.pad(x, (pad, pad, pad, pad)), dy, dx, h)
            if self.flip:
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return (x - mean) / std

    def train_batches(
        self, batch_size: int, seed: int, device: torch.device | str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Infinite training batches, reshuffled every epoch; the same seed gives the same batches.

        Every random draw (permutation, crop offsets, flips) comes from CPU generators seeded by
        ``seed`` and is copied to the device once per epoch (pinned, non-blocking): no per-batch
        host-device transfer, so no hidden per-step CUDA synchronisation for in-memory datasets.
        """
        device = torch.device(device)
        store = self._store("train")
        n = len(store)
        gen = torch.Generator().manual_seed(int(seed))
        aug_gen = torch.Generator().manual_seed(int(seed) + 1_000_003) if self.augment else None
        bs = min(batch_size, n)
        per_epoch = max(1, n // bs)
        used = per_epoch * bs
        size = self.native_size

        def epoch_draws() -> tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None]:
            perm = torch.randperm(n, generator=gen)[:used]
            return perm, (self._aug_params(used, aug_gen, size) if aug_gen is not None else None)

        if store.files is None:  # in memory: gather on the device
            x_dev, y_dev = store.on(device)
            while True:
                perm, aug = epoch_draws()
                perm_d = _h2d(perm, device)
                aug_d = tuple(_h2d(t, device) for t in aug) if aug is not None else None
                for i in range(per_epoch):
                    sl = slice(i * bs, (i + 1) * bs)
                    idx = perm_d[sl]
                    batch_aug = tuple(t[sl] for t in aug_d) if aug_d is not None else None
                    yield self._prepare(x_dev[idx], batch_aug), y_dev[idx]  # type: ignore[arg-type]

        def cpu_batches() -> Iterator[tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None]]:
            while True:
                perm, aug = epoch_draws()
                for i in range(per_epoch):
                    sl = slice(i * bs, (i + 1) * bs)
                    yield perm[sl], (tuple(t[sl] for t in aug) if aug is not None else None)  # type: ignore[misc]

        pending: deque = deque()  # the loader reads indices ahead; augmentation draws follow in order

        def indices() -> Iterator[Tensor]:
            for idx, aug in cpu_batches():
                pending.append(aug)
                yield idx

        for xb, yb in store.batches(indices(), device):
            aug = pending.popleft()
            yield self._prepare(xb, tuple(_h2d(t, device) for t in aug) if aug is not None else None), yb

    def eval_batches(
        self, split: str, batch_size: int, device: torch.device | str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The whole split in a fixed order, without augmentation."""
        device = torch.device(device)
        store = self._store(split)
        n = len(store)
        on_dev = device if store.files is None else torch.device("cpu")
        chunks = [torch.arange(i, min(i + batch_size, n), device=on_dev) for i in range(0, n, batch_size)]
        for xb, yb in store.batches(chunks, device):
            yield self._prepare(xb, None), yb


def _h2d(t: Tensor, device: torch.device) -> Tensor:
    """Copy to ``device``; to CUDA from pinned memory without blocking (pageable copies synchronise)."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _cap(x: Tensor | None, y: Tensor, files: list[str] | None, n: int | None) -> tuple:
    """A fixed random subset of at most ``n`` items (train_size / test_size caps for real datasets)."""
    if n is None or n >= y.numel():
        return x, y, files
    idx = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(SPLIT_SEED))[:n].sort().values
    return (
        None if x is None else x[idx],
        y[idx],
        None if files is None else [files[i] for i in idx.tolist()],
    )


def load_data(spec: DatasetSpec, *, seed: int = 0) -> DataBundle:
    """Load the recipe's dataset and build its splits (InputError on missing or unreadable files).

    ``seed`` only selects the synthetic dataset's draw; the splits of every dataset are fixed.
    """
    name = spec.name
    raw = _load_raw(spec, seed)
    gray = raw.in_chans == 1
    full_train = _Store(raw.x_train, raw.y_train, raw.files_train, raw.native_size, gray)
    test = _Store(raw.x_test, raw.y_test, raw.files_test, raw.native_size, gray)
    n = len(full_train)
    g = torch.Generator().manual_seed(SPLIT_SEED)
    perm = torch.randperm(n, generator=g)
    n_val = round(n * spec.val_fraction)
    if n - n_val < 1:
        raise InputError(
            f"val_fraction {spec.val_fraction} leaves no training images", field="dataset.val_fraction"
        )
    val = full_train.subset(perm[:n_val].sort().values)
    train_idx = perm[n_val:].sort().values
    train = full_train.subset(train_idx)
    n_te = min(len(test), len(train), TRAIN_EVAL_MAX)
    te_idx = torch.randperm(len(train), generator=g)[:n_te].sort().values
    train_eval = train.subset(te_idx)
    mean, std = _normalisation(raw, train)
    return DataBundle(
        name,
        num_classes=raw.num_classes,
        in_chans=raw.in_chans,
        image_size=spec.image_size or raw.native_size,
        native_size=raw.native_size,
        train=train,
        train_eval=train_eval,
        val=val,
        test=test,
        mean=mean,
        std=std,
        augment=spec.augment,
        flip=name in FLIP_OK,
        class_names=raw.class_names,
    )


def _load_raw(spec: DatasetSpec, seed: int) -> _Raw:
    """The dataset's images and labels as read (capped at train_size / test_size for real datasets)."""
    name = spec.name
    if name == "digits":
        raw = _load_digits()
    elif name == "synthetic":
        raw = _synthetic(spec, seed)
    elif name in ("cifar10", "cifar100"):
        raw = _load_cifar(name, spec)
    elif name in ("mnist", "fashion_mnist"):
        raw = _load_mnist(name, spec)
    elif name == "svhn":
        raw = _load_svhn(spec)
    elif name == "imagefolder":
        raw = _load_imagefolder(spec)
    else:  # the recipe model already rejects unknown names; keep a clear error for direct callers
        raise InputError(f"unknown dataset {name!r}", allowed=DATASETS)
    if name != "synthetic":
        raw.x_train, raw.y_train, raw.files_train = _cap(
            raw.x_train, raw.y_train, raw.files_train, spec.train_size
        )
        raw.x_test, raw.y_test, raw.files_test = _cap(raw.x_test, raw.y_test, raw.files_test, spec.test_size)
    return raw


def _normalisation(raw: _Raw, train: _Store) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (up to 10,000) training images; ImageNet's for a streamed folder."""
    if raw.x_train is not None and train.x is not None:
        sample = train.x[: min(len(train), 10000)].float().div_(255.0)
        mean = sample.mean(dim=(0, 2, 3)).tolist()
        std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    else:  # streaming image folder: ImageNet statistics (what pretrained-style pipelines use)
        mean = [0.485, 0.456, 0.406] if raw.in_chans == 3 else [0.5]
        std = [0.229, 0.224, 0.225] if raw.in_chans == 3 else [0.25]
    return mean, std
