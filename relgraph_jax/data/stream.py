"""Streamed data sets (ImageNet from tfds, image folders): grain pipelines of host batches.

Decoding and the paper's transforms (data/imagenet.py) run in `data.workers` grain worker
processes, so they do not share one interpreter lock, and each process of a multi-host
run makes only its own rows of every global batch. How a train batch is made:

- Seed s of the sweep visits the examples in `epoch_order(s, epoch, num_train)`; step b
  takes positions b*B .. (b+1)*B - 1 of that order (the remainder of an epoch is
  dropped), and process p of P its rows p*B/P .. (p+1)*B/P - 1.
- A grain MapDataset holds this process's rows of every seed for the steps asked, seed
  after seed within a step. Example i of seed s draws its crop, flip and lighting from
  `np.random.default_rng([s, epoch, i])`; it travels as the uint8 crop and the lighting
  offset (a quarter of a float32 image's bytes), which the trainer adds on the device.
- It is cut into chunks of at most CHUNK examples; grain's `mp_prefetch` hands the
  chunks to the workers round robin and returns them in order, and a step's chunks are
  joined into (S, B/P, size, size, 3).

So neither the number of workers nor the number of hosts changes a batch, and a resume
at step b builds the same data set from step b on: the position is derived from the
step, no iterator state needs saving.

The worker processes ignore Ctrl-C (`_init_worker`): a terminal's SIGINT reaches the
whole process group, and a worker killed by it would fail the next batch. The trainer
takes it, stops after the chunk with a checkpoint and closes the pipelines, which stops
the workers; `workers_stopped` ends any still alive however the trainer ends, and a worker
whose trainer was killed outright ends by itself within half a second.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Iterator, NamedTuple, Sequence

import grain
import numpy as np
from absl import flags
from PIL import Image

from relgraph_jax.data import dataset as dataset_lib
from relgraph_jax.data import imagefolder, tfds_source
from relgraph_jax.data.imagenet import eval_transform, train_crop
from relgraph_jax.data.order import epoch_order
from relgraph_jax.data.spec import DataSpec

CHUNK = 32  # examples one worker makes at a time: the unit handed between processes
_PARENT_POLL_S = 0.5  # how often a worker checks that the trainer still lives


class Batch(NamedTuple):
    """Host arrays of one process's rows: uint8 images, int32 labels, valid (False:
    padding) and, for training, each image's float32 PCA lighting offset (..., 3): the
    train image is images + lighting (0-255 scale), a sum the trainer makes on the device."""
    images: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    lighting: np.ndarray | None = None


def chunk_size(rows: int) -> int:
    """The largest divisor of `rows` up to CHUNK, so chunks tile every batch exactly."""
    return max(d for d in range(1, min(rows, CHUNK) + 1) if rows % d == 0)


def process_rows(batch_size: int, process_index: int, process_count: int) -> range:
    """The rows of a global batch that process `process_index` of `process_count` makes."""
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, process_count="
                         f"{process_count})")
    if batch_size % process_count:
        raise ValueError(f"batch size {batch_size} must be divisible by the {process_count} "
                         "processes (each makes an equal share of every batch)")
    rows = batch_size // process_count
    return range(process_index * rows, (process_index + 1) * rows)


def valid_rows(batch: int, batch_size: int, rows: range, num_examples: int) -> np.ndarray:
    """Which `rows` of eval batch `batch` hold an example: False for the padding past the
    split's `num_examples` (in the last batch)."""
    return batch * batch_size + np.arange(rows.start, rows.stop) < num_examples


def read_example(source, index: int, name: str) -> tuple[Image.Image | np.ndarray, np.int32]:
    """(RGB image, label) of example `index` of a random-access source: a Pillow image as
    an image folder decodes it, or a uint8 (H, W, 3) array as tfds does."""
    example = source[index]
    image = example["image"]
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"{name} example {index}: expected an RGB image, got mode "
                             f"{image.mode!r}")
    else:
        image = np.asarray(image, np.uint8)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{name} example {index}: expected an RGB image (H, W, 3), "
                             f"got shape {image.shape}")
    return image, np.int32(example["label"])


