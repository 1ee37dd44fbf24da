"""The public entry points: validate a data block, load it, or open it as a stream."""
from __future__ import annotations

import sys
from typing import Any

from relgraph_jax.data import (arrays, cifar, digits, imagefolder, stream, tfds_source,
                               validation)
from relgraph_jax.data.dataset import Dataset
from relgraph_jax.data.spec import DataSpec, parse

_MODULES = {"cifar": cifar, "arrays": arrays, "digits": digits, "tfds": tfds_source, "imagefolder": imagefolder}


def validate(data_cfg: Any) -> DataSpec:
    """Cheap checks (config, paths, npz headers, labels, tfds metadata, image-folder
    layout); returns the spec.

    Raises ValueError/TypeError naming the bad value and what is allowed; a data set
    that is not on disk raises DataNotFoundError (a FileNotFoundError and a ValueError)
    with the command that creates it.
    """
    spec = parse(data_cfg)
    _MODULES[spec.source].validate(spec)
    if spec.workers_capped_from:
        print(f"data.workers={spec.workers_capped_from} is more than the {spec.workers} usable "
              f"cores of this machine: using {spec.workers} decoding processes",
              file=sys.stderr, flush=True)
    return spec


def load(data_cfg: Any) -> Dataset:
    """The whole data set in host memory: uint8 NHWC images, int32 labels, mean/std; with
    `validation_size`, that many training examples held out as x_val / y_val."""
    spec = parse(data_cfg)
    return validation.hold_out(_MODULES[spec.source].load(spec), spec.validation_size)


def is_streaming(data_cfg: Any) -> bool:
    """True when the data set is read batch by batch (open_stream) instead of load."""
    return parse(data_cfg).streaming


def open_stream(data_cfg: Any) -> stream.ImageStream:
    """Train/eval batch iterators of a streamed data set (tfds imagenet2012, an image
    folder), made by `data.workers` grain processes."""
    spec = parse(data_cfg)
    if not spec.streaming:
        raise ValueError(f"{spec.name!r} (source={spec.source!r}) is held in memory: use "
                         f"relgraph_jax.data.load(data_cfg); streamed data sets: "
                         f"imagenet2012 (source='tfds') and source='imagefolder'")
    return stream.open_stream(spec)
