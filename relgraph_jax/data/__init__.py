"""Data: sources (the official CIFAR-10 release, tfds, arrays .npz, bundled digits, image
folders), on-device augmentation, streamed ImageNet.

Small data sets load whole into host memory as uint8 (`load`) and go to the device once;
batching, crop/flip and normalisation then run on the device. ImageNet (tfds or an image
folder) streams through grain worker processes (`open_stream`). `validate` catches a
missing or malformed data set before compilation.
"""
from relgraph_jax.data.augment import CROP_STYLES, augment_batch, normalize, train_images
from relgraph_jax.data.dataset import (CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD,
                                       Dataset)
from relgraph_jax.data.order import epoch_order
from relgraph_jax.data.sources import is_streaming, load, open_stream, validate
from relgraph_jax.data.spec import DataNotFoundError, DataSpec, parse
from relgraph_jax.data.stream import Batch, ImageStream

__all__ = [
    "Batch", "CIFAR10_MEAN", "CIFAR10_STD", "CROP_STYLES", "DataNotFoundError", "DataSpec",
    "Dataset",
    "IMAGENET_MEAN", "IMAGENET_STD", "ImageStream", "augment_batch", "epoch_order",
    "is_streaming", "load", "normalize", "open_stream", "parse", "train_images", "validate",
]
