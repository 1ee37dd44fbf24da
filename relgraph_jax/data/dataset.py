"""The in-memory `Dataset` and the checks every source's arrays must pass.

Layout checks take only shapes and dtypes, so `.npz` files can be checked from their
headers before anything is read; label checks need the (small) label arrays.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

# Per-channel normalisation on the 0-255 scale. CIFAR-10: the paper's recipe (reference
# README). ImageNet: the usual RGB statistics used by the original pycls code base.
CIFAR10_MEAN = (125.3, 123.0, 113.9)
CIFAR10_STD = (63.0, 62.1, 66.7)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A whole small data set on the host: uint8 NHWC images, int32 labels."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: np.ndarray  # (C,) float32, 0-255 scale
    std: np.ndarray   # (C,) float32, 0-255 scale
    name: str
    # Training examples held out for validation (data/validation.py); None: no split.
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_val(self) -> int:
        return 0 if self.y_val is None else len(self.y_val)

    @property
    def num_test(self) -> int:
        return len(self.y_test)


def check_layout(layout: Mapping[str, tuple[tuple[int, ...], np.dtype]], where: str,
                 image_size: int | None = None) -> None:
    """Checks shapes and dtypes of x_train, y_train, x_test, y_test (given as (shape, dtype))."""
    missing = [k for k in ARRAY_KEYS if k not in layout]
    if missing:
        raise ValueError(f"{where} is missing array(s) {missing}; an arrays data set needs "
                         f"{list(ARRAY_KEYS)} (found {sorted(layout)})")
    for split in ("train", "test"):
        (xs, xd), (ys, yd) = layout[f"x_{split}"], layout[f"y_{split}"]
        if len(xs) != 4 or min(xs) < 1:
            raise ValueError(f"{where}: x_{split} must be non-empty images (N, H, W, C), got "
                             f"shape {tuple(xs)}" + (" (add a channel axis for grayscale)"
                                                     if len(xs) == 3 else ""))
        if np.dtype(xd) != np.uint8:
            raise ValueError(f"{where}: x_{split} must be uint8 pixels 0-255, got {np.dtype(xd)}")
        if len(ys) != 1 or not np.issubdtype(np.dtype(yd), np.integer):
            raise ValueError(f"{where}: y_{split} must be 1-D integer labels, got shape "
                             f"{tuple(ys)} dtype {np.dtype(yd)}")
        if ys[0] != xs[0]:
            raise ValueError(f"{where}: x_{split} has {xs[0]} images but y_{split} has "
                             f"{ys[0]} labels")
    train_hwc, test_hwc = tuple(layout["x_train"][0][1:]), tuple(layout["x_test"][0][1:])
    if train_hwc != test_hwc:
        raise ValueError(f"{where}: train images are {train_hwc} but test images are {test_hwc}")
    if image_size is not None and train_hwc[:2] != (image_size, image_size):
        raise ValueError(f"{where}: images are {train_hwc[0]}x{train_hwc[1]} but "
                         f"data.image_size={image_size}; set image_size to match or leave it unset")


def check_labels(y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None,
                 where: str) -> int:
    """Checks labels lie in [0, num_classes); returns num_classes (max label + 1 if unknown)."""
    for name, labels in (("y_train", y_train), ("y_test", y_test)):
        if int(labels.min()) < 0:
            raise ValueError(f"{where}: {name} holds label {int(labels.min())}; labels must "
                             "be >= 0")
    high = max(int(y_train.max()), int(y_test.max()))
    if num_classes is None:
        return high + 1
    if high >= num_classes:
        raise ValueError(f"{where}: label {high} is out of range for {num_classes} classes "
                         f"(labels must be 0..{num_classes - 1})")
    return num_classes


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 NHWC images, in float64 chunks."""
    count, total, total_sq = 0, 0.0, 0.0
    for start in range(0, images.shape[0], chunk):
        block = images[start:start + chunk].reshape(-1, images.shape[-1]).astype(np.float64)
        count += block.shape[0]
        total = total + block.sum(0)
        total_sq = total_sq + np.square(block).sum(0)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def normalisation_constants(name: str, x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's constants for CIFAR-10, otherwise statistics of the training images."""
    if name == "cifar10":
        return np.asarray(CIFAR10_MEAN, np.float32), np.asarray(CIFAR10_STD, np.float32)
    mean, std = channel_stats(x_train)
    return mean, np.maximum(std, np.float32(1e-3))


def make_dataset(name: str, x_train, y_train, x_test, y_test, num_classes: int) -> Dataset:
    """Packs checked arrays into a Dataset with int32 labels and normalisation constants."""
    mean, std = normalisation_constants(name, x_train)
    if mean.shape != (x_train.shape[-1],):
        raise ValueError(f"{name}: normalisation constants have {mean.shape[0]} channels but "
                         f"the images have {x_train.shape[-1]}")
    return Dataset(x_train=np.ascontiguousarray(x_train), y_train=y_train.astype(np.int32),
                   x_test=np.ascontiguousarray(x_test), y_test=y_test.astype(np.int32),
                   num_classes=int(num_classes), mean=mean, std=std, name=name)
