"""TensorFlow Datasets through `tfds.data_source`: random access without TensorFlow.

`tfds.data_source` reads data prepared in the array_record format with plain Python,
so neither loading nor `tfds.testing.mock_data` needs TensorFlow. Preparing a data set
(`tfds build`) does need it, so missing data is reported with the command to run.
tensorflow_datasets is imported lazily: the arrays and digits sources work without it.
"""
from __future__ import annotations

import os

import numpy as np

from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data.spec import DataNotFoundError, DataSpec


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ValueError("source='tfds' needs tensorflow-datasets "
                         "(pip install tensorflow-datasets)") from e
    return tfds


def open_split(spec: DataSpec, split: str):
    """The random-access source of one split; a clear error when it is not prepared."""
    tfds = _import_tfds()
    try:
        return tfds.data_source(spec.name, split=split, data_dir=spec.tfds_data_dir,
                                download=False)
    except Exception as e:  # tfds raises several types here; all mean "not usable as given"
        hint = ("; or read the official release without TensorFlow: source='cifar' "
                "(downloaded on first use)" if spec.name == "cifar10" else "")
        data_dir = f" --data_dir={spec.tfds_data_dir}" if spec.tfds_data_dir else ""
        raise DataNotFoundError(
            f"tfds data set {spec.name!r} split {split!r} is not readable: "
            f"{_diagnose(tfds, spec, e)}. Prepare it in the array_record format with "
            f"`tfds build {spec.name} --file_format=array_record{data_dir}` "
            f"(needs TensorFlow){hint}") from e


def _diagnose(tfds, spec: DataSpec, error: Exception) -> str:
    """Says whether nothing is prepared, or something is but in an unreadable form."""
    try:
        folder = str(tfds.builder(spec.name, data_dir=spec.tfds_data_dir).data_dir)
    except Exception:  # the original error is the better explanation then
        return f"{type(error).__name__}: {error}"
    if not os.path.isdir(folder):
        return f"nothing is prepared at {folder}"
    return f"{folder} exists but cannot be read ({type(error).__name__}: {error})"


def features(source) -> tuple[tuple, int]:
    """(image shape with None for variable sides, number of classes) from the metadata."""
    feats = source.dataset_info.features
    return tuple(feats["image"].shape), int(feats["label"].num_classes)


def class_names(source) -> tuple[str, ...]:
    """The label names from the metadata (ImageNet: WordNet ids), in label order."""
    return tuple(source.dataset_info.features["label"].names)


def validate(spec: DataSpec) -> None:
    """Opens both splits (no image is decoded) and checks their metadata against the spec."""
    for split in (spec.train_split, spec.test_split):
        source = open_split(spec, split)
        if len(source) == 0:
            raise ValueError(f"tfds {spec.name!r} split {split!r} is empty")
        shape, _ = features(source)
        if spec.streaming:
            continue
        if spec.image_size is not None and shape[:2] != (spec.image_size, spec.image_size):
            raise ValueError(f"tfds {spec.name!r} images are {shape[0]}x{shape[1]} but "
                             f"data.image_size={spec.image_size}; set it to match or leave "
                             f"it unset")


def _read_split(source) -> tuple[np.ndarray, np.ndarray]:
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(ex["image"], np.uint8) for ex in examples])
    labels = np.asarray([ex["label"] for ex in examples], np.int64)
    return images, labels


def load(spec: DataSpec) -> dataset_lib.Dataset:
    """Decodes a whole small data set (CIFAR-10, MNIST, Fashion-MNIST) into host memory."""
    if spec.streaming:
        raise ValueError(f"{spec.name!r} is too large to hold in memory; "
                         f"use relgraph_jax.data.open_stream(data_cfg)")
    validate(spec)
    train, test = open_split(spec, spec.train_split), open_split(spec, spec.test_split)
    _, num_classes = features(train)
    x_train, y_train = _read_split(train)
    x_test, y_test = _read_split(test)
    where = f"tfds {spec.name!r}"
    dataset_lib.check_layout({"x_train": (x_train.shape, x_train.dtype),
                              "y_train": (y_train.shape, y_train.dtype),
                              "x_test": (x_test.shape, x_test.dtype),
                              "y_test": (y_test.shape, y_test.dtype)}, where, spec.image_size)
    dataset_lib.check_labels(y_train, y_test, num_classes, where)
    return dataset_lib.make_dataset(spec.name, x_train, y_train, x_test, y_test, num_classes)
