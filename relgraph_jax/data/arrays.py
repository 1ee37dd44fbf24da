"""The arrays source: an `.npz` with x_train, y_train, x_test, y_test (and optional classes).

Validation reads only the zip directory and each array's `.npy` header (plus the labels),
so a malformed file is reported in milliseconds, before any image is read.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data.spec import PREPARE_CIFAR10, DataNotFoundError, DataSpec


def _missing_file_message(path: str) -> str:
    return (f"data file {path!r} not found (working directory {os.getcwd()!r}); create an .npz "
            f"with x_train, y_train, x_test, y_test, e.g. from the JPEG copy of CIFAR-10 with "
            f"`{PREPARE_CIFAR10}`")


def read_layout(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an .npz, from the headers alone."""
    if not os.path.isfile(path):
        raise DataNotFoundError(_missing_file_message(path))
    layout = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                layout[member[:-4]] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path!r} is not a readable .npz file ({type(e).__name__}: {e})") from e
    return layout


def _read(archive: np.lib.npyio.NpzFile, key: str, path: str) -> np.ndarray:
    try:
        return archive[key]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path!r}: array {key!r} is unreadable ({type(e).__name__}: {e})") from e


def _num_classes(archive: np.lib.npyio.NpzFile, path: str) -> int | None:
    """len(classes) when the file names its classes, otherwise unknown."""
    if "classes" not in archive.files:
        return None
    classes = _read(archive, "classes", path)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(f"{path!r}: 'classes' must be a non-empty 1-D array of class names, "
                         f"got shape {classes.shape}")
    return int(classes.size)


def _check_labels(archive: np.lib.npyio.NpzFile, path: str) -> int:
    return dataset_lib.check_labels(_read(archive, "y_train", path),
                                    _read(archive, "y_test", path), _num_classes(archive, path),
                                    path)


def validate(spec: DataSpec) -> None:
    """Checks the file exists, is a readable npz, and holds well-formed images and labels."""
    dataset_lib.check_layout(read_layout(spec.path), repr(spec.path), spec.image_size)
    with np.load(spec.path, allow_pickle=False) as archive:
        _check_labels(archive, spec.path)


def load(spec: DataSpec) -> dataset_lib.Dataset:
    """Reads and checks the whole file into a Dataset."""
    validate(spec)
    with np.load(spec.path, allow_pickle=False) as archive:
        num_classes = _check_labels(archive, spec.path)
        arrays = {k: _read(archive, k, spec.path) for k in dataset_lib.ARRAY_KEYS}
    return dataset_lib.make_dataset(spec.name, num_classes=num_classes, **arrays)
