"""What a validated data set holds, read cheaply: what a config is checked against before
anything is loaded, compiled or written.

`summarize(spec)` gives the image shape and example counts where headers, metadata or an
image folder's file listing tell them, and the labels' range per array where the labels are small enough to read (an
`.npz`, the bundled digits); otherwise the class count the data set declares (tfds
metadata, an image folder's class folders). `train.validate.check_data` compares them
with the model and the batch. Unknown facts are None: the trainer checks them once the
data is open.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from relgraph_jax.data.spec import DataSpec


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """where: how errors name the data set. num_train: the examples training batches are
    drawn from (without a validation hold-out). labels: {array name: (min, max)} of the
    labels read; declared_classes: the class count the data set states (None: none)."""
    where: str
    image_shape: tuple[int, int, int] | None
    num_train: int | None
    num_test: int | None
    labels: dict
    declared_classes: int | None
    streamed: bool = False  # read batch by batch (else held on the devices)


def _label_range(labels: np.ndarray) -> tuple[int, int]:
    """Exact (min, max) as Python ints: a uint64 label is not wrapped to int32 here."""
    return int(labels.min()), int(labels.max())


def _arrays(spec: DataSpec) -> DataSummary:
    from relgraph_jax.data import arrays
    layout = arrays.read_layout(spec.path)
    (shape, _), (test_shape, _) = layout["x_train"], layout["x_test"]
    with np.load(spec.path, allow_pickle=False) as archive:
        labels = {key: _label_range(archive[key]) for key in ("y_train", "y_test")}
    declared = layout["classes"][0][0] if "classes" in layout else None
    return DataSummary(repr(spec.path), tuple(shape[1:]), shape[0], test_shape[0], labels,
                       declared)


def _digits(spec: DataSpec) -> DataSummary:
    from sklearn.datasets import load_digits

    from relgraph_jax.data import digits
    bunch = load_digits()
    train, test = digits.split_indices(bunch.target)
    labels = {"y_train": _label_range(bunch.target[train]),
              "y_test": _label_range(bunch.target[test])}
    return DataSummary("digits", bunch.images.shape[1:] + (1,), len(train), len(test), labels,
                       len(bunch.target_names))


def _tfds(spec: DataSpec) -> DataSummary:
    from relgraph_jax.data import tfds_source
    train = tfds_source.open_split(spec, spec.train_split)
    test = tfds_source.open_split(spec, spec.test_split)
    shape, num_classes = tfds_source.features(train)
    known = None if spec.streaming or None in shape else tuple(shape)
    return DataSummary(f"tfds {spec.name!r}", known, len(train), len(test), {}, num_classes)


def _imagefolder(spec: DataSpec) -> DataSummary:
    from relgraph_jax.data import imagefolder
    # The counts come from the split listings, made once per process (cached) and reused
    # by the fingerprint and the stream; image sizes vary, so no shape is known.
    classes = imagefolder.validate(spec)
    num_train, num_test = (len(imagefolder.listing(spec.path, split, classes)[1])
                           for split in (spec.train_split, spec.test_split))
    return DataSummary(repr(spec.path), None, num_train, num_test, {}, len(classes))


def _cifar(spec: DataSpec) -> DataSummary:
    from relgraph_jax.data import cifar
    # The tarball has the published MD5 (validate), so the published facts hold.
    rel = cifar.RELEASES[spec.name]
    return DataSummary(f"{spec.name} ({rel.filename})", rel.image_shape, rel.num_train,
                       rel.num_test, {}, rel.num_classes)


_BY_SOURCE = {"cifar": _cifar, "arrays": _arrays, "digits": _digits, "tfds": _tfds, "imagefolder": _imagefolder}


def summarize(spec: DataSpec) -> DataSummary:
    """The summary of a data spec that `data.validate` has passed."""
    summary = dataclasses.replace(_BY_SOURCE[spec.source](spec), streamed=spec.streaming)
    if summary.num_train is None:
        return summary
    return dataclasses.replace(summary, num_train=summary.num_train - spec.validation_size)
