"""The compiled programs: a chunk of training steps and a full evaluation, for all variants.

Every `_`-function here works on ONE variant. The leading variant axis of the state is
split over the mesh's "variants" axis with shard_map; on each device lax.map runs the
local variants `variant_batch` at a time (vmapped inside a group). A batch can further be
split over the "data" axis. Variants never interact, so one diverging variant is frozen
(its update rejected) without touching the others.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from relgraph_jax import data as data_lib


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(keep, new, old):
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


class Programs:
    """Builds the jitted train-chunk and eval functions for one model and data layout."""

    def __init__(self, model, tx, mesh, *, batch_size, steps_per_epoch, data_spec, mean, std,
                 eval_batch_size, variant_batch=1, compute_dtype="float32"):
        self.model = model
        self.compute_dtype = jnp.dtype(compute_dtype)
        self.tx = tx
        self.mesh = mesh
        self.variant_batch = variant_batch
        # Split each batch over the "data" axis only when that axis has several devices. A
        # bare spec: inside shard_map it refers to the mesh whose "variants" axis is manual.
        self.batch_spec = P("data") if mesh.shape["data"] > 1 else None
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.data_spec = data_spec
        self.mean = mean
        self.std = std
        self.eval_batch_size = eval_batch_size

    # ---- one variant ----------------------------------------------------------------
    def _variables(self, vstate, params):
        """The model's variables, parameters cast to the compute dtype.

        Mixed precision: parameters, optimiser state and BatchNorm statistics stay float32;
        the cast's gradient is float32 again, so only the layer arithmetic is in bfloat16.
        """
        params = jax.tree.map(lambda p: p.astype(self.compute_dtype)
                              if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
        return {"params": params, "batch_stats": vstate["batch_stats"], "masks": vstate["masks"]}

    def _inputs(self, images_uint8):
        x = data_lib.normalize(images_uint8, self.mean, self.std).astype(self.compute_dtype)
        if self.batch_spec is None:
            return x
        return jax.lax.with_sharding_constraint(x, self.batch_spec)

    def _resident_batches(self, x_all, y_all, perms, seeds, step):
        """Every seed's batch of `step` from a device-resident data set, (S, B, ...).

        Made once per seed and step, not once per variant: all variants of a seed share it.
        """
        in_epoch = step % self.steps_per_epoch

        def one(order, seed):
            idx = jax.lax.dynamic_slice(order, (in_epoch * self.batch_size,), (self.batch_size,))
            images, labels = x_all[idx], y_all[idx]
            if self.data_spec.augment:
                key = jax.random.fold_in(jax.random.key(seed), step)
                images = data_lib.augment_batch(images, key, self.data_spec.crop_pad,
                                                self.data_spec.flip)
            return images, labels

        return jax.vmap(one)(perms, seeds)

    def _update(self, vstate, images, labels, step):
        """One SGD step of one variant; a non-finite result freezes the variant instead."""
        x = self._inputs(images)

        def loss_fn(params):
            logits, updated = self.model.apply(self._variables(vstate, params), x, train=True,
                                               mutable=["batch_stats"])
            return cross_entropy(logits, labels).mean(), updated["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(vstate["params"])
        updates, opt_state = self.tx.update(grads, vstate["opt_state"], vstate["params"])
        params = optax.apply_updates(vstate["params"], updates)

        ok = jnp.isfinite(loss) & _tree_all_finite(params) & _tree_all_finite(batch_stats)
        keep = ok & ~vstate["failed"]
        new = dict(vstate)
        new.update(_select(keep, {"params": params, "batch_stats": batch_stats,
                                  "opt_state": opt_state},
                           {k: vstate[k] for k in ("params", "batch_stats", "opt_state")}))
        newly_failed = ~ok & ~vstate["failed"]
        new["failed"] = vstate["failed"] | ~ok
        new["failed_step"] = jnp.where(newly_failed, step, vstate["failed_step"])
        fresh_epoch = step % self.steps_per_epoch == 0
        new["loss_sum"] = jnp.where(fresh_epoch, 0.0, vstate["loss_sum"]) + jnp.where(keep, loss, 0.0)
        new["loss_count"] = (jnp.where(fresh_epoch, 0.0, vstate["loss_count"])
                             + keep.astype(jnp.float32))
        return new

    def _eval(self, vstate, x_test, y_test):
        """Per-example loss and correctness of one variant over the (padded) test set.

        Sums are left to the host (float64), so they do not depend on how XLA tiles a
        reduction for a given number of variants per device.
        """
        nb = x_test.shape[0] // self.eval_batch_size
        xs = x_test.reshape((nb, self.eval_batch_size) + x_test.shape[1:])
        ys = y_test.reshape(nb, self.eval_batch_size)

        def body(_, batch):
            images, labels = batch
            logits = self.model.apply(self._variables(vstate, vstate["params"]),
                                      self._inputs(images), train=False)
            return None, (cross_entropy(logits, labels), jnp.argmax(logits, -1) == labels)

        _, (loss, correct) = jax.lax.scan(body, None, (xs, ys))
        return loss.reshape(-1), correct.reshape(-1)

    # ---- all variants -----------------------------------------------------------------
    def _per_device(self, fn, num_mapped: int):
        """shard_map over the variants axis of a per-variant fn, looped with lax.map.

        Each device runs its variants `variant_batch` at a time: the per-variant program is
        the same whatever the number of devices, so results do not depend on it.
        """
        def local(*args):
            mapped, shared = args[:num_mapped], args[num_mapped:]
            return jax.lax.map(lambda m: fn(*m, *shared), mapped, batch_size=self.variant_batch)
        return local

    def _shard(self, local, num_mapped, num_shared, donate=False):
        specs = (P("variants"),) * num_mapped + (P(),) * num_shared
        mapped = jax.shard_map(local, mesh=self.mesh, in_specs=specs, out_specs=P("variants"),
                               axis_names={"variants"})
        return jax.jit(mapped, donate_argnums=(0,) if donate else ())

    def _fed_update(self, vstate, vconst, images, labels, step):
        """One step of one variant on its seed's batch out of the (S, B, ...) batches."""
        return self._update(vstate, images[vconst["seed_index"]], labels[vconst["seed_index"]],
                            step)

    def train_chunk(self, num_steps: int):
        """jit(state, vconst, x, y, perms, seeds, start_step) -> state after num_steps steps.

        For data sets resident on the device: no host work between the steps of a chunk.
        perms[i] is the example order of the seed seeds[i] for the current epoch.
        """
        step_local = self._per_device(self._fed_update, 2)

        def chunk(state, vconst, x_all, y_all, perms, seeds, start_step):
            def body(i, s):
                step = start_step + i
                images, labels = self._resident_batches(x_all, y_all, perms, seeds, step)
                return step_local(s, vconst, images, labels, step)
            return jax.lax.fori_loop(0, num_steps, body, state)

        return self._shard(chunk, 2, 5, donate=True)

    def train_fed(self):
        """jit(state, vconst, images[S, B, ...], labels[S, B], step) -> state.

        For streamed data sets: the host feeds one batch per seed, each variant takes its
        seed's batch.
        """
        return self._shard(self._per_device(self._fed_update, 2), 2, 3, donate=True)

    def evaluate(self):
        """jit(state, x_test, y_test) -> (loss[V, N], correct[V, N]) per example.

        The test arrays' length must be a multiple of eval_batch_size.
        """
        return self._shard(self._per_device(self._eval, 1), 1, 2)
