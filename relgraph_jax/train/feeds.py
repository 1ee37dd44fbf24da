"""Where a step's data comes from: a data set resident on the devices, or a host stream.

Feeds only produce device arrays; the trainer hands them to the buckets' programs. Both
give each seed its own data order (`data.epoch_order(seed, epoch, n)`), so all variants
with the same seed see the same batches whatever the device count, and a resume at any
step continues the exact sequence.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from relgraph_jax import data as data_lib
from relgraph_jax.data import stream as stream_lib
from relgraph_jax.train import mesh as mesh_lib


class ResidentFeed:
    """Small data sets (CIFAR-10, MNIST, digits): uint8 on every device, batched there.

    `epoch_inputs(step)` are the arguments a resident program draws the batches of the
    epoch holding `step` from: (x_train, y_train, perms, seeds); perms[i] is the example
    order of seeds[i]. One copy serves every bucket. The test set and the validation
    split (`ds.x_val`, held out from training; may be absent) are evaluated alike.
    """

    def __init__(self, ds, shard, seeds, eval_batch_size, steps_per_epoch):
        self.shard, self.seeds, self.steps_per_epoch = shard, seeds, steps_per_epoch
        self.n_train, self.num_test, self.num_val = len(ds.y_train), len(ds.y_test), ds.num_val
        self.x_train = mesh_lib.put(ds.x_train, shard.replicated)
        self.y_train = mesh_lib.put(ds.y_train.astype(np.int32), shard.replicated)
        self.test = self._padded(ds.x_test, ds.y_test, eval_batch_size)
        self.val = self._padded(ds.x_val, ds.y_val, eval_batch_size) if self.num_val else None
        self.seeds_array = mesh_lib.put(np.asarray(seeds, np.int32), shard.replicated)
        self._perms_epoch, self._perms = None, None

    def epoch_inputs(self, step: int) -> tuple:
        epoch = step // self.steps_per_epoch
        if self._perms_epoch != epoch:
            perms = np.stack([np.asarray(data_lib.epoch_order(s, epoch, self.n_train))
                              for s in self.seeds]).astype(np.int32)
            self._perms = mesh_lib.put(perms, self.shard.replicated)
            self._perms_epoch = epoch
        return self.x_train, self.y_train, self._perms, self.seeds_array

    def test_batches(self) -> Iterator[tuple]:
        """The whole (padded) test set as one batch: (x, y, valid example mask)."""
        valid = np.arange(len(self.test[1])) < self.num_test
        yield self.test[0], self.test[1], valid

    def validation_batches(self) -> Iterator[tuple]:
        """The whole (padded) validation split as one batch, like `test_batches`."""
        valid = np.arange(len(self.val[1])) < self.num_val
        yield self.val[0], self.val[1], valid

    def _padded(self, x, y, eval_batch_size) -> tuple:
        """(x, y) zero-padded to whole evaluation batches, on every device."""
        total = -(-len(y) // eval_batch_size) * eval_batch_size
        xs = np.zeros((total,) + x.shape[1:], x.dtype)
        ys = np.zeros((total,), np.int32)
        xs[:len(y)], ys[:len(y)] = x, y
        return mesh_lib.put((xs, ys), self.shard.replicated)

    def close(self):
        pass


class StreamFeed:
    """Streamed data sets (ImageNet from tfds or an image folder): one batch per seed per
    step, made by the stream's grain workers.

    Each process makes only its rows of every global batch (data/stream.py); the feed joins
    the processes' rows into global arrays, replicated on every device (variants, not
    examples, are split over devices). Train images travel as uint8 crops and lighting
    offsets and are summed there. Each batch is put on the devices once and used by every
    bucket.
    """

    def __init__(self, stream, shard, seeds, batch_size, eval_batch_size, steps_per_epoch):
        self.stream, self.shard, self.seeds = stream, shard, seeds
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.num_test = stream.num_test
        self._hosts = _hosts_mesh(shard.replicated.mesh) if jax.process_count() > 1 else None
        self._train, self._next_step = None, None

    def batch(self, step: int) -> tuple:
        """(images[S, B, ...] on the 0-255 scale, labels[S, B]) of `step` for every seed, on
        the devices."""
        if self._next_step != step or step % self.steps_per_epoch == 0:
            self.close()
            epoch, first = divmod(step, self.steps_per_epoch)
            self._train = self._train_batches(epoch, first)
        self._next_step = step + 1
        return next(self._train)

    def epoch_batches(self, epoch: int, num_batches: int) -> Iterator[tuple]:
        """The first num_batches batches of `epoch` for every seed, without disturbing the
        training position (precise BN draws from an epoch training never reaches)."""
        return self._train_batches(epoch, 0, num_batches)

    def test_batches(self) -> Iterator[tuple]:
        """(x, y, valid example mask) per test batch, on the devices."""
        batches = self.stream.test_batches(self.eval_batch_size, jax.process_index(),
                                           jax.process_count())
        every_row = range(self.eval_batch_size)
        try:
            for b, batch in enumerate(batches):
                valid = stream_lib.valid_rows(b, self.eval_batch_size, every_row, self.num_test)
                yield (*self._global((batch.images, batch.labels), axis=0), valid)
        finally:
            batches.close()

    def _train_batches(self, epoch: int, first: int, num_batches: int | None = None):
        batches = self.stream.train_batches(self.batch_size, self.seeds, epoch, first,
                                            num_batches, jax.process_index(), jax.process_count())
        try:
            for batch in itertools.islice(batches, num_batches):
                images, lighting, labels = self._global(
                    (batch.images, batch.lighting, batch.labels), axis=1)
                yield _lit(images, lighting), labels
        finally:
            batches.close()

    def _global(self, tree, axis: int):
        """This process's rows (along `axis`) of global arrays -> the global arrays, on every
        device: one process puts its copy; several assemble theirs and gather them."""
        if self._hosts is None:
            return mesh_lib.put(tree, self.shard.replicated)
        split = NamedSharding(self._hosts, P(*(None,) * axis, "hosts"))
        return jax.tree.map(lambda x: jax.device_put(
            jax.make_array_from_process_local_data(split, x), self.shard.replicated), tree)

    def close(self):
        if self._train is not None:
            self._train.close()
        self._train = None


@jax.jit
def _lit(images, lighting):
    """uint8 crops + their PCA lighting offsets -> float32 train images (0-255 scale): the
    same float32 sum as numpy's crop.astype(float32) + offset."""
    return images.astype(jnp.float32) + lighting[..., None, None, :]


