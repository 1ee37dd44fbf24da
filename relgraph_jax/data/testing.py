"""Test helpers: a mocked tfds (no TensorFlow, no files), small arrays-format files and
image folders."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def mock_tfds(num_examples: int = 8) -> Iterator[None]:
    """Inside, `tfds.data_source` (so source='tfds') yields `num_examples` random examples.

    Uses `tfds.testing.mock_data`, which mocks data sources without TensorFlow. Train and
    test splits hold the same examples; images have the data set's real shape (ImageNet:
    random small sizes) and labels lie in its real class range.
    """
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=num_examples,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def write_arrays_npz(path: str | os.PathLike, num_train: int = 32, num_test: int = 16,
                     image_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10,
                     seed: int = 0) -> str:
    """Writes random uint8 images and labels covering every class; returns the path."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (num_train,) + tuple(image_shape), dtype=np.uint8),
        "y_train": (np.arange(num_train) % num_classes).astype(np.int64),
        "x_test": rng.integers(0, 256, (num_test,) + tuple(image_shape), dtype=np.uint8),
        "y_test": (np.arange(num_test) % num_classes).astype(np.int64),
        "classes": np.asarray([f"class{i}" for i in range(num_classes)]),
    }
    np.savez(path, **arrays)
    return str(path)


def photo_like(rng: np.random.Generator, height: int, width: int,
               noise: float = 20.0) -> np.ndarray:
    """A uint8 RGB image with photographic statistics: smooth colour gradients and waves
    plus pixel noise of std `noise` (at 500x375 and JPEG quality 90 about 100 KB, the
    size of a typical ImageNet photograph)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(40, 215), rng.uniform(-60, 60), rng.uniform(-60, 60)
        fy, fx, phase = rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
        wave = 30 * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        channels.append(a + b * yy + c * xx + wave)
    image = np.stack(channels, -1) + rng.normal(0, noise, (height, width, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_image_folder(root: str | os.PathLike, classes: tuple[str, ...] = ("cat", "dog", "fox"),
                       per_class: tuple[int, int] = (4, 2), shape: tuple[int, int] = (24, 32),
                       formats: tuple[str, ...] = ("JPEG", "PNG"), quality: int = 90,
                       splits: tuple[str, str] = ("train", "val"), seed: int = 0) -> str:
    """ROOT/train/CLASS/*.jpg|png and ROOT/val/CLASS/*: per_class (train, val) images of
    (height, width) per class, photo-like, the formats taken in turn; returns ROOT."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, count in zip(splits, per_class):
        for name in classes:
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                fmt = formats[i % len(formats)]
                path = os.path.join(folder, f"{name}_{i:05d}.{'jpg' if fmt == 'JPEG' else 'png'}")
                Image.fromarray(photo_like(rng, *shape)).save(path, format=fmt, quality=quality)
    return str(root)
