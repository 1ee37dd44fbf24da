"""A bucket's compiled programs: step.py's one-variant functions, wrapped once for all.

The wrapping, in one place (`_for_all_variants`): the state's leading variant axis is
split over the mesh's "variants" axis with shard_map; on each device lax.map runs the
local variants `variant_batch` at a time (vmapped inside a group), so the per-variant
program is the same whatever the number of devices and results do not depend on it. A
batch can further be split over the "data" axis. Chunks of steps loop on the device
with the step count as a runtime argument, so a new chunk length compiles nothing. The
precise-BN batch count is static instead (one value per sweep): with a runtime divisor
XLA turns the division into a multiplication on some device layouts and not on others,
which would break the bitwise identity of 1 and 8 devices.

Every program takes the bucket's `seed_index` (per slot: which seed's batch it trains
on) next to the state. Images arrive on the 0-255 scale (uint8 when resident, float32
when streamed) and are normalised on the device.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from relgraph_jax import data as data_lib
from relgraph_jax.train import step as step_lib


@dataclasses.dataclass(frozen=True)
class BatchConfig:
    """How a bucket's batches are drawn and normalised."""
    batch_size: int
    eval_batch_size: int
    mean: tuple
    std: tuple
    data_spec: object  # data.DataSpec: augment, crop_pad, flip, crop_style


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted programs of one bucket (see each field's comment for its arguments)."""
    # (state, seed_index, x_train, y_train, perms, seeds, start_step, num_steps) -> state
    train_resident: Callable
    # (state, seed_index, images[S, B, ...], labels[S, B], step) -> state
    train_streamed: Callable
    # (state, x_test, y_test) -> (loss[V, N], correct[V, N])
    evaluate: Callable
    # (state, seed_index, x_train, y_train, perms, seeds, start_step, num_batches: int, step)
    precise_bn_resident: Callable
    # (state, seed_index, images[S, B, ...]) -> precise-BN sums of one batch per variant
    bn_moments_streamed: Callable
    # (state, summed bn_moments_streamed of num_batches batches, num_batches: int, step)
    set_precise_bn: Callable


def build(cfg: step_lib.StepConfig, batches: BatchConfig, mesh, variant_batch: int) -> Programs:
    """The programs of one bucket: built (not yet compiled) once, compiled on first call."""
    wrap = functools.partial(_for_all_variants, mesh=mesh, variant_batch=variant_batch)
    normalise = functools.partial(data_lib.normalize, mean=batches.mean, std=batches.std)

    def one_step(state, seed_index, images, labels, step):
        return step_lib.train_step(state, images[seed_index], labels[seed_index], step, cfg)

    def moments(state, seed_index, images):
        return step_lib.bn_moments(state, images[seed_index], cfg)

    stepped = wrap(one_step, mapped=2)
    summed = wrap(moments, mapped=2)

    def train_resident(state, seed_index, x_train, y_train, perms, seeds, start_step, num_steps):
        def body(i, s):
            images, labels = _resident_batches(batches, x_train, y_train, perms, seeds,
                                               start_step + i, cfg.steps_per_epoch)
            return stepped(s, seed_index, images, labels, start_step + i)
        return jax.lax.fori_loop(0, num_steps, body, state)

    def train_streamed(state, seed_index, images, labels, step):
        return stepped(state, seed_index, jax.vmap(normalise)(images), labels, step)

    def evaluate(state, x_test, y_test):
        def per_variant(s, x, y):
            nb = x.shape[0] // batches.eval_batch_size
            xs = x.reshape((nb, batches.eval_batch_size) + x.shape[1:])
            ys = y.reshape(nb, batches.eval_batch_size)
            _, (loss, correct) = jax.lax.scan(
                lambda _, b: (None, step_lib.eval_batch(s, normalise(b[0]), b[1], cfg)),
                None, (xs, ys))
            return loss.reshape(-1), correct.reshape(-1)
        return wrap(per_variant, mapped=1)(state, x_test, y_test)

    def precise_bn_resident(state, seed_index, x_train, y_train, perms, seeds, start_step,
                            num_batches, step):
        def body(i, sums):
            images, _ = _resident_batches(batches, x_train, y_train, perms, seeds,
                                          start_step + i, cfg.steps_per_epoch)
            return jax.tree.map(jnp.add, sums, summed(state, seed_index, images))
        zeros = jax.tree.map(jnp.zeros_like, state.batch_stats)
        return set_precise_bn(state, jax.lax.fori_loop(0, num_batches, body, zeros),
                              num_batches, step)

    def bn_moments_streamed(state, seed_index, images):
        return summed(state, seed_index, jax.vmap(normalise)(images))

    def set_precise_bn(state, sums, num_batches, step):
        groups = num_batches * (batches.batch_size // cfg.bn_group_size if cfg.bn_group_size else 1)
        return wrap(step_lib.set_precise_bn, mapped=2)(state, sums, groups, step)

    return Programs(
        train_resident=_jit(train_resident, donate=True),
        train_streamed=_jit(train_streamed, donate=True),
        evaluate=_jit(evaluate),
        precise_bn_resident=_jit(precise_bn_resident, donate=True, static=(7,)),
        bn_moments_streamed=_jit(bn_moments_streamed),
        set_precise_bn=_jit(set_precise_bn, donate=True, static=(2,)))


def _for_all_variants(fn, *, mapped: int, mesh, variant_batch: int):
    """fn over one variant -> fn over a bucket: its first `mapped` arguments carry a
    leading variant axis (split over the "variants" devices, looped with lax.map
    `variant_batch` at a time on each); the others are shared by every variant."""
    def local(*args):
        per_variant, shared = args[:mapped], args[mapped:]
        return jax.lax.map(lambda m: fn(*m, *shared), per_variant, batch_size=variant_batch)

    def over_mesh(*args):
        specs = (P("variants"),) * mapped + (P(),) * (len(args) - mapped)
        return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P("variants"),
                             axis_names={"variants"})(*args)
    return over_mesh


def _jit(fn, donate: bool = False, static: tuple = ()):
    return jax.jit(fn, donate_argnums=(0,) if donate else (), static_argnums=static)


def _resident_batches(batches: BatchConfig, x_train, y_train, perms, seeds, step, steps_per_epoch):
    """Every seed's normalised batch of `step` from a device-resident data set, (S, B, ...).

    Made once per seed and step, not once per variant: all variants of a seed share it.
    perms[i] is the example order of seeds[i] for the epoch holding `step`.
    """
    in_epoch = step % steps_per_epoch
    spec = batches.data_spec

    def one(order, seed):
        idx = jax.lax.dynamic_slice(order, (in_epoch * batches.batch_size,), (batches.batch_size,))
        images, labels = x_train[idx], y_train[idx]
        if not spec.augment:
            return data_lib.normalize(images, batches.mean, batches.std), labels
        key = jax.random.fold_in(jax.random.key(seed), step)
        return data_lib.train_images(images, key, batches.mean, batches.std, spec.crop_pad,
                                     spec.flip, spec.crop_style), labels

    return jax.vmap(one)(perms, seeds)
