"""Where a step's data comes from: a data set resident on the devices, or a host stream.

Feeds only produce device arrays; the trainer hands them to the buckets' programs. Both
give each seed its own data order (`data.epoch_order(seed, epoch, n)`), so all variants
with the same seed see the same batches whatever the device count, and a resume at any
step continues the exact sequence.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from relgraph_jax import data as data_lib
from relgraph_jax.train import mesh as mesh_lib


class ResidentFeed:
    """Small data sets (CIFAR-10, MNIST, digits): uint8 on every device, batched there.

    `epoch_inputs(step)` are the arguments a resident program draws the batches of the
    epoch holding `step` from: (x_train, y_train, perms, seeds); perms[i] is the example
    order of seeds[i]. One copy serves every bucket.
    """

    def __init__(self, ds, shard, seeds, eval_batch_size, steps_per_epoch):
        self.shard, self.seeds, self.steps_per_epoch = shard, seeds, steps_per_epoch
        self.n_train, self.num_test = len(ds.y_train), len(ds.y_test)
        self.x_train = mesh_lib.put(ds.x_train, shard.replicated)
        self.y_train = mesh_lib.put(ds.y_train.astype(np.int32), shard.replicated)
        total = -(-self.num_test // eval_batch_size) * eval_batch_size
        x = np.zeros((total,) + ds.x_test.shape[1:], ds.x_test.dtype)
        y = np.zeros((total,), np.int32)
        x[:self.num_test], y[:self.num_test] = ds.x_test, ds.y_test
        self.test = mesh_lib.put((x, y), shard.replicated)
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

    def close(self):
        pass


class StreamFeed:
    """Large data sets (ImageNet) decoded on host threads; one batch per seed per step.

    Every process decodes the full global batch (variants, not examples, are split over
    devices), so multi-host runs need no exchange of examples. Each batch is put on the
    devices once and used by every bucket.
    """

    def __init__(self, stream, shard, seeds, batch_size, eval_batch_size, steps_per_epoch):
        self.stream, self.shard, self.seeds = stream, shard, seeds
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.num_test = stream.num_test
        self._iters, self._next_step = None, None

    def batch(self, step: int) -> tuple:
        """(images[S, B, ...] on the 0-255 scale, labels[S, B]) of `step` for every seed, on
        the devices."""
        if self._next_step != step or step % self.steps_per_epoch == 0:
            self.close()
            epoch, first = divmod(step, self.steps_per_epoch)
            self._iters = [self.stream.train_batches(self.batch_size, s, epoch, first_batch=first)
                           for s in self.seeds]
        self._next_step = step + 1
        return self._put(self._iters)

    def epoch_batches(self, epoch: int, num_batches: int) -> Iterator[tuple]:
        """The first num_batches batches of `epoch` for every seed, without disturbing the
        training position (precise BN draws from an epoch training never reaches)."""
        iters = [self.stream.train_batches(self.batch_size, s, epoch) for s in self.seeds]
        try:
            for _ in range(num_batches):
                yield self._put(iters)
        finally:
            for it in iters:
                it.close()

    def test_batches(self) -> Iterator[tuple]:
        """(x, y, valid example mask) per test batch, on the devices."""
        for batch in self.stream.test_batches(self.eval_batch_size):
            yield (*mesh_lib.put((batch.images, batch.labels), self.shard.replicated), batch.valid)

    def _put(self, iters) -> tuple:
        batches = [next(it) for it in iters]
        return mesh_lib.put((np.stack([b.images for b in batches]),
                             np.stack([b.labels for b in batches])), self.shard.replicated)

    def close(self):
        for it in self._iters or ():
            it.close()
        self._iters = None

