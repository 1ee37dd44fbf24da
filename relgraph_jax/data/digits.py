"""The offline default: scikit-learn's bundled 8x8 handwritten digits (1797 images).

Ships inside scikit-learn, so the quick start needs no download. Pixels 0..16 are scaled
to 0..255 uint8; the train/test split is fixed (stratified, 360 test images, seed 0).
"""
from __future__ import annotations

import numpy as np

from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data.spec import DataSpec

NUM_TEST = 360
SPLIT_SEED = 0


def to_uint8(pixels_0_16: np.ndarray) -> np.ndarray:
    """Scales scikit-learn's 0..16 intensities to 0..255 (16 -> 255), rounded."""
    return np.rint(np.asarray(pixels_0_16, np.float64) * (255.0 / 16.0)).astype(np.uint8)


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified split: (train indices, test indices), each sorted."""
    from sklearn.model_selection import train_test_split
    train, test = train_test_split(np.arange(labels.shape[0]), test_size=NUM_TEST,
                                   stratify=labels, random_state=SPLIT_SEED)
    return np.sort(train), np.sort(test)


def validate(spec: DataSpec) -> None:
    """Digits are 8x8: a different data.image_size is an error."""
    if spec.image_size not in (None, 8):
        raise ValueError(f"digits images are 8x8 but data.image_size={spec.image_size}; "
                         f"set image_size=8 or leave it unset")
    try:
        import sklearn.datasets  # noqa: F401  (the data ship inside scikit-learn)
    except ImportError as e:
        raise ValueError("source='digits' needs scikit-learn (pip install scikit-learn)") from e


def load(spec: DataSpec) -> dataset_lib.Dataset:
    """All 1797 digits as (N, 8, 8, 1) uint8 images with the fixed split."""
    validate(spec)
    from sklearn.datasets import load_digits
    bunch = load_digits()
    images = to_uint8(bunch.images)[..., None]
    labels = bunch.target.astype(np.int32)
    train, test = split_indices(labels)
    return dataset_lib.make_dataset("digits", images[train], labels[train], images[test],
                                    labels[test], num_classes=10)
