"""The compiled programs: a chunk of training steps and a full evaluation, for all variants.

Every `_`-function here works on ONE variant. The leading variant axis of the state is
split over the mesh's "variants" axis with shard_map; on each device lax.map runs the
local variants `variant_batch` at a time (vmapped inside a group). A batch can further be
split over the "data" axis. Variants never interact, so one diverging variant is frozen
(its update rejected) without touching the others.

BatchNorm as the authors trained (graph2nn, 8 GPUs without synchronised BatchNorm):
`bn_group_size` G normalises each group of G examples with its own statistics ("ghost"
BatchNorm), and the precise-BN programs replace the running statistics by the average of
many batches' statistics. See docs/batchnorm.md.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from relgraph_jax import data as data_lib


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(keep, new, old):
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def _guard(vstate, ok, new_values: dict, step):
    """vstate with new_values adopted if `ok` and the variant is healthy; a variant turning
    non-finite is frozen and marked failed at `step` instead."""
    keep = ok & ~vstate["failed"]
    new = dict(vstate)
    new.update(_select(keep, new_values, {k: vstate[k] for k in new_values}))
    new["failed"] = vstate["failed"] | ~ok
    new["failed_step"] = jnp.where(~ok & ~vstate["failed"], step, vstate["failed_step"])
    return new


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


class Programs:
    """Builds the jitted train-chunk and eval functions for one model and data layout."""

    def __init__(self, model, tx, mesh, *, batch_size, steps_per_epoch, data_spec, mean, std,
                 eval_batch_size, variant_batch=1, compute_dtype="float32", bn_group_size=0):
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
        # One group of the whole batch is plain BatchNorm: run it unvmapped, bit for bit.
        self.bn_group_size = 0 if bn_group_size == batch_size else bn_group_size
        self.bn_groups = batch_size // bn_group_size if bn_group_size else 1  # per batch

    # ---- one variant ----------------------------------------------------------------
    def _variables(self, vstate, params):
        """The model's variables, parameters cast to the compute dtype.

        Mixed precision: parameters, optimiser state and BatchNorm statistics stay float32;
        the cast's gradient is float32 again, so only the layer arithmetic is in bfloat16.
        """
        params = jax.tree.map(lambda p: p.astype(self.compute_dtype)
                              if jnp.issubdtype(p.dtype, jnp.floating) else p, params)
        return {"params": params, "batch_stats": vstate["batch_stats"], "masks": vstate["masks"]}

    def _inputs(self, x):
        """Normalised images in the compute dtype, split over the "data" axis if it has
        several devices."""
        x = x.astype(self.compute_dtype)
        if self.batch_spec is None:
            return x
        return jax.lax.with_sharding_constraint(x, self.batch_spec)

    def _normalize(self, images):
        """(S, B, ...) 0-255 images of every seed -> normalised float32."""
        return jax.vmap(lambda x: data_lib.normalize(x, self.mean, self.std))(images)

    def _resident_batches(self, x_all, y_all, perms, seeds, step):
        """Every seed's normalised batch of `step` from a device-resident data set, (S, B, ...).

        Made once per seed and step, not once per variant: all variants of a seed share it.
        """
        in_epoch = step % self.steps_per_epoch
        spec = self.data_spec

        def one(order, seed):
            idx = jax.lax.dynamic_slice(order, (in_epoch * self.batch_size,), (self.batch_size,))
            images, labels = x_all[idx], y_all[idx]
            if not spec.augment:
                return data_lib.normalize(images, self.mean, self.std), labels
            key = jax.random.fold_in(jax.random.key(seed), step)
            return data_lib.train_images(images, key, self.mean, self.std, spec.crop_pad,
                                         spec.flip, spec.crop_style), labels

        return jax.vmap(one)(perms, seeds)

    def _apply_train(self, variables, x):
        """Training-mode logits and the batch_stats each BatchNorm group leaves, stacked
        on a leading group axis (one group when bn_group_size is 0).

        Groups are vmapped with the variables shared, so the loss over all examples has
        the gradient of one big batch except for the statistics. Groups of G divide each
        device's share of the batch, so none straddles devices.
        """
        def apply(xs):
            logits, updated = self.model.apply(variables, xs, train=True,
                                               mutable=["batch_stats"])
            return logits, updated["batch_stats"]

        g = self.bn_group_size
        if not g:
            logits, stats = apply(x)
            return logits, jax.tree.map(lambda s: s[None], stats)
        groups = x.reshape((x.shape[0] // g, g) + x.shape[1:])
        if self.batch_spec is not None:
            groups = jax.lax.with_sharding_constraint(groups, self.batch_spec)
        logits, stats = jax.vmap(apply)(groups)
        return logits.reshape((x.shape[0],) + logits.shape[2:]), stats

    def _update(self, vstate, images, labels, step):
        """One SGD step of one variant; a non-finite result freezes the variant instead."""
        x = self._inputs(images)

        def loss_fn(params):
            logits, stats = self._apply_train(self._variables(vstate, params), x)
            # New running statistics: the mean of those each group's update leaves.
            return (cross_entropy(logits, labels).mean(),
                    jax.tree.map(lambda s: s.mean(0), stats))

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(vstate["params"])
        updates, opt_state = self.tx.update(grads, vstate["opt_state"], vstate["params"])
        params = optax.apply_updates(vstate["params"], updates)

        ok = jnp.isfinite(loss) & _tree_all_finite(params) & _tree_all_finite(batch_stats)
        keep = ok & ~vstate["failed"]
        new = _guard(vstate, ok, {"params": params, "batch_stats": batch_stats,
                                  "opt_state": opt_state}, step)
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
            x = self._inputs(data_lib.normalize(images, self.mean, self.std))
            logits = self.model.apply(self._variables(vstate, vstate["params"]), x, train=False)
            return None, (cross_entropy(logits, labels), jnp.argmax(logits, -1) == labels)

        _, (loss, correct) = jax.lax.scan(body, None, (xs, ys))
        return loss.reshape(-1), correct.reshape(-1)

    def _bn_moments(self, vstate, vconst, images):
        """Sums over the BatchNorm groups of a batch (its seed's, out of (S, B, ...)) of each
        layer's batch mean m ("mean" leaves) and of v + m^2 ("var" leaves, v the batch
        variance): what precise BN averages."""
        variables = self._variables(vstate, vstate["params"])
        variables["batch_stats"] = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
        momenta = set()

        def spy(next_fun, args, kwargs, context):
            if isinstance(context.module, nn.BatchNorm):
                momenta.add(context.module.momentum)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(spy):
            _, stats = self._apply_train(variables, self._inputs(images[vconst["seed_index"]]))
        if len(momenta) > 1:
            raise ValueError(f"precise BN needs one BatchNorm momentum, the model has {momenta}")
        # From zero running statistics flax's update leaves (1 - momentum) * batch statistic.
        kept = 1 - (momenta.pop() if momenta else 0.0)
        flat = traverse_util.flatten_dict(jax.tree.map(lambda s: s / kept, stats))
        return traverse_util.unflatten_dict({
            path: (s if path[-1] == "mean" else s + flat[path[:-1] + ("mean",)] ** 2).sum(0)
            for path, s in flat.items()})

    def _precise_setter(self, num_batches: int):
        """Per device: (state, sums, step) -> state whose running statistics are
        mean_i(m_i) and mean_i(v_i + m_i^2) - mean^2 over the num_batches batches' BatchNorm
        groups i. A frozen variant keeps its own; one turning non-finite is frozen at step."""
        num_groups = num_batches * self.bn_groups

        def one(vstate, sums, step):
            flat = traverse_util.flatten_dict(sums)
            stats = {}
            for path, s in flat.items():
                mean = flat[path[:-1] + ("mean",)] / num_groups
                stats[path] = mean if path[-1] == "mean" else \
                    jnp.maximum(s / num_groups - mean ** 2, 0.0)
            stats = traverse_util.unflatten_dict(stats)
            return _guard(vstate, _tree_all_finite(stats), {"batch_stats": stats}, step)

        return self._per_device(one, 2)

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
        local = self._per_device(self._fed_update, 2)
        return self._shard(lambda s, c, images, labels, step:
                           local(s, c, self._normalize(images), labels, step), 2, 3, donate=True)

    def evaluate(self):
        """jit(state, x_test, y_test) -> (loss[V, N], correct[V, N]) per example.

        The test arrays' length must be a multiple of eval_batch_size.
        """
        return self._shard(self._per_device(self._eval, 1), 1, 2)

    def precise_bn_chunk(self, num_batches: int):
        """jit(state, vconst, x, y, perms, seeds, start_step, step) -> state whose BatchNorm
        statistics are precise BN's over the resident batches start_step .. + num_batches.

        `step` (the training step reached) is where a variant turning non-finite is marked.
        """
        moments = self._per_device(self._bn_moments, 2)
        finish = self._precise_setter(num_batches)

        def run(state, vconst, x_all, y_all, perms, seeds, start_step, step):
            def body(i, sums):
                images, _ = self._resident_batches(x_all, y_all, perms, seeds, start_step + i)
                return jax.tree.map(jnp.add, sums, moments(state, vconst, images))
            zeros = jax.tree.map(jnp.zeros_like, state["batch_stats"])
            return finish(state, jax.lax.fori_loop(0, num_batches, body, zeros), step)

        return self._shard(run, 2, 6, donate=True)

    def precise_bn_fed(self):
        """jit(state, vconst, images[S, B, ...]) -> per-variant precise-BN sums of one batch
        of 0-255 images (streamed data sets)."""
        local = self._per_device(self._bn_moments, 2)
        return self._shard(lambda s, c, images: local(s, c, self._normalize(images)), 2, 1)

    def precise_bn_set(self, num_batches: int):
        """jit(state, sums, step) -> state with precise BN statistics from num_batches
        batches' summed `precise_bn_fed` results."""
        return self._shard(self._precise_setter(num_batches), 2, 1, donate=True)