def check_process_shares(batch_size: int, eval_batch_size: int, num_test: int,
                         num_devices: int) -> None:
    """Each process makes an equal share of every streamed batch: refuse batch sizes the
    processes do not divide, and a mesh (its first `num_devices` devices, 0: all) with
    more devices on some processes than on others (before anything is compiled or the
    workdir is written)."""
    processes = jax.process_count()
    devices = jax.devices()[:num_devices or jax.device_count()]
    counts = np.bincount([d.process_index for d in devices], minlength=processes)
    if counts.min() != counts.max():
        raise ValueError(f"a streamed data set needs the same number of mesh devices on every "
                         f"process (each makes its share of every batch), got "
                         f"{counts.tolist()} with config.mesh.devices={num_devices}; use "
                         f"config.mesh.devices=0 (all devices)")
    if batch_size % processes:
        raise ValueError(f"config.train.batch_size={batch_size} must be divisible by the "
                         f"{processes} processes: each makes an equal share of every batch")
    evaluated = min(eval_batch_size, num_test)
    if evaluated % processes:
        raise ValueError(f"the evaluation batch, min(config.train.eval_batch_size="
                         f"{eval_batch_size}, {num_test} test examples) = {evaluated}, must be "
                         f"divisible by the {processes} processes: each makes an equal share")


def _hosts_mesh(mesh) -> Mesh:
    """The mesh's devices as (process, its devices): row p holds process p's rows of a
    batch (every process has as many, `check_process_shares`). Device order differs from
    `mesh`, so arrays are moved there by device_put."""
    devices = sorted(mesh.devices.flat, key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices).reshape(jax.process_count(), -1), ("hosts", "devices"))
