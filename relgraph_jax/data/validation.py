"""A validation split held out from the training set (`data.validation_size`).

A search that ranks graphs on the test set selects on it, so its final test errors are
optimistic; ranking on examples held out from training does not leak. Which examples are
held out depends only on the number of training examples n and the size asked for:
example i gets the key splitmix64(i) (a fixed bijection of 64-bit integers, written out
below, so the split is the same on every platform and numpy version), and the `size`
examples with the largest keys are held out. In other words: the last `size` examples
after a fixed permutation. A larger split contains every smaller one. Both parts keep the
examples' original order; the normalisation constants stay those of the whole training
set (pixel statistics, no labels).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from relgraph_jax.data.dataset import Dataset

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of uint64 values (wrapping arithmetic)."""
    z = np.asarray(x, np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def split_indices(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices) of n examples, each in ascending order."""
    if not 0 <= size < n:
        raise ValueError(f"data.validation_size={size} must be smaller than the {n} training "
                         "examples (and >= 0)")
    order = np.argsort(splitmix64(np.arange(n, dtype=np.uint64)), kind="stable")
    return np.sort(order[:n - size]), np.sort(order[n - size:])


def hold_out(ds: Dataset, size: int) -> Dataset:
    """`ds` with `size` training examples moved into x_val / y_val (size 0: unchanged)."""
    if size == 0:
        return ds
    train, held = split_indices(ds.num_train, size)
    return dataclasses.replace(ds, x_train=ds.x_train[train], y_train=ds.y_train[train],
                               x_val=ds.x_train[held], y_val=ds.y_train[held])
