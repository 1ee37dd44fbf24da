"""ImageNet streamed from tfds with the paper's transforms, decoded on host threads.

Train: random-sized crop (area 0.08-1 of the image, aspect 3/4-4/3, 10 tries, else a
centre square), resize to `image_size`, horizontal flip, AlexNet-style PCA lighting
(std 0.1); float32 on the 0-255 scale. Eval: resize the shorter side to
image_size * 256 / 224, centre crop `image_size`; uint8. Both still need `normalize`.
Every random draw comes from (seed, epoch, example index), so batches do not depend on
thread timing. The trainer reads one stream of batches per seed and every process decodes
the full batch (variants, not examples, are split over devices: train/feeds.StreamFeed);
process_index / process_count can instead give each host its own slice of a batch.
"""
from __future__ import annotations

import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, NamedTuple

import numpy as np
from PIL import Image

from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data import tfds_source
from relgraph_jax.data.order import epoch_order
from relgraph_jax.data.spec import DataSpec

AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
CROP_ATTEMPTS = 10
RESIZE_RATIO = 256.0 / 224.0
LIGHTING_STD = 0.1
# Eigenvalues and eigenvectors (columns, RGB rows) of the ImageNet pixel covariance on the
# 0-1 scale, as used for AlexNet-style lighting noise.
EIGVALS = np.array([0.2175, 0.0188, 0.0045])
EIGVECS = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]])


class Batch(NamedTuple):
    """images (B, S, S, 3), int32 labels (B,), valid (B,) bool (False marks padding)."""
    images: np.ndarray
    labels: np.ndarray
    valid: np.ndarray


def crop_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random-sized crop; the centre square if no try fits."""
    for _ in range(CROP_ATTEMPTS):
        area = rng.uniform(*AREA_RANGE) * height * width
        aspect = rng.uniform(*ASPECT_RANGE)
        w = int(round(math.sqrt(area * aspect)))
        h = int(round(math.sqrt(area / aspect)))
        if rng.uniform() < 0.5:
            w, h = h, w
        if 0 < h <= height and 0 < w <= width:
            return (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)),
                    h, w)
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def lighting_offset(alpha: np.ndarray) -> np.ndarray:
    """RGB shift (0-255 scale) for PCA weights alpha: eigvecs @ (alpha * eigvals) * 255."""
    return (EIGVECS @ (np.asarray(alpha) * EIGVALS) * 255.0).astype(np.float32)


def train_transform(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random-sized crop, flip, PCA lighting: float32 (size, size, 3), 0-255 scale."""
    top, left, h, w = crop_box(image.shape[0], image.shape[1], rng)
    out = _resize(image[top:top + h, left:left + w], size, size)
    if rng.uniform() < 0.5:
        out = out[:, ::-1]
    return out.astype(np.float32) + lighting_offset(rng.normal(0.0, LIGHTING_STD, 3))


def eval_transform(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to round(size * 256 / 224), centre crop size: uint8."""
    height, width = image.shape[:2]
    short = int(round(size * RESIZE_RATIO))
    scale = short / min(height, width)
    new_h = short if height <= width else int(round(height * scale))
    new_w = short if width < height else int(round(width * scale))
    out = _resize(image, new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(out[top:top + size, left:left + size])


def _host_slice(indices: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count="
                         f"{process_count})")
    if indices.shape[0] % process_count:
        raise ValueError(f"batch size {indices.shape[0]} must be divisible by the "
                         f"{process_count} processes")
    local = indices.shape[0] // process_count
    return indices[process_index * local:(process_index + 1) * local]


class _Failure(NamedTuple):
    error: BaseException


_END = object()


def _prefetch(make_batch: Callable, num_batches: int, depth: int,
              workers: int, first: int = 0) -> Iterator[Batch]:
    """Builds batches on a background thread (with a pool of decode threads), in order."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            with ThreadPoolExecutor(workers) as pool:
                for b in range(first, num_batches):
                    if not put(make_batch(b, pool)):
                        return
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failure(e))
        put(_END)

    thread = threading.Thread(target=produce, name="imagenet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class ImageNetStream:
    """Train and eval batches of a streaming tfds data set (imagenet2012)."""

    def __init__(self, spec: DataSpec, workers: int = 8, prefetch: int = 2):
        tfds_source.validate(spec)
        self.spec = spec
        self.name = spec.name
        self.image_size = spec.image_size or 224
        self.workers = workers
        self.prefetch = prefetch
        self._train = tfds_source.open_split(spec, spec.train_split)
        self._test = tfds_source.open_split(spec, spec.test_split)
        _, self.num_classes = tfds_source.features(self._train)
        self.num_train, self.num_test = len(self._train), len(self._test)
        self.mean = np.asarray(dataset_lib.IMAGENET_MEAN, np.float32)
        self.std = np.asarray(dataset_lib.IMAGENET_STD, np.float32)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full training batches per epoch (the remainder is dropped)."""
        if batch_size < 1 or batch_size > self.num_train:
            raise ValueError(f"batch_size={batch_size} must be in [1, {self.num_train}]")
        return self.num_train // batch_size

    def _example(self, source, index: int, transform) -> tuple[np.ndarray, int]:
        example = source[int(index)]
        image = np.asarray(example["image"], np.uint8)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{self.name} example {index}: expected an RGB image (H, W, 3), "
                             f"got shape {image.shape}")
        return transform(image), int(example["label"])

    def train_batches(self, batch_size: int, seed: int, epoch: int, process_index: int = 0,
                      process_count: int = 1, first_batch: int = 0) -> Iterator[Batch]:
        """One epoch of augmented float32 batches in the order epoch_order(seed, epoch).

        first_batch skips the epoch's earlier batches without decoding them (a resume).
        """
        steps = self.steps_per_epoch(batch_size)
        order = np.asarray(epoch_order(seed, epoch, self.num_train))
        size, augment = self.image_size, self.spec.augment

        def transform_for(index):
            if not augment:
                return lambda image: eval_transform(image, size).astype(np.float32)
            rng = np.random.default_rng([seed, epoch, int(index)])
            return lambda image: train_transform(image, size, rng)

        def make_batch(b, pool):
            indices = _host_slice(order[b * batch_size:(b + 1) * batch_size], process_index,
                                  process_count)
            pairs = list(pool.map(lambda i: self._example(self._train, i, transform_for(i)),
                                  indices))
            return Batch(np.stack([p[0] for p in pairs]),
                         np.asarray([p[1] for p in pairs], np.int32),
                         np.ones(len(pairs), bool))

        return _prefetch(make_batch, steps, self.prefetch, self.workers, first_batch)

    def test_batches(self, batch_size: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[Batch]:
        """The whole eval split in order, uint8; the last batch is zero-padded (valid=False)."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        size = self.image_size
        num_batches = -(-self.num_test // batch_size)

        def make_batch(b, pool):
            ids = np.arange(b * batch_size, (b + 1) * batch_size)
            ids = _host_slice(ids, process_index, process_count)
            real = ids[ids < self.num_test]
            pairs = list(pool.map(
                lambda i: self._example(self._test, i, lambda im: eval_transform(im, size)),
                real))
            images = np.zeros((ids.shape[0], size, size, 3), np.uint8)
            labels = np.zeros(ids.shape[0], np.int32)
            if pairs:
                images[:len(pairs)] = np.stack([p[0] for p in pairs])
                labels[:len(pairs)] = [p[1] for p in pairs]
            return Batch(images, labels, ids < self.num_test)

        return _prefetch(make_batch, num_batches, self.prefetch, self.workers)
