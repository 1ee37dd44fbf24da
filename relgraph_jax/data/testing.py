"""Test helpers: a mocked tfds (no TensorFlow, no files) and small arrays-format files."""
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