@dataclasses.dataclass(frozen=True, eq=False)
class TrainExample:
    """Position t of a train pipeline -> (uint8 crop, float32 lighting offset, label): the
    example ids[t] of seed seeds[(t // rows) % len(seeds)], transformed with draws from
    (seed, epoch, example); without augmentation the eval transform and no offset.
    Picklable, so grain copies it into every worker process."""
    source: Any
    name: str
    ids: np.ndarray
    seeds: tuple[int, ...]
    rows: int
    epoch: int
    size: int
    augment: bool

    def __call__(self, t: int) -> tuple[np.ndarray, np.ndarray, np.int32]:
        index = int(self.ids[t])
        image, label = read_example(self.source, index, self.name)
        if not self.augment:
            return eval_transform(image, self.size), np.zeros(3, np.float32), label
        seed = self.seeds[(t // self.rows) % len(self.seeds)]
        crop, lighting = train_crop(image, self.size,
                                    np.random.default_rng([seed, self.epoch, index]))
        return crop, lighting, label


@dataclasses.dataclass(frozen=True, eq=False)
class TestExample:
    """Position t of an eval pipeline -> (uint8 image, label): row `first_row + t % rows`
    of eval batch t // rows; rows past the split's end are zeros (padding)."""
    source: Any
    name: str
    batch_size: int
    rows: int
    first_row: int
    size: int

    def __call__(self, t: int) -> tuple[np.ndarray, np.int32]:
        batch, row = divmod(t, self.rows)
        index = batch * self.batch_size + self.first_row + row
        if index >= len(self.source):
            return np.zeros((self.size, self.size, 3), np.uint8), np.int32(0)
        image, label = read_example(self.source, index, self.name)
        return eval_transform(image, self.size), label


def _join(chunks: Sequence[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """A batch's chunks joined into plain arrays (copies: a worker's shared memory is
    released as soon as its chunk is)."""
    return tuple(np.concatenate(parts) for parts in zip(*chunks))


def pipeline(examples, length: int, rows: int, workers: int, prefetch: int) -> grain.IterDataset:
    """Batches of `rows` examples (positions 0 .. length - 1 of `examples`), made in chunks
    by `workers` processes (0: a thread of this process), `prefetch` chunks ahead each."""
    chunk = chunk_size(rows)
    ds = grain.MapDataset.range(length).map(examples).batch(chunk)
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch))
    if workers:
        if not flags.FLAGS.is_parsed():
            # Starting workers reads grain's absl flags (google/grain#1355, #1360); outside
            # an absl app (tests, notebooks) they keep their defaults.
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                         per_worker_buffer_size=prefetch),
                            worker_init_fn=functools.partial(_init_worker, os.getpid()))
    return ds.batch(rows // chunk, batch_fn=_join)


class ImageStream:
    """Train and eval batches of a streamed data set, made by grain worker processes.

    num_train, num_test, num_classes, classes (label names), mean, std (ImageNet's, 0-255
    scale), image_shape; `workers` processes (0: a thread of this process) keep
    `prefetch` chunks each ready.
    """

    def __init__(self, spec: DataSpec, train, test, classes: Sequence[str]):
        self.spec, self.name = spec, spec.name
        self.image_size = spec.image_size or 224
        self.workers, self.prefetch = spec.workers, spec.prefetch
        self._train, self._test = train, test
        self.num_train, self.num_test = len(train), len(test)
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
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

    def train_batches(self, batch_size: int, seeds: Sequence[int], epoch: int,
                      first_batch: int = 0, num_batches: int | None = None,
                      process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
        """Batches first_batch .. first_batch + num_batches - 1 (default: to the epoch's end)
        of `epoch` for every seed: uint8 images (S, R, size, size, 3), lighting (S, R, 3),
        labels (S, R), R = batch_size / process_count rows of this process."""
        steps = self.steps_per_epoch(batch_size)
        last = steps if num_batches is None else min(first_batch + num_batches, steps)
        if not 0 <= first_batch <= last:
            raise ValueError(f"first_batch={first_batch} must be in [0, {steps}]")
        rows = process_rows(batch_size, process_index, process_count)
        seeds = tuple(int(s) for s in seeds)
        orders = np.stack([np.asarray(epoch_order(s, epoch, self.num_train)) for s in seeds])
        ids = orders[:, first_batch * batch_size:last * batch_size].reshape(
            len(seeds), last - first_batch, batch_size)[:, :, rows.start:rows.stop]
        ids = np.ascontiguousarray(ids.transpose(1, 0, 2)).reshape(-1)  # step, seed, row
        examples = TrainExample(self._train, self.name, ids, seeds, len(rows), epoch,
                                self.image_size, self.spec.augment)
        ds = pipeline(examples, len(ids), len(seeds) * len(rows), self.workers, self.prefetch)
        shape = (len(seeds), len(rows))
        valid = np.ones(shape, bool)
        for images, lighting, labels in _closing(ds):
            yield Batch(images.reshape(shape + images.shape[1:]), labels.reshape(shape), valid,
                        lighting.reshape(shape + (3,)))

    def test_batches(self, batch_size: int, process_index: int = 0,
                     process_count: int = 1) -> Iterator[Batch]:
        """The whole eval split in order, uint8 (R, size, size, 3) per batch for this
        process's R rows; rows past the split's end (last batch) are zeros, valid=False."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        rows = process_rows(batch_size, process_index, process_count)
        num_batches = -(-self.num_test // batch_size)
        examples = TestExample(self._test, self.name, batch_size, len(rows), rows.start,
                               self.image_size)
        ds = pipeline(examples, num_batches * len(rows), len(rows), self.workers, self.prefetch)
        for b, (images, labels) in enumerate(_closing(ds)):
            yield Batch(images, labels, valid_rows(b, batch_size, rows, self.num_test))


def _init_worker(parent: int, worker_index: int, worker_count: int) -> None:
    """Run by grain in every worker process before it reads anything.

    Ctrl-C, which a terminal sends to the whole process group, is for the trainer (it
    stops cleanly and closes the pipelines, which stops the workers), not for the workers.
    And a worker ends as soon as `parent`, the process that started it, is gone: a trainer
    killed outright (SIGKILL, a second SIGTERM) cannot close its pipelines, and its
    workers would otherwise run on as orphans. A parent that died while the worker was
    still starting is noticed at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True,
                     name="exit-with-trainer").start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


@contextlib.contextmanager
def workers_stopped(timeout_s: float = 5.0) -> Iterator[None]:
    """When the block ends, however it ends, stops every process started inside it that
    is still alive (a pipeline closed while its workers were starting, an exit part-way):
    what the trainer does last. Processes the caller had before are left alone."""
    before = {child.pid for child in multiprocessing.active_children()}
    try:
        yield
    finally:
        started = [c for c in multiprocessing.active_children() if c.pid not in before]
        for child in started:
            child.terminate()
        for child in started:
            child.join(timeout_s)
            if child.is_alive():
                child.kill()
                child.join()


def _closing(ds: grain.IterDataset) -> Iterator:
    """Iterates ds and stops its worker processes when the consumer stops early."""
    iterator = iter(ds)
    try:
        yield from iterator
    finally:
        iterator.close()


def open_stream(spec: DataSpec) -> ImageStream:
    """The stream of a validated streaming spec: tfds imagenet2012 or an image folder."""
    if spec.source == "imagefolder":
        classes = imagefolder.validate(spec)
        return ImageStream(spec, imagefolder.FolderSplit(spec, spec.train_split, classes),
                           imagefolder.FolderSplit(spec, spec.test_split, classes), classes)
    tfds_source.validate(spec)
    train = tfds_source.open_split(spec, spec.train_split)
    test = tfds_source.open_split(spec, spec.test_split)
    return ImageStream(spec, train, test, tfds_source.class_names(train))
