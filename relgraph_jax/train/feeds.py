"""How batches reach the compiled step: a data set resident on the device, or a host stream.

Both feeds give each seed its own data order (`data.epoch_order(seed, epoch, n)`), so all
variants with the same seed see the same batches whatever the device count, and a resume
at any step continues the exact sequence.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import data as data_lib
from relgraph_jax.train import mesh as mesh_lib


def _epoch_perms(seeds, epoch, n):
    return np.stack([np.asarray(data_lib.epoch_order(s, epoch, n)) for s in seeds]).astype(np.int32)


class ResidentFeed:
    """Small data sets (CIFAR-10, MNIST, digits): uint8 on every device, batched there.

    One copy of the data serves every width bucket; each bucket runs its own compiled
    chunk of steps on it.
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
        self._compiled = {}
        self._perms_epoch, self._perms = None, None

    def _program(self, programs, kind, *args):
        key = (id(programs), kind) + args
        if key not in self._compiled:
            self._compiled[key] = getattr(programs, kind)(*args)
        return self._compiled[key]

    def perms(self, step: int):
        """Every seed's example order of the epoch holding `step`, on the devices (one row
        per seed, in the order of `seeds`)."""
        epoch = step // self.steps_per_epoch
        if self._perms_epoch != epoch:
            self._perms = mesh_lib.put(_epoch_perms(self.seeds, epoch, self.n_train),
                                       self.shard.replicated)
            self._perms_epoch = epoch
        return self._perms

    def train(self, buckets, step: int, num_steps: int) -> None:
        """Advances every bucket's state by num_steps steps from `step`."""
        perms = self.perms(step)
        for b in buckets:
            chunk = self._program(b.programs, "train_chunk", num_steps)
            b.state = chunk(b.state, b.vconst, self.x_train, self.y_train, perms, self.seeds_array,
                            jnp.int32(step))

    def precise_bn(self, buckets, epoch: int, num_batches: int, step: int) -> None:
        """Gives every bucket precise BatchNorm statistics from the first num_batches
        batches of `epoch`; `step` is the training step reached."""
        start = epoch * self.steps_per_epoch
        perms = self.perms(start)
        for b in buckets:
            program = self._program(b.programs, "precise_bn_chunk", num_batches)
            b.state = program(b.state, b.vconst, self.x_train, self.y_train, perms,
                              self.seeds_array, jnp.int32(start), jnp.int32(step))

    def evaluate(self, bucket):
        """(summed test loss, correct count) per variant slot, as float64 host arrays."""
        evaluate = self._program(bucket.programs, "evaluate")
        loss, correct = mesh_lib.fetch(evaluate(bucket.state, *self.test))
        n = self.num_test
        return (loss[:, :n].astype(np.float64).sum(1), correct[:, :n].sum(1).astype(np.float64))

    def close(self):
        pass


class StreamFeed:
    """Large data sets (ImageNet) decoded on host threads; one batch per seed per step.

    Every process decodes the full global batch (variants, not examples, are split over
    devices), so multi-host runs need no exchange of examples. Each batch is put on the
    devices once and used by every width bucket.
    """

    def __init__(self, stream, shard, seeds, batch_size, eval_batch_size, steps_per_epoch):
        self.stream, self.shard, self.seeds = stream, shard, seeds
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.steps_per_epoch = steps_per_epoch
        self.num_test = stream.num_test
        self._compiled = {}
        self._iters, self._next_step = None, None

    def _program(self, programs, kind, *args):
        key = (id(programs), kind) + args
        if key not in self._compiled:
            self._compiled[key] = getattr(programs, kind)(*args)
        return self._compiled[key]

    def _put_batches(self, iters):
        """The next batch of every seed's iterator, stacked (S, B, ...) on the devices."""
        batches = [next(it) for it in iters]
        return mesh_lib.put((np.stack([b.images for b in batches]),
                             np.stack([b.labels for b in batches])), self.shard.replicated)

    def _open_epoch(self, step):
        epoch, first = divmod(step, self.steps_per_epoch)
        self._iters = [self.stream.train_batches(self.batch_size, s, epoch, first_batch=first)
                       for s in self.seeds]
        self._next_step = step

    def train(self, buckets, step: int, num_steps: int) -> None:
        for s in range(step, step + num_steps):
            if self._next_step != s or s % self.steps_per_epoch == 0:
                self.close()
                self._open_epoch(s)
            images, labels = self._put_batches(self._iters)
            for b in buckets:
                b.state = self._program(b.programs, "train_fed")(b.state, b.vconst, images,
                                                                 labels, jnp.int32(s))
            self._next_step = s + 1

    def precise_bn(self, buckets, epoch: int, num_batches: int, step: int) -> None:
        """As ResidentFeed.precise_bn; batches are decoded once and used by every bucket."""
        iters = [self.stream.train_batches(self.batch_size, s, epoch) for s in self.seeds]
        sums = [None] * len(buckets)
        try:
            for _ in range(num_batches):
                images, _ = self._put_batches(iters)
                for i, b in enumerate(buckets):
                    got = self._program(b.programs, "precise_bn_fed")(b.state, b.vconst, images)
                    sums[i] = got if sums[i] is None else jax.tree.map(jnp.add, sums[i], got)
        finally:
            for it in iters:
                it.close()
        for b, total in zip(buckets, sums):
            b.state = self._program(b.programs, "precise_bn_set", num_batches)(
                b.state, total, jnp.int32(step))

    def evaluate(self, bucket):
        evaluate = self._program(bucket.programs, "evaluate")
        loss, correct = 0.0, 0.0
        for batch in self.stream.test_batches(self.eval_batch_size):
            arrays = mesh_lib.put((batch.images, batch.labels), self.shard.replicated)
            l, c = mesh_lib.fetch(evaluate(bucket.state, *arrays))
            loss = loss + l[:, batch.valid].astype(np.float64).sum(1)
            correct = correct + c[:, batch.valid].sum(1)
        return loss, np.asarray(correct, np.float64)

    def close(self):
        for it in self._iters or ():
            it.close()
        self._iters = None
